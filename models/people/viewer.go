package people

import (
	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Viewer is who is reading participants' personal data, computed once from
// the signed-in coach and handed to every query that can reach a
// participant. An admin sees everyone; a coach with role coach only her own
// participants: those with an enrollment (any status) in a cohort she leads
// or co-leads, and those granted a program she leads other than through an
// enrollment (her free workshop, a complimentary grant). Anyone else is not
// found for her, never forbidden, so a 404 does not say the person exists.
type Viewer struct {
	CoachID   uuid.UUID
	CoachName string
	Admin     bool
}

// ViewerOf is the scope of actor; a missing or inactive coach sees no one.
func ViewerOf(actor *Coach) (Viewer, error) {
	if actor == nil || !actor.Active {
		return Viewer{}, ErrAdminOnly
	}
	return Viewer{CoachID: actor.ID, CoachName: actor.Name, Admin: actor.Role == RoleAdmin}, nil
}

// ownParticipantsSQL lists the participant ids a coach may see; both ? are
// her id. Each arm runs on an index (cohort_coaches by coach, enrollments
// by cohort, programs by lead, access_grants by program).
const ownParticipantsSQL = `
	SELECT e.participant_id FROM enrollments e JOIN cohort_coaches cc ON cc.cohort_id = e.cohort_id WHERE cc.coach_id = ?
	UNION ALL
	SELECT g.participant_id FROM access_grants g JOIN programs pr ON pr.id = g.program_id
	WHERE pr.lead_coach_id = ? AND g.enrollment_id IS NULL`

// ScopeParticipants limits q to the participants v may see; column is the
// participant id column of q (such as "participants.id").
func (v Viewer) ScopeParticipants(q *gorm.DB, column string) *gorm.DB {
	if v.Admin {
		return q
	}
	return q.Where(column+" IN ("+ownParticipantsSQL+")", v.CoachID, v.CoachID)
}

// ScopeGrants limits q (on access_grants aliased g, joined to programs
// aliased pr) to the grants that make her v's participant: a coach does not
// see what a woman does in another coach's cohort or program.
func (v Viewer) ScopeGrants(q *gorm.DB) *gorm.DB {
	if v.Admin {
		return q
	}
	return q.Where(`(g.enrollment_id IN (SELECT e.id FROM enrollments e JOIN cohort_coaches cc ON cc.cohort_id = e.cohort_id WHERE cc.coach_id = ?)
		OR (g.enrollment_id IS NULL AND pr.lead_coach_id = ?))`, v.CoachID, v.CoachID)
}
