// Package lifecycle is where status changes are decided and written.
//
// The Recorder is the one write door: every status change, whoever makes
// it (the API-side Service, the node's executor, the reconciler), asks the
// validate policy and then writes state, transition and history in one
// guarded etcd transaction. The Service turns user requests into
// transitions; it never calls a driver. The executor (core/executor) runs
// transitions on the owning node and writes each step back through the
// Recorder.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/metrics"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/core/store"
)

// Validator decides whether a status change may be written. A
// *policy.Module satisfies it. On a policy failure (trap, timeout) it
// returns an error together with the configured fallback verdict, which
// is what counts.
type Validator interface {
	Validate(ctx context.Context, req policy.ValidateRequest) (policy.Verdict, error)
}

// Recorder is the one door through which status changes are written. It
// is safe for concurrent use.
type Recorder struct {
	store     *store.Store
	quotas    Quotas
	validator Validator // nil: only the action table applies
	policy    string    // names the validator in history records
	metrics   *metrics.Set
	logger    *slog.Logger
	now       func() time.Time
}

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	Store *store.Store
	// Validator is the validate policy; nil lets every change through
	// (the action table still applies: callers only propose its changes).
	Validator Validator
	// Policy names the validator in history records, e.g.
	// "transitions@1.0.0 sha256:3f2a…".
	Policy string
	Logger *slog.Logger
	// Now is the clock; nil means time.Now in UTC.
	Now func() time.Time
	// Quotas are the projects' limits, checked when a change the API
	// asks for (cause api) makes an instance hold more; nil checks
	// nothing. Usage is counted either way (store.Commit).
	Quotas Quotas
	// Metrics counts status changes by cause; nil counts nothing.
	Metrics *metrics.Set
}

// Quotas says what a project may hold.
type Quotas interface {
	Limits(project string) store.Limits
}

// NewRecorder returns a Recorder.
func NewRecorder(cfg RecorderConfig) *Recorder {
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &Recorder{store: cfg.Store, quotas: cfg.Quotas, validator: cfg.Validator, policy: cfg.Policy, metrics: cfg.Metrics, logger: l, now: now}
}

// Now is the Recorder's clock, so that callers stamp records alike.
func (r *Recorder) Now() time.Time { return r.now() }

// Change is a status change of one instance: what the record becomes and
// who made the change, for which request.
type Change struct {
	ID string
	// State is the new settled state; nil means the instance is gone.
	State *instance.State
	// Transition is the action in flight afterwards; nil means none.
	Transition *instance.Transition
	Action     instance.Action
	Cause      instance.Cause
	RequestID  string
	User       string
	Message    string
	// Policy names the policy that decided the change, for the history
	// record (the reconciler's decisions name the reconcile policy).
	Policy string
	// At stamps the history record; zero means now.
	At time.Time
}

// RefusedError is a status change the validate policy refused, or could
// not judge (Failed: the policy trapped or timed out and its fallback
// denied).
type RefusedError struct {
	From, To instance.Status
	Action   instance.Action
	Reason   string
	// Policy names the policy that refused.
	Policy string
	// Failed says the policy did not decide: it failed and the fallback
	// answered. Err is why.
	Failed bool
	Err    error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("policy refused %s -> %s during %s: %s", orNone(e.From), e.To, e.Action, e.Reason)
}

// Is makes errors.Is(err, instance.ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == instance.ErrRefused }

// Unwrap returns the policy's failure, if any.
func (e *RefusedError) Unwrap() error { return e.Err }

func orNone(s instance.Status) string {
	if s == "" {
		return "(new)"
	}
	return string(s)
}

// Record validates a status change against base (the record as read) and
// commits it in one guarded transaction with its history record. A
// refusal is a *RefusedError and writes nothing; a lost race is
// store.ErrStale and writes nothing.
func (r *Recorder) Record(ctx context.Context, base store.Record, ch Change) (store.Record, error) {
	if ch.At.IsZero() {
		ch.At = r.now()
	}
	if err := r.Check(ctx, base, ch); err != nil {
		return store.Record{}, err
	}
	return r.commit(ctx, base, ch, ch.Policy)
}

// Check asks the policy whether ch may be written over base, without
// writing it. The Service uses it for an action whose first step shows no
// status (confirmResize): the change the action will make is judged when
// the user asks, so a forbidden action is refused at once.
func (r *Recorder) Check(ctx context.Context, base store.Record, ch Change) error {
	if r.validator == nil {
		return nil
	}
	from, to := statuses(base, ch)
	st := base.State
	if ch.State != nil {
		st = *ch.State
	}
	t := ch.Transition
	if t == nil {
		t = base.Transition
	}
	at := ch.At
	if at.IsZero() {
		at = r.now()
	}
	req := policy.ValidateRequest{Now: at, Action: ch.Action, Cause: ch.Cause, From: from, To: to, Instance: st, Transition: t}
	// A policy that failed (trapped, timed out) did not decide; its
	// instance was discarded, so asking again gets a fresh one. Only a
	// policy that keeps failing lets its fallback answer.
	var v policy.Verdict
	var err error
	for attempt := 1; ; attempt++ {
		v, err = r.validator.Validate(ctx, req)
		if err == nil || attempt == policyAttempts || ctx.Err() != nil {
			break
		}
		r.logger.Warn("validate policy failed; asking again", "instance", ch.ID, "from", from, "to", to, "attempt", attempt, "err", err)
	}
	if err != nil {
		r.logger.Error("validate policy failed; its fallback answered", "instance", ch.ID, "from", from, "to", to,
			"allow", v.Allow, "err", err)
	}
	if !v.Allow {
		return &RefusedError{From: from, To: to, Action: ch.Action, Reason: v.Reason, Policy: r.policy, Failed: err != nil, Err: err}
	}
	return nil
}

// policyAttempts is how many times a failing validate policy is asked
// before its fallback answers.
const policyAttempts = 3

// Impose writes ERROR with a fault without asking the policy. It exists
// for one purpose: to end a transition whose outcome the policy refused or
// could not judge, so that no transition stays in flight forever and the
// record says why. Its history record has cause policy and names the
// policy. ch.State must be in ERROR with a fault.
func (r *Recorder) Impose(ctx context.Context, base store.Record, ch Change) (store.Record, error) {
	if ch.State == nil || ch.State.VMState != instance.Error || ch.State.Fault == nil || ch.Transition != nil {
		return store.Record{}, fmt.Errorf("lifecycle: Impose writes only a settled ERROR with a fault")
	}
	if ch.At.IsZero() {
		ch.At = r.now()
	}
	ch.Cause = instance.CausePolicy
	return r.commit(ctx, base, ch, r.policy)
}

// Update writes a change that changes no status (a flag, the transition
// of an action whose first step shows nothing, a resumed step's clock):
// guarded, unvalidated, without a history record. A change that would
// change the status is refused.
func (r *Recorder) Update(ctx context.Context, base store.Record, id string, st *instance.State, t *instance.Transition) (store.Record, error) {
	if st == nil {
		return store.Record{}, fmt.Errorf("lifecycle: Update cannot delete instance %s", id)
	}
	if from, to := base.Status(), instance.Derive(*st, t); from != to {
		return store.Record{}, fmt.Errorf("lifecycle: Update of %s would change its status %s -> %s; that needs Record", id, from, to)
	}
	return r.store.Commit(ctx, base, store.Change{ID: id, State: st, Transition: t})
}

func (r *Recorder) commit(ctx context.Context, base store.Record, ch Change, pol string) (store.Record, error) {
	from, to := statuses(base, ch)
	project := base.State.Project
	if ch.State != nil {
		project = ch.State.Project
	}
	sc := store.Change{
		ID: ch.ID, State: ch.State, Transition: ch.Transition,
		History: &instance.HistoryRecord{
			At: ch.At, From: from, To: to, Action: ch.Action, Cause: ch.Cause,
			RequestID: ch.RequestID, User: ch.User, Project: project, Message: ch.Message, Policy: pol,
		},
	}
	if r.quotas != nil && ch.Cause == instance.CauseAPI {
		l := r.quotas.Limits(project)
		sc.Limits = &l
	}
	next, err := r.store.Commit(ctx, base, sc)
	if err == nil {
		r.metrics.StatusChanged(string(ch.Cause))
	}
	return next, err
}

// statuses derives the from and to of a change: "" from for a create,
// DELETED to for a removal.
func statuses(base store.Record, ch Change) (from, to instance.Status) {
	if base.StateRev != 0 {
		from = base.Status()
	}
	to = instance.StatusDeleted
	if ch.State != nil {
		to = instance.Derive(*ch.State, ch.Transition)
	}
	return from, to
}

// IsPolicyFailure reports whether err is a refusal that came from a
// failing policy (its fallback), not from its judgement.
func IsPolicyFailure(err error) bool {
	var re *RefusedError
	return errors.As(err, &re) && re.Failed
}
