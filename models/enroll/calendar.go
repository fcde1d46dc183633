package enroll

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// calendarUIDDomain makes event UIDs globally unique: a session keeps its
// UID for life, so a moved session moves in her calendar instead of
// appearing twice.
const calendarUIDDomain = "grace"

var errCalendarNotFound = models.E(models.KindNotFound, "not_found",
	"This calendar link is not valid, perhaps because a newer one replaced it. Copy the current link from your portal.")

// PublicCohort is what anyone may see of a cohort that is not a draft: no
// meeting or recording links, no seat details beyond what is left.
type PublicCohort struct {
	Cohort
	// EnrollmentOpen: a checkout can start now.
	EnrollmentOpen bool
	ProgramSlug    string
	ProgramTitle   string
	Sessions       []LiveSession
}

// PortalEnrollment is one of her enrollments as her portal shows it. Session
// links are only filled in while the enrollment is active.
type PortalEnrollment struct {
	Enrollment
	Cohort       Cohort
	ProgramSlug  string
	ProgramTitle string
	Sessions     []LiveSession
}

// withoutLinks is the sessions with their meeting and recording links
// removed, for anyone not actively enrolled.
func withoutLinks(in []LiveSession) []LiveSession {
	out := make([]LiveSession, len(in))
	for i, l := range in {
		l.MeetingURL, l.RecordingURL = nil, nil
		out[i] = l
	}
	return out
}

// sessionsByCohort reads the sessions of the cohorts in one query, in the
// order they happen.
func sessionsByCohort(db *gorm.DB, cohortIDs []uuid.UUID) (map[uuid.UUID][]LiveSession, error) {
	out := make(map[uuid.UUID][]LiveSession, len(cohortIDs))
	if len(cohortIDs) == 0 {
		return out, nil
	}
	var rows []LiveSession
	if err := db.Where("cohort_id IN ?", cohortIDs).Order("starts_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read live sessions: %w", err)
	}
	for _, l := range rows {
		out[l.CohortID] = append(out[l.CohortID], l)
	}
	return out, nil
}

// GetPublicCohort is the public page of a cohort. A draft is not found, as
// if it did not exist.
func (s *Service) GetPublicCohort(ctx context.Context, id uuid.UUID) (*PublicCohort, error) {
	db := s.DB.WithContext(ctx)
	var co Cohort
	if err := db.Where("id = ? AND status <> ?", id, CohortDraft).Take(&co).Error; err != nil {
		return nil, models.MapDBError(err, "cohort")
	}
	var p catalog.Program
	if err := db.Select("id", "slug", "title").Where("id = ?", co.ProgramID).Take(&p).Error; err != nil {
		return nil, models.MapDBError(err, "program")
	}
	sessions, err := sessionsByCohort(db, []uuid.UUID{co.ID})
	if err != nil {
		return nil, err
	}
	return &PublicCohort{Cohort: co, EnrollmentOpen: co.EnrollmentOpen(s.Now()), ProgramSlug: p.Slug, ProgramTitle: p.Title, Sessions: withoutLinks(sessions[co.ID])}, nil
}

// ListPortalEnrollments lists her own enrollments, newest first, each with
// its cohort, program and sessions. Meeting and recording links are for
// women whose place is active; a pending, lapsed or refunded one sees the
// schedule only.
func (s *Service) ListPortalEnrollments(ctx context.Context, p *people.Participant, pp models.PageParams) (models.Page[PortalEnrollment], error) {
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[PortalEnrollment]{}, err
	}
	db := s.DB.WithContext(ctx)
	q := db.Where("participant_id = ?", p.ID)
	if cur != nil {
		q = q.Where("(created_at, id) < (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	var rows []Enrollment
	if err := q.Order("created_at DESC, id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[PortalEnrollment]{}, fmt.Errorf("list her enrollments: %w", err)
	}
	page := models.PageOf(rows, limit, func(e Enrollment) models.Cursor { return models.Cursor{At: e.CreatedAt, ID: e.ID} })
	items, err := portalEnrollments(db, page.Items)
	if err != nil {
		return models.Page[PortalEnrollment]{}, err
	}
	return models.Page[PortalEnrollment]{Items: items, NextCursor: page.NextCursor}, nil
}

// portalEnrollments adds cohort, program and sessions to a page of her
// enrollments in a fixed number of queries.
func portalEnrollments(db *gorm.DB, enrollments []Enrollment) ([]PortalEnrollment, error) {
	out := make([]PortalEnrollment, 0, len(enrollments))
	if len(enrollments) == 0 {
		return out, nil
	}
	cohortIDs := make([]uuid.UUID, 0, len(enrollments))
	for _, e := range enrollments {
		cohortIDs = append(cohortIDs, e.CohortID)
	}
	var cohorts []Cohort
	if err := db.Where("id IN ?", cohortIDs).Find(&cohorts).Error; err != nil {
		return nil, fmt.Errorf("read her cohorts: %w", err)
	}
	cohortByID := make(map[uuid.UUID]Cohort, len(cohorts))
	programIDs := make([]uuid.UUID, 0, len(cohorts))
	for _, c := range cohorts {
		cohortByID[c.ID] = c
		programIDs = append(programIDs, c.ProgramID)
	}
	var programs []catalog.Program
	if err := db.Select("id", "slug", "title").Where("id IN ?", programIDs).Find(&programs).Error; err != nil {
		return nil, fmt.Errorf("read her programs: %w", err)
	}
	programByID := make(map[uuid.UUID]catalog.Program, len(programs))
	for _, pr := range programs {
		programByID[pr.ID] = pr
	}
	sessions, err := sessionsByCohort(db, cohortIDs)
	if err != nil {
		return nil, err
	}
	for _, e := range enrollments {
		c := cohortByID[e.CohortID]
		pr := programByID[c.ProgramID]
		ss := sessions[e.CohortID]
		if e.Status == EnrollmentActive {
			ss = append([]LiveSession(nil), ss...)
		} else {
			ss = withoutLinks(ss)
		}
		if ss == nil {
			ss = []LiveSession{}
		}
		out = append(out, PortalEnrollment{Enrollment: e, Cohort: c, ProgramSlug: pr.Slug, ProgramTitle: pr.Title, Sessions: ss})
	}
	return out, nil
}

// RotateCalendarToken issues her a new calendar feed token. Only its hash is
// kept, and it replaces the previous one: the old feed URL stops working at
// once, which is how she cuts off a calendar she shared by mistake.
func (s *Service) RotateCalendarToken(ctx context.Context, p *people.Participant) (string, error) {
	token, hash := models.NewToken()
	err := s.DB.WithContext(ctx).Exec(`
		INSERT INTO calendar_tokens (participant_id, token_hash, created_at) VALUES (?, ?, ?)
		ON CONFLICT (participant_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at`,
		p.ID, hash, s.Now()).Error
	if err != nil {
		return "", models.MapDBError(err, "calendar token")
	}
	return token, nil
}

// calendarEvent is one live session in her feed, with its cohort.
type calendarEvent struct {
	LiveSession
	CohortName     string
	CohortTimezone string
	CohortStatus   CohortStatus
}

// icsText keeps a value on one logical line; the library escapes the rest.
func icsText(s string) string {
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
}

// calendarTexts are an event's title, description and description once
// cancelled. In discreet mode they name no program, cohort or topic: a
// calendar is read over her shoulder, synced to shared devices and shown on
// lock screens.
func calendarTexts(ev calendarEvent, discreet bool) (summary, desc, cancelled string) {
	if discreet {
		return "Appointment", "", "Cancelled."
	}
	desc = fmt.Sprintf("Live session of %s. The cohort keeps %s time; your calendar shows it in yours.", icsText(ev.CohortName), ev.CohortTimezone)
	if loc, err := time.LoadLocation(ev.CohortTimezone); err == nil {
		desc += "\nIn " + ev.CohortTimezone + " it starts " + ev.StartsAt.In(loc).Format("Mon 2 Jan 2006 at 15:04") + "."
	}
	return icsText(ev.CohortName + ": " + ev.Title), desc, fmt.Sprintf("%s has been cancelled.", icsText(ev.CohortName))
}

// CalendarFeed renders the RFC 5545 feed of the live sessions of her active
// enrollments. An unknown token is not found: a calendar app that gets a
// 401 may prompt for a password she does not have.
func (s *Service) CalendarFeed(ctx context.Context, token string) ([]byte, error) {
	if token == "" {
		return nil, errCalendarNotFound
	}
	db := s.DB.WithContext(ctx)
	var owners []struct {
		ParticipantID uuid.UUID
		Discreet      bool
	}
	if err := db.Raw(`SELECT t.participant_id, p.discreet FROM calendar_tokens t JOIN participants p ON p.id = t.participant_id
		WHERE t.token_hash = ?`, models.HashToken(token)).Scan(&owners).Error; err != nil {
		return nil, fmt.Errorf("find calendar token: %w", err)
	}
	if len(owners) != 1 {
		return nil, errCalendarNotFound
	}
	discreet := owners[0].Discreet
	var events []calendarEvent
	err := db.Raw(`
		SELECT ls.*, c.name AS cohort_name, c.timezone AS cohort_timezone, c.status AS cohort_status
		FROM enrollments e
		JOIN cohorts c ON c.id = e.cohort_id
		JOIN live_sessions ls ON ls.cohort_id = c.id
		WHERE e.participant_id = ? AND e.status = ?
		ORDER BY ls.starts_at, ls.id`, owners[0].ParticipantID, EnrollmentActive).Scan(&events).Error
	if err != nil {
		return nil, fmt.Errorf("read calendar sessions: %w", err)
	}

	cal := ics.NewCalendar()
	if discreet {
		// Anyone who sees her calendar sees an appointment, nothing more.
		cal.SetProductId("-//Calendar//EN")
		cal.SetXWRCalName("Appointments")
	} else {
		cal.SetProductId("-//Grace//Live sessions//EN")
		cal.SetXWRCalName("Grace live sessions")
	}
	cal.SetMethod(ics.MethodPublish)
	cal.SetCalscale("GREGORIAN")
	// Calendar apps poll a subscription; an hour keeps a moved session
	// fresh without hammering the API.
	cal.SetRefreshInterval("PT1H")
	cal.SetXPublishedTTL("PT1H")
	for _, ev := range events {
		e := cal.AddEvent(ev.ID.String() + "@" + calendarUIDDomain)
		// DTSTAMP is the session's last change, not now, so an unchanged
		// feed is byte-identical on every fetch and apps see nothing to do.
		e.SetDtStampTime(ev.UpdatedAt)
		e.SetModifiedAt(ev.UpdatedAt)
		e.SetStartAt(ev.StartsAt)
		e.SetEndAt(ev.EndsAt())
		summary, desc, cancelled := calendarTexts(ev, discreet)
		e.SetSummary(summary)
		if ev.CohortStatus == CohortCancelled {
			e.SetStatus(ics.ObjectStatusCancelled)
			desc = cancelled
		} else {
			e.SetStatus(ics.ObjectStatusConfirmed)
			if ev.MeetingURL != nil {
				e.SetLocation(*ev.MeetingURL)
				e.SetURL(*ev.MeetingURL)
				desc = strings.TrimPrefix(desc+"\nJoin: "+*ev.MeetingURL, "\n")
			}
		}
		e.SetDescription(desc)
	}
	var buf bytes.Buffer
	// RFC 5545 lines end in CRLF; the library's default is a bare LF.
	if err := cal.SerializeTo(&buf, ics.WithNewLine("\r\n")); err != nil {
		return nil, fmt.Errorf("render calendar: %w", err)
	}
	return buf.Bytes(), nil
}
