package models

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Idempotency keys let a client retry a POST (after a timeout, a dropped
// connection, a double click) and get the first answer instead of a second
// effect. The key is the client's; the request hash binds it to one request,
// so the same key with another body is an error, not a replay.

const (
	// IdempotencyKeyTTL is how long a stored answer is replayed. After it,
	// the key may be used again.
	IdempotencyKeyTTL = 24 * time.Hour
	// IdempotencyInFlightTimeout is how long a claim without an answer
	// blocks its key. It outlasts the server's write timeout, so it only
	// frees keys whose request died with its process.
	IdempotencyInFlightTimeout = 5 * time.Minute
)

// StoredResponse is an answer kept for replay.
type StoredResponse struct {
	StatusCode int
	Body       []byte
}

// IdempotencyClaim is the right to run the request for one key. Exactly one
// holder exists at a time; it ends with FinishIdempotent or
// AbandonIdempotent.
type IdempotencyClaim struct {
	scope, key  string
	requestHash []byte
	// token is drawn for this claim and written with it. A later claim of
	// the same key (after an abandon or a takeover) writes its own, so a
	// stale holder can never store its answer over the new one, whatever
	// the clocks say.
	token uuid.UUID
}

var (
	errIdempotencyKeyReused    = E(KindInvalid, "idempotency_key_reused", "This Idempotency-Key was already used for a different request. Use a new key for a new request.")
	errIdempotencyInProgress   = E(KindConflict, "idempotency_in_progress", "A request with this Idempotency-Key is still being processed. Retry in a moment.")
	errInvalidIdempotencyKey   = E(KindBadRequest, "invalid_idempotency_key", "The Idempotency-Key header must be 1 to 255 characters.")
	errIdempotencyClaimExpired = errors.New("idempotency claim no longer held")
)

// ValidIdempotencyKey reports whether key may be used: 1 to 255 printable
// ASCII characters, so it is safe to store and to echo in logs.
func ValidIdempotencyKey(key string) error {
	if len(key) < 1 || len(key) > 255 {
		return errInvalidIdempotencyKey
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return errInvalidIdempotencyKey
		}
	}
	return nil
}

// BeginIdempotent claims key within scope for a request whose hash is
// requestHash. It returns either a claim (run the request, then Finish or
// Abandon) or the stored answer of the earlier identical request (replay
// it). The key used for another request is idempotency_key_reused (422); a
// key whose first request is still running is idempotency_in_progress (409).
// One INSERT decides between concurrent duplicates, so only one runs.
func (s *Kernel) BeginIdempotent(ctx context.Context, scope, key string, requestHash []byte) (*IdempotencyClaim, *StoredResponse, error) {
	if err := ValidIdempotencyKey(key); err != nil {
		return nil, nil, err
	}
	if len(requestHash) == 0 {
		return nil, nil, errors.New("idempotency: empty request hash")
	}
	// Two rounds at most: the row we conflicted with may be deleted (an
	// abandoned claim) between the INSERT and the SELECT.
	for range 2 {
		now := s.Now().Truncate(time.Microsecond)
		token := uuid.New()
		var claimed []uuid.UUID
		// An existing row is taken over only when its answer is past the
		// TTL, or when it is a claim for this same request that died.
		err := s.DB.WithContext(ctx).Raw(`
			INSERT INTO idempotency_keys AS k (scope, key, request_hash, created_at, claim_token) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (scope, key) DO UPDATE SET
				request_hash = excluded.request_hash, status_code = NULL, response_body = NULL, created_at = excluded.created_at,
				claim_token = excluded.claim_token
			WHERE k.created_at < ?
			   OR (k.status_code IS NULL AND k.created_at < ? AND k.request_hash = excluded.request_hash)
			RETURNING claim_token`,
			scope, key, requestHash, now, token, now.Add(-IdempotencyKeyTTL), now.Add(-IdempotencyInFlightTimeout)).Scan(&claimed).Error
		if err != nil {
			return nil, nil, fmt.Errorf("idempotency claim: %w", err)
		}
		if len(claimed) == 1 {
			return &IdempotencyClaim{scope: scope, key: key, requestHash: requestHash, token: claimed[0]}, nil, nil
		}
		var rows []struct {
			RequestHash  []byte
			StatusCode   *int
			ResponseBody []byte
		}
		err = s.DB.WithContext(ctx).Raw(`SELECT request_hash, status_code, response_body FROM idempotency_keys WHERE scope = ? AND key = ?`, scope, key).Scan(&rows).Error
		if err != nil {
			return nil, nil, fmt.Errorf("idempotency lookup: %w", err)
		}
		if len(rows) == 0 {
			continue
		}
		row := rows[0]
		switch {
		case !bytes.Equal(row.RequestHash, requestHash):
			return nil, nil, errIdempotencyKeyReused
		case row.StatusCode == nil:
			return nil, nil, errIdempotencyInProgress
		default:
			return nil, &StoredResponse{StatusCode: *row.StatusCode, Body: row.ResponseBody}, nil
		}
	}
	return nil, nil, errIdempotencyInProgress
}

// FinishIdempotent stores the answer of a claimed request for replay.
func (s *Kernel) FinishIdempotent(ctx context.Context, c *IdempotencyClaim, resp StoredResponse) error {
	res := s.DB.WithContext(ctx).Exec(`
		UPDATE idempotency_keys SET status_code = ?, response_body = ?
		WHERE scope = ? AND key = ? AND claim_token = ? AND status_code IS NULL`,
		resp.StatusCode, resp.Body, c.scope, c.key, c.token)
	if res.Error != nil {
		return fmt.Errorf("idempotency finish: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return errIdempotencyClaimExpired
	}
	return nil
}

// AbandonIdempotent drops a claim without an answer (the request failed on
// our side), so a retry with the same key runs again.
func (s *Kernel) AbandonIdempotent(ctx context.Context, c *IdempotencyClaim) error {
	err := s.DB.WithContext(ctx).Exec(`
		DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND claim_token = ? AND status_code IS NULL`,
		c.scope, c.key, c.token).Error
	if err != nil {
		return fmt.Errorf("idempotency abandon: %w", err)
	}
	return nil
}

// PruneIdempotencyKeys deletes keys past their TTL, so the table stays small.
func (s *Kernel) PruneIdempotencyKeys(ctx context.Context) (int64, error) {
	res := s.DB.WithContext(ctx).Exec(`DELETE FROM idempotency_keys WHERE created_at < ?`, s.Now().Add(-IdempotencyKeyTTL))
	return res.RowsAffected, res.Error
}
