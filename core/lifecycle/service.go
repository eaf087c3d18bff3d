// Package lifecycle turns requests into transitions and transitions into
// hypervisor calls.
//
// The Service is the API's side: it checks an action against the
// instance's plan, asks the transition policy, and writes the transition
// to etcd. It never calls a driver. The Executor is the owning node's
// side: it watches transitions in etcd and carries them out step by step
// on its local driver, writing each step back. Every status change from
// either side goes through one function (commit) that asks the policy and
// writes state, transition and history in one guarded etcd transaction.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lucid-project/lucid/core/instance"
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

// Service accepts actions from the API. It is safe for concurrent use.
type Service struct {
	store     *store.Store
	validator Validator // nil: only the built-in plans apply
	node      string
	driver    string
	logger    *slog.Logger
	now       func() time.Time
}

// Config configures a Service.
type Config struct {
	Store     *store.Store
	Validator Validator
	// Node receives new instances; Driver is the driver they run on.
	Node   string
	Driver string
	Logger *slog.Logger
}

// NewService returns a Service.
func NewService(cfg Config) *Service {
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Service{store: cfg.Store, validator: cfg.Validator, node: cfg.Node, driver: cfg.Driver, logger: l, now: func() time.Time { return time.Now().UTC() }}
}

// CreateRequest is what a user asks for.
type CreateRequest struct {
	Name      string
	Flavor    string
	Image     string
	RequestID string
}

// RefusedError is a status change the transition policy refused.
type RefusedError struct {
	From, To instance.Status
	Action   instance.Action
	Reason   string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("policy refused %s -> %s during %s: %s", orNone(e.From), e.To, e.Action, e.Reason)
}

// Is makes errors.Is(err, instance.ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == instance.ErrRefused }

func orNone(s instance.Status) string {
	if s == "" {
		return "(new)"
	}
	return string(s)
}

// NewRequestID returns a request id in OpenStack's form.
func NewRequestID() string { return "req-" + uuid.NewString() }

// Create records a new instance in BUILD with a create transition for the
// node to carry out.
func (s *Service) Create(ctx context.Context, req CreateRequest) (store.Record, error) {
	var missing []string
	if strings.TrimSpace(req.Name) == "" {
		missing = append(missing, "name")
	}
	if req.Flavor == "" {
		missing = append(missing, "flavorRef")
	}
	if req.Image == "" {
		missing = append(missing, "imageRef")
	}
	if len(missing) > 0 {
		return store.Record{}, fmt.Errorf("%w: missing %s", instance.ErrInvalid, strings.Join(missing, ", "))
	}
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	plan, _ := instance.PlanFor(instance.ActionCreate)
	now := s.now()
	id := uuid.NewString()
	st := instance.State{
		ID: id, Name: req.Name, VMState: instance.Building, PowerState: instance.NoState,
		Flavor: req.Flavor, Image: req.Image, Node: s.node, Driver: s.driver,
		CreatedAt: now, UpdatedAt: now,
	}
	t := plan.Begin("", req.RequestID, s.node, nil)
	t.StartedAt, t.StepStartedAt = now, now
	return s.commit(ctx, store.Record{}, store.Change{
		ID: id, State: &st, Transition: t,
		History: instance.HistoryRecord{At: now, Action: instance.ActionCreate, Cause: instance.CauseAPI, RequestID: req.RequestID},
	})
}

// Begin starts action on instance id: it writes the action's transition,
// showing its first step. Another action in flight is ErrConflict (unless
// the action pre-empts, as delete does), and so is an action the instance's
// status does not allow. Repeating a delete that is already in flight is
// accepted and changes nothing.
func (s *Service) Begin(ctx context.Context, id string, action instance.Action, args map[string]string, requestID string) (store.Record, error) {
	plan, err := instance.PlanFor(action)
	if err != nil {
		return store.Record{}, err
	}
	if action == instance.ActionCreate || len(plan.Steps) == 0 {
		return store.Record{}, fmt.Errorf("%w: %s is not supported yet", instance.ErrInvalid, action)
	}
	if requestID == "" {
		requestID = NewRequestID()
	}
	// A concurrent step of the executor may move the record between our
	// read and our write; the guarded write then fails as stale and we
	// decide again on a fresh read. Conflicts are decided on that read.
	for attempt := 0; ; attempt++ {
		rec, err := s.store.Get(ctx, id)
		if err != nil {
			return store.Record{}, err
		}
		from := rec.Status()
		if t := rec.Transition; t != nil {
			if t.Action == action && plan.Preempts {
				return rec, nil
			}
			if !plan.Preempts {
				return store.Record{}, fmt.Errorf("%w: instance %s is in %s (%s in flight, request %s)", instance.ErrConflict, id, from, t.Action, t.RequestID)
			}
		}
		if !plan.Allows(from) {
			return store.Record{}, fmt.Errorf("%w: cannot %s instance %s while it is %s", instance.ErrConflict, action, id, from)
		}
		now := s.now()
		t := plan.Begin(from, requestID, rec.State.Node, args)
		t.StartedAt, t.StepStartedAt = now, now
		st := rec.State
		st.UpdatedAt = now
		next, err := s.commit(ctx, rec, store.Change{
			ID: id, State: &st, Transition: t,
			History: instance.HistoryRecord{At: now, Action: action, Cause: instance.CauseAPI, RequestID: requestID},
		})
		if errors.Is(err, store.ErrStale) && attempt < 10 {
			continue
		}
		return next, err
	}
}

// Get returns one instance.
func (s *Service) Get(ctx context.Context, id string) (store.Record, error) {
	return s.store.Get(ctx, id)
}

// List returns every instance.
func (s *Service) List(ctx context.Context) ([]store.Record, error) {
	recs, _, err := s.store.List(ctx)
	return recs, err
}

// History returns an instance's status changes, also after deletion.
func (s *Service) History(ctx context.Context, id string) ([]instance.HistoryRecord, error) {
	return s.store.History(ctx, id)
}

// commit is the one door through which every status change passes: it
// derives from and to, asks the transition policy, and writes the change
// in one guarded transaction. ch.History gets From, To and (if unset) At.
func (s *Service) commit(ctx context.Context, base store.Record, ch store.Change) (store.Record, error) {
	from := instance.Status("")
	if base.StateRev != 0 {
		from = base.Status()
	}
	to := instance.StatusDeleted
	var st instance.State
	if ch.State != nil {
		st = *ch.State
		to = instance.Derive(st, ch.Transition)
	} else {
		st = base.State
	}
	if ch.History.At.IsZero() {
		ch.History.At = s.now()
	}
	ch.History.From, ch.History.To = from, to
	t := ch.Transition
	if t == nil {
		t = base.Transition
	}
	if s.validator != nil {
		v, err := s.validator.Validate(ctx, policy.ValidateRequest{
			Now: ch.History.At, Action: ch.History.Action, Cause: ch.History.Cause,
			From: from, To: to, Instance: st, Transition: t,
		})
		if err != nil {
			s.logger.Error("transition policy failed; using its fallback", "instance", ch.ID, "from", from, "to", to, "allow", v.Allow, "err", err)
		}
		if !v.Allow {
			return store.Record{}, &RefusedError{From: from, To: to, Action: ch.History.Action, Reason: v.Reason}
		}
	}
	return s.store.Commit(ctx, base, ch)
}
