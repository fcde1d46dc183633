package people

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/grace-coaching/grace/models"
)

// Double opt-in for marketing email. A public form cannot tell her from
// someone who knows her address, so its yes is a request: she is emailed a
// link, and only following it (a POST, like unsubscribe: scanners fetch
// links) records her consent, with that request's evidence.

const (
	// MarketingOptInTTL is how long a confirmation link works.
	MarketingOptInTTL = 7 * 24 * time.Hour
	// marketingOptInGap is the least time between two confirmation emails
	// to one address, so a stranger submitting forms cannot flood her.
	marketingOptInGap = 24 * time.Hour

	TemplateMarketingOptIn = "marketing_optin"
)

var (
	errUnknownOptIn = models.NotFound("confirmation link")
	errOptInExpired = models.E(models.KindGone, "optin_expired", "This confirmation link has expired. Tick the box on the form again to get a new one.")
)

// MarketingOptIn is one request for her confirmation.
type MarketingOptIn struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	ProgramID     *uuid.UUID
	TokenHash     []byte
	CreatedAt     time.Time
	ExpiresAt     time.Time
	ConfirmedAt   *time.Time
}

// OptInStatus is what a confirmation link does, or did. The address is
// masked: the link travels in email and may be forwarded.
type OptInStatus struct {
	MaskedEmail string
	ExpiresAt   time.Time
	// ConfirmedAt is nil until she confirms.
	ConfirmedAt *time.Time
}

// RequestMarketingOptIn asks her, by email, to confirm that she wants
// marketing email, inside tx (the form's transaction, so the email exists
// exactly when the form's work commits). It records no consent and clears
// no unsubscribe, and keeps nothing of the form's request: its evidence
// proves nothing about her; the confirming request's does. Nothing is sent when marketing email already reaches her
// with her consent, or when a request of the last day is still open.
func (s *Service) RequestMarketingOptIn(tx *gorm.DB, p *Participant, programID *uuid.UUID) error {
	// Locked, so concurrent forms send one email.
	var her Participant
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", p.ID).Take(&her).Error; err != nil {
		return models.MapDBError(err, "participant")
	}
	now := s.Now()
	var state struct {
		Granted bool
		Pending bool
	}
	err := tx.Raw(`
		SELECT COALESCE((SELECT c.granted FROM consents c WHERE c.participant_id = @p AND c.kind = 'marketing'
		                 ORDER BY c.created_at DESC, c.id DESC LIMIT 1), false) AS granted,
		       EXISTS (SELECT 1 FROM marketing_optins o WHERE o.participant_id = @p AND o.confirmed_at IS NULL
		               AND o.expires_at > @now AND o.created_at > @since) AS pending`,
		map[string]any{"p": her.ID, "now": now, "since": now.Add(-marketingOptInGap)}).Scan(&state).Error
	if err != nil {
		return fmt.Errorf("marketing opt-in: %w", err)
	}
	if (state.Granted && her.MarketingUnsubscribedAt == nil) || state.Pending {
		return nil
	}
	token, hash := models.NewToken()
	o := MarketingOptIn{ID: uuid.New(), ParticipantID: her.ID, ProgramID: programID, TokenHash: hash, CreatedAt: now, ExpiresAt: now.Add(MarketingOptInTTL)}
	if err := tx.Create(&o).Error; err != nil {
		return models.MapDBError(err, "marketing opt-in")
	}
	confirmURL := ""
	if s.confirmURL != nil {
		confirmURL = s.confirmURL(token)
	}
	return s.EnqueueEmail(tx, TemplateMarketingOptIn, her.Email, her.GreetingName(), "marketing_optin:"+o.ID.String(), map[string]any{
		"name":         her.GreetingName(),
		"token":        token,
		"confirm_url":  confirmURL,
		"expires_days": int(MarketingOptInTTL / (24 * time.Hour)),
	})
}

// MarketingOptInInfo tells what the confirmation link would do without
// doing it.
func (s *Service) MarketingOptInInfo(ctx context.Context, token string) (*OptInStatus, error) {
	if !validLinkToken(token) {
		return nil, errUnknownOptIn
	}
	var row struct {
		MarketingOptIn
		Email string
	}
	err := s.DB.WithContext(ctx).Raw(`
		SELECT o.*, p.email FROM marketing_optins o JOIN participants p ON p.id = o.participant_id
		WHERE o.token_hash = ?`, models.HashToken(token)).Take(&row).Error
	if err != nil {
		return nil, models.MapDBError(err, "confirmation link")
	}
	st := &OptInStatus{MaskedEmail: models.MaskEmail(row.Email), ExpiresAt: row.ExpiresAt.UTC(), ConfirmedAt: models.StoredTimePtr(row.ConfirmedAt)}
	if st.ConfirmedAt == nil && !s.Now().Before(row.ExpiresAt) {
		return nil, errOptInExpired
	}
	return st, nil
}

// ConfirmMarketingOptIn is her yes: it records her marketing consent with
// this request's evidence, clears an earlier unsubscribe and marks her
// address as proven, all once. Confirming again changes nothing.
func (s *Service) ConfirmMarketingOptIn(ctx context.Context, token string, client models.ClientInfo) (*OptInStatus, error) {
	if !validLinkToken(token) {
		return nil, errUnknownOptIn
	}
	var out OptInStatus
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var o MarketingOptIn
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("token_hash = ?", models.HashToken(token)).Take(&o).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errUnknownOptIn
		}
		if err != nil {
			return fmt.Errorf("find opt-in: %w", err)
		}
		var p Participant
		if err := tx.Where("id = ?", o.ParticipantID).Take(&p).Error; err != nil {
			return models.MapDBError(err, "participant")
		}
		out = OptInStatus{MaskedEmail: models.MaskEmail(p.Email), ExpiresAt: o.ExpiresAt.UTC(), ConfirmedAt: models.StoredTimePtr(o.ConfirmedAt)}
		if o.ConfirmedAt != nil {
			return nil
		}
		now := s.Now()
		if !now.Before(o.ExpiresAt) {
			return errOptInExpired
		}
		if err := tx.Exec(`UPDATE marketing_optins SET confirmed_at = ? WHERE id = ?`, now, o.ID).Error; err != nil {
			return fmt.Errorf("confirm opt-in: %w", err)
		}
		// The marketing text in force when she confirms is the one her
		// confirmation page showed her.
		doc, err := models.CurrentConsentDocument(tx, models.ConsentMarketing)
		if err != nil {
			return err
		}
		c := models.NewConsent(p.ID, o.ProgramID, doc, true, client, now)
		if err := tx.Create(&c).Error; err != nil {
			return models.MapDBError(err, "consent")
		}
		// Her own yes, from her inbox, outranks her earlier unsubscribe.
		err = tx.Exec(`UPDATE participants SET marketing_unsubscribed_at = NULL, email_verified_at = COALESCE(email_verified_at, ?), updated_at = ?
			WHERE id = ?`, now, now, p.ID).Error
		if err != nil {
			return models.MapDBError(err, "participant")
		}
		out.ConfirmedAt = models.StoredTimePtr(&now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// validLinkToken is the shape models.NewToken mints (base64url, 43
// characters), so a junk token costs no query.
func validLinkToken(token string) bool {
	if len(token) < 32 || len(token) > 128 {
		return false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (MarketingOptIn) TableName() string { return "marketing_optins" }
