package drip

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// The delivery log the coach reads: each delivery with its reason and its
// Resend events.

// DeliveryFilter narrows the delivery log; zero fields do not filter.
type DeliveryFilter struct {
	Status        DeliveryStatus
	ParticipantID *uuid.UUID
	SequenceID    *uuid.UUID
}

// DeliveryEvent is one Resend event of a delivery, for the coach's stats.
type DeliveryEvent struct {
	Type       string
	OccurredAt time.Time
}

// DeliveryLogEntry is one delivery with its reason (LastError) and events.
type DeliveryLogEntry struct {
	EmailDelivery
	Events []DeliveryEvent
}

var deliveryStatuses = []DeliveryStatus{DeliveryScheduled, DeliverySending, DeliverySent, DeliveryFailed, DeliveryCancelled, DeliverySkipped}

// deliveryLogColumns leaves out the frozen rendered email: the log shows
// what happened, not the bytes.
var deliveryLogColumns = []string{"id", "participant_id", "email", "sequence_id", "step_id", "subject_key", "enrollment_id", "cohort_id",
	"program_id", "live_session_id", "lesson_id", "anchor_at", "timezone", "status", "send_at", "sent_at", "attempts",
	"first_attempt_at", "locked_until", "batch_id", "last_error", "resend_id", "created_at", "updated_at"}

// ListDeliveries is the delivery log, newest first, each row with its
// Resend events in the order they happened. An admin sees every delivery; a
// coach only those to her own participants: of cohorts she leads or
// co-leads, and the cohort-less ones of programs she leads (her free
// workshop). A global sequence's email is the admins'. Each woman on the
// page is logged as seen in the delivery log.
func (s *Service) ListDeliveries(ctx context.Context, actor *people.Coach, f DeliveryFilter, pp models.PageParams) (models.Page[DeliveryLogEntry], error) {
	v, err := people.ViewerOf(actor)
	if err != nil {
		return models.Page[DeliveryLogEntry]{}, err
	}
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[DeliveryLogEntry]{}, err
	}
	db := s.DB.WithContext(ctx)
	q := db.Model(&EmailDelivery{}).Select(deliveryLogColumns)
	if f.Status != "" {
		if !slices.Contains(deliveryStatuses, f.Status) {
			e := models.E(models.KindBadRequest, "invalid_query", "status must be one of %s.", joinEnum(deliveryStatuses))
			e.Fields = []models.FieldError{{Field: "status", Message: "must be one of: " + joinEnum(deliveryStatuses)}}
			return models.Page[DeliveryLogEntry]{}, e
		}
		q = q.Where("status = ?", f.Status)
	}
	if f.ParticipantID != nil {
		q = q.Where("participant_id = ?", *f.ParticipantID)
	}
	if f.SequenceID != nil {
		q = q.Where("sequence_id = ?", *f.SequenceID)
	}
	if !v.Admin {
		q = q.Where(`(cohort_id IN (SELECT cc.cohort_id FROM cohort_coaches cc WHERE cc.coach_id = ?)
			OR (cohort_id IS NULL AND program_id IN (SELECT pr.id FROM programs pr WHERE pr.lead_coach_id = ?)))`, v.CoachID, v.CoachID)
	}
	if cur != nil {
		q = q.Where("(created_at, id) < (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	q = q.Order("created_at DESC, id DESC").Limit(limit + 1)
	rows, err := people.ReadLogged[EmailDelivery](db, s.Now(), v, people.AccessDeliveriesListed, q, "created_at DESC, id DESC", "participant_id", limit)
	if err != nil {
		return models.Page[DeliveryLogEntry]{}, err
	}
	page := models.PageOf(rows, limit, func(d EmailDelivery) models.Cursor { return models.Cursor{At: d.CreatedAt, ID: d.ID} })
	entries, err := withDeliveryEvents(db, page.Items)
	if err != nil {
		return models.Page[DeliveryLogEntry]{}, err
	}
	return models.Page[DeliveryLogEntry]{Items: entries, NextCursor: page.NextCursor}, nil
}

// withDeliveryEvents attaches each delivery's events in one query. An event
// is matched by its delivery id or, when it arrived before the row recorded
// the Resend id, by that id.
func withDeliveryEvents(db *gorm.DB, rows []EmailDelivery) ([]DeliveryLogEntry, error) {
	entries := make([]DeliveryLogEntry, len(rows))
	if len(rows) == 0 {
		return entries, nil
	}
	byID := make(map[uuid.UUID]int, len(rows))
	byResend := map[string]int{}
	ids := make([]uuid.UUID, 0, len(rows))
	var resendIDs []string
	for i, d := range rows {
		entries[i] = DeliveryLogEntry{EmailDelivery: d, Events: []DeliveryEvent{}}
		byID[d.ID] = i
		ids = append(ids, d.ID)
		if d.ResendID != nil && *d.ResendID != "" {
			byResend[*d.ResendID] = i
			resendIDs = append(resendIDs, *d.ResendID)
		}
	}
	q := db.Table("resend_events").Select("delivery_id, resend_email_id, type, occurred_at")
	if len(resendIDs) > 0 {
		q = q.Where("delivery_id IN ? OR resend_email_id IN ?", ids, resendIDs)
	} else {
		q = q.Where("delivery_id IN ?", ids)
	}
	var evs []struct {
		DeliveryID    *uuid.UUID
		ResendEmailID *string
		Type          string
		OccurredAt    time.Time
	}
	if err := q.Order("occurred_at, received_at, svix_id").Scan(&evs).Error; err != nil {
		return nil, fmt.Errorf("list delivery events: %w", err)
	}
	for _, ev := range evs {
		i, ok := -1, false
		if ev.DeliveryID != nil {
			i, ok = byID[*ev.DeliveryID]
		}
		if !ok && ev.ResendEmailID != nil {
			i, ok = byResend[*ev.ResendEmailID]
		}
		if ok {
			entries[i].Events = append(entries[i].Events, DeliveryEvent{Type: ev.Type, OccurredAt: ev.OccurredAt.UTC()})
		}
	}
	return entries, nil
}
