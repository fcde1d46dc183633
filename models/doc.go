// Package models is the kernel of Grace's domain, and the map of it.
//
// The kernel is what every room shares and nothing else: the database
// handle and its transactions (Kernel.InTx, the pgx pipeline behind
// Kernel.InTxPipelined), database errors mapped once (MapDBError), domain
// errors with stable codes (Error, Kind), keyset pages (Page, Cursor),
// input checks (Checker) and PATCH fields (Optional, Apply), the injected
// Clock, tokens and passwords, Markdown rendered and sanitised on write,
// the email outbox written in the caller's transaction, the task queue that
// does a public form's per-address work after its answer (RegisterTask,
// EnqueueTask, RunTasks), PostgreSQL rate limits, Idempotency-Key claims,
// consent evidence, and the kernel's share of a woman's data
// (DataSubject). Rate-limit keys are stored hashed.
//
// The rooms sit on it, each a package with its own Service that embeds the
// Kernel and takes the small interfaces it needs:
//
//	models/catalog  programs, lessons, the cached public program page
//	models/people   coaches and their sessions, participants, sign-in links,
//	                the portal, the gate that decides what she may read, the
//	                Viewer that decides which participants a coach may see,
//	                and the access log every read of her data is written to
//	models/journal  her private reflections on lessons: envelope-encrypted at
//	                rest under a key of her own, shared with a coach only as
//	                the snapshot she chooses, shredded with her key
//	models/enroll   cohorts and live sessions, checkout and seat holds, the
//	                enrollment state machine fed by payment events (through
//	                its PaymentGateway), the sweeper, the waitlist, her calendar
//	models/drip     sequences and steps, scheduling, batched delivery (through
//	                its Renderer), unsubscribe, suppressions, provider events
//	models/privacy  her data rights on top of the rooms: consent texts as
//	                versioned data, her export, her erasure (each room
//	                contributes its share through privacy.Part), retention
//	models/domain   builds the services and connects the hooks
//
// Imports run one way: kernel <- catalog <- people <- journal <- enroll <-
// drip <- privacy (journal needs only the lesson gate below it), and
// models/layers_test.go fails if one runs back up. A lower room whose change
// must schedule or cancel email in the same transaction calls the drip
// engine through an interface it declares itself (catalog.LessonHooks,
// people.ParticipantHooks, enroll.EnrollmentHooks), so the arrow still
// points down. The domain never speaks HTTP and never imports api/ or
// emails/: it returns errors with codes and link names, and the API layer
// turns them into statuses and URLs.
package models
