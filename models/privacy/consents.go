package privacy

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// ConsentDocument is a version of a consent text, with its HTML rendered
// and sanitised from the Markdown she is shown.
type ConsentDocument struct {
	models.ConsentDocument
	HTML string
}

func withHTML(d *models.ConsentDocument) *ConsentDocument {
	return &ConsentDocument{ConsentDocument: *d, HTML: models.RenderMarkdown(d.Body)}
}

var errUnknownKind = models.E(models.KindNotFound, "not_found", "There is no consent text of this kind.")

// parseKind accepts the kinds that have a document; the field names it in
// a body, the path otherwise (then it is a 404).
func parseKind(kind string) (models.ConsentKind, bool) {
	k := models.ConsentKind(kind)
	return k, k.Valid()
}

// CurrentDocument is the newest version of kind's text, exactly as she
// is asked to accept it.
func (s *Service) CurrentDocument(ctx context.Context, kind string) (*ConsentDocument, error) {
	k, ok := parseKind(kind)
	if !ok {
		return nil, errUnknownKind
	}
	d, err := models.CurrentConsentDocument(s.DB.WithContext(ctx), k)
	if err != nil {
		return nil, err
	}
	return withHTML(d), nil
}

// EditDocument makes body the current text of kind, as a new version
// edited by actor. The same text as the current one is no edit: it
// returns the current version and created false, so a retried save
// never bumps the version (and never asks every woman to accept again).
// Editors of one kind are serialised by an advisory lock.
func (s *Service) EditDocument(ctx context.Context, actor *people.Coach, kind, body string) (*ConsentDocument, bool, error) {
	k, ok := parseKind(kind)
	if !ok {
		return nil, false, errUnknownKind
	}
	var c models.Checker
	if strings.TrimSpace(body) == "" {
		c.Add("text", "must not be empty")
	} else {
		c.Text("text", body, 1, 100000)
	}
	if err := c.Err(); err != nil {
		return nil, false, err
	}
	var out *models.ConsentDocument
	created := false
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext('consent_documents:' || ?))`, string(k)).Error; err != nil {
			return err
		}
		cur, err := models.CurrentConsentDocument(tx, k)
		if err != nil && !isNotFound(err) {
			return err
		}
		if cur != nil && cur.Body == body {
			out = cur
			return nil
		}
		next := &models.ConsentDocument{ID: uuid.New(), Kind: k, Version: 1, Body: body, EditedBy: &actor.ID, CreatedAt: s.Now()}
		if cur != nil {
			next.Version = cur.Version + 1
		}
		if err := tx.Create(next).Error; err != nil {
			return models.MapDBError(err, "consent document")
		}
		out, created = next, true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return withHTML(out), created, nil
}

func isNotFound(err error) bool {
	e, ok := models.AsError(err)
	return ok && e.Kind == models.KindNotFound
}

var errStaleVersion = models.E(models.KindConflict, "consent_version_stale",
	"This is not the current version of the text. Read the current one and accept that.")

// AcceptConsent records that she, signed in, accepted version of kind's
// text, with the request's evidence. Only the current version can be
// accepted (an older one is consent_version_stale), and accepting it
// again records nothing new. Marketing is not accepted here: it goes
// through its own opt-in, which a withdrawal must be able to follow.
func (s *Service) AcceptConsent(ctx context.Context, p *people.Participant, kind string, version int, client models.ClientInfo) (*models.Consent, error) {
	k := models.ConsentKind(kind)
	var c models.Checker
	if k != models.ConsentDisclaimer && k != models.ConsentPrivacy {
		c.Add("kind", "must be disclaimer or privacy")
	}
	if version < 1 {
		c.Add("version", "must be a version number, 1 or more")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var out models.Consent
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		// Locked, so two clicks record one acceptance.
		if err := tx.Exec(`SELECT 1 FROM participants WHERE id = ? FOR UPDATE`, p.ID).Error; err != nil {
			return err
		}
		doc, err := models.CurrentConsentDocument(tx, k)
		if err != nil {
			return err
		}
		if doc.Version != version {
			return errStaleVersion
		}
		err = tx.Where("participant_id = ? AND document_id = ? AND granted", p.ID, doc.ID).Order("created_at").Take(&out).Error
		if err == nil {
			return nil
		}
		if !isNotFound(models.MapDBError(err, "consent")) {
			return err
		}
		out = models.NewConsent(p.ID, nil, doc, true, client, s.Now())
		return models.MapDBError(tx.Create(&out).Error, "consent")
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
