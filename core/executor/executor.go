// Package executor runs, on each node, the transitions that node owns.
//
// The API writes a transition into etcd and returns; the owning node's
// executor notices it (a watch on the transition keys, or at once when
// the API runs on the same node and hands the write over: Hand), runs
// each step's driver operation in order and writes the outcome back
// through the lifecycle Recorder: the next step, the action's end, or
// its failure.
// Every transition ends: a step the driver cannot finish fails with a
// fault, and an outcome the validate policy refuses ends in ERROR with a
// fault naming the policy.
//
// The executor depends only on the sdk driver contract (sdk/driver), never
// on the plugin host, so it runs any driver.Driver: a plugin, or a driver
// in the same process.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/sdk/driver"
)

// DefaultStepTimeout bounds one step, retries included, when the
// configuration says nothing.
const DefaultStepTimeout = 15 * time.Minute

// Config configures an Executor.
type Config struct {
	Store    *store.Store
	Recorder *lifecycle.Recorder
	// Node is this node's name; the executor runs transitions naming it.
	Node string
	// Drivers by name, as configured on this node.
	Drivers map[string]driver.Driver
	// StepTimeout returns the bound on one step of an action, retries
	// while the driver is unavailable included; nil or 0 means
	// DefaultStepTimeout.
	StepTimeout func(instance.Action) time.Duration
	Logger      *slog.Logger
	// Observer, if set, hears everything the executor's watch hears, so
	// that a node runs one watch of the instances: core/feed answers
	// long-polls and keeps the node's store.View from it.
	Observer Observer
}

// Observer hears what the executor's watch of the instances hears. Its
// methods run on the executor's watching goroutine, one at a time and in
// order, and must not block for long: the executor's dispatch, and so
// every transition of the node, waits for them.
type Observer interface {
	// Listed is called after each list of the instances (at start, and
	// again whenever the watch broke: compaction, etcd trouble), before
	// any event after the list's revision rev, with the listed records. What
	// changed while no watch ran is in recs and not in any event, so an
	// observer must take recs as the whole truth at that point. recs is
	// the executor's: keep its Records, never change them.
	Listed(recs []store.Record, rev int64)
	// Observe is called for every transition event the watch delivers,
	// in revision order, before the executor acts on it. It may keep the
	// event's Record but must not change it (store.WatchTransitions).
	Observe(ev store.TransitionEvent)
	// Wrote is called with the record each of the executor's own writes
	// left, as soon as etcd confirmed the write, before the watch brings
	// it back (Observe will see it later, as old news). It runs on the
	// instance's worker goroutine, so calls for different instances may
	// come at once, and out of order with Observe. It may keep the
	// Record but must not change it. A write that deleted the instance
	// is not told; its watch event is.
	Wrote(rec store.Record)
}

// Executor carries out the transitions owned by its node. Each instance
// has at most one worker goroutine, so an instance's steps never overlap;
// a transition that replaces the one being executed (a delete pre-empting
// a create) cancels the running step's context.
type Executor struct {
	cfg    Config
	logger *slog.Logger

	mu      sync.Mutex
	workers map[string]*worker
	wg      sync.WaitGroup
	// spare hands a new worker to a goroutine that finished its last
	// instance within the past SpareFor, instead of starting one. A
	// fresh goroutine starts on a small stack and grows it, copying the
	// frames each time, on its way down through the driver's gRPC call
	// and etcd's transaction: that was 4% of lucid serve's CPU with one
	// goroutine per action. Unbuffered: a send succeeds only when a
	// spare goroutine is waiting.
	spare chan job
	// known holds, for an instance whose worker has retired, the newest
	// revision that worker knew, until the watch delivers it: an event at
	// or below it is no news. Without it, the watch's echo of a write the
	// worker made or was handed (Hand), arriving after the worker retired,
	// would start a new worker on an old record, and run its step again.
	known map[string]int64
	// ctx is Run's context, for workers started by Hand; nil until Run
	// starts.
	ctx context.Context
}

// job is a worker handed to a goroutine: instance id and its worker.
type job struct {
	id string
	w  *worker
}

// SpareFor is how long a worker goroutine that ran out of work waits
// for another instance before it exits.
const SpareFor = 2 * time.Second

type worker struct {
	running string             // request id being executed, "" if none
	cancel  context.CancelFunc // cancels the running step
	dirty   bool               // the transition changed since the last read
	resume  bool               // found in flight at start: restart its step's clock
	// next is the newest record the worker knows and has not acted on
	// yet, the base of its next step: the record as it last wrote it
	// (nothing else can have written the instance between the read it
	// guarded on and its write), or as a watch event says a newer write
	// left it. Either way reading it back would only cost a round trip,
	// and the guarded write catches a record gone stale meanwhile.
	// have says next is set; have with next nil means only that an
	// event newer than anything known carried no record (read it), or
	// with gone that the instance was deleted. nextRev is next's
	// revision: an event at or below it is no news.
	next    *store.Record
	have    bool
	gone    bool
	nextRev int64
	// wroteRev is the revision of the worker's last write; watch events
	// at or below it are the worker's own.
	wroteRev int64
}

// learn makes rec (written at rev) the worker's next base if it is newer
// than what the worker knows. rec nil means the write carried no record
// (read the instance), or, with gone, deleted it. Callers hold e.mu.
func (w *worker) learn(rec *store.Record, rev int64, gone bool) {
	if rev <= w.nextRev {
		return
	}
	w.next, w.have, w.gone, w.nextRev = rec, true, gone, rev
}

// New returns an Executor; Run starts it.
func New(cfg Config) *Executor {
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Executor{cfg: cfg, logger: l, workers: map[string]*worker{}, known: map[string]int64{}, spare: make(chan job)}
}

func (e *Executor) stepTimeout(a instance.Action) time.Duration {
	if e.cfg.StepTimeout != nil {
		if d := e.cfg.StepTimeout(a); d > 0 {
			return d
		}
	}
	return DefaultStepTimeout
}

// Run lists the transitions in flight (resuming those this node owns,
// for example after a restart), then watches for new ones until ctx ends,
// telling Config.Observer of each list and event. It returns after every
// worker it started has stopped.
func (e *Executor) Run(ctx context.Context) error {
	defer e.wg.Wait()
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
	first := true
	for {
		recs, rev, err := e.cfg.Store.List(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.logger.Error("executor: list instances", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		if o := e.cfg.Observer; o != nil {
			o.Listed(recs, rev)
		}
		e.mu.Lock()
		clear(e.known) // the list is newer than anything known
		e.mu.Unlock()
		for _, r := range recs {
			if r.Err != nil {
				if first {
					e.logger.Error("executor: skipping an unreadable record", "instance", r.State.ID, "err", r.Err)
				}
				continue
			}
			if r.Transition != nil {
				e.dispatch(ctx, r.State.ID, r.Transition, &r, 0, false, first)
			}
		}
		first = false
		err = e.cfg.Store.WatchTransitions(ctx, rev, func(ev store.TransitionEvent) {
			if o := e.cfg.Observer; o != nil {
				o.Observe(ev)
			}
			e.dispatch(ctx, ev.ID, ev.Transition, ev.Record, ev.Revision, ev.Gone, false)
		})
		if ctx.Err() != nil {
			return nil
		}
		// Compacted or broken watch: list again and resume from there.
		e.logger.Warn("executor: watch ended; re-listing", "err", err)
		if !errors.Is(err, store.ErrCompacted) && !sleep(ctx, 200*time.Millisecond) {
			return nil
		}
	}
}

// dispatch hands an instance's transition change to its worker, starting
// one if needed. It never blocks on driver calls. A transition that now
// belongs to another node (adopted) or is gone cancels a running step.
// rec is the instance as the change left it (a watch event's record, or
// the listed record with rev 0), the worker's base instead of a read;
// nil means read it, unless gone says it was deleted.
func (e *Executor) dispatch(ctx context.Context, id string, t *instance.Transition, rec *store.Record, rev int64, gone, resume bool) {
	mine := t != nil && t.Node == e.cfg.Node
	recRev := rev
	if rec != nil && rev == 0 {
		recRev = max(rec.StateRev, rec.TransitionRev)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.workers[id]
	if !ok {
		if k, ok := e.known[id]; ok && recRev > 0 {
			if recRev < k {
				return // no news
			}
			delete(e.known, id) // the watch has caught up
			if recRev == k {
				return
			}
		}
		if !mine {
			return
		}
		w = &worker{resume: resume}
		w.learn(rec, recRev, gone)
		e.workers[id] = w
		select {
		case e.spare <- job{id, w}:
		default:
			e.wg.Add(1)
			go e.serve(ctx, job{id, w})
		}
		return
	}
	if recRev > 0 && recRev <= w.nextRev {
		// The worker's own write, or one it was handed (Hand) or has
		// learned already: no news.
		return
	}
	w.learn(rec, recRev, gone)
	w.dirty = true
	if w.running != "" && (!mine || t.RequestID != w.running) {
		w.cancel()
	}
}

// Hand tells the executor of a record this node has just written (an
// action begun, an instance created), so that a transition the node owns
// starts now rather than when the watch brings the write back: the
// watch's event for it is then no news (dispatch). The watch stays the
// executor's source of truth; Hand only saves the wait for it, which on
// a busy node is several goroutine hand-offs inside etcd and its client.
// It never blocks; before Run starts it does nothing (Run's first list
// finds the transition).
func (e *Executor) Hand(rec store.Record) {
	t := rec.Transition
	if t == nil || t.Node != e.cfg.Node || rec.Err != nil {
		return
	}
	e.mu.Lock()
	ctx := e.ctx
	e.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		return
	}
	e.dispatch(ctx, rec.State.ID, t, &rec, max(rec.StateRev, rec.TransitionRev), false, false)
}

// serve runs j's worker, then waits up to SpareFor for another (see
// Executor.spare) before it exits.
func (e *Executor) serve(ctx context.Context, j job) {
	defer e.wg.Done()
	idle := time.NewTimer(SpareFor)
	defer idle.Stop()
	for {
		e.work(ctx, j.id, j.w)
		idle.Reset(SpareFor)
		select {
		case j = <-e.spare:
		case <-idle.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// work executes id's transitions one step after another until none is
// left for this node.
func (e *Executor) work(ctx context.Context, id string, w *worker) {
	backoff := 100 * time.Millisecond
	for {
		e.mu.Lock()
		w.dirty = false
		known, have, gone := w.next, w.have, w.gone
		w.next, w.have, w.gone = nil, false, false
		e.mu.Unlock()

		// The record the watch or the worker's own write left is the
		// base; only an event without one, or a lost guard (ErrStale:
		// nothing newer known), makes the worker read. That read is
		// linearizable (Store.Get), so it sees the write that woke it.
		var rec store.Record
		var err error
		switch {
		case have && gone:
			err = fmt.Errorf("%w: %s deleted", instance.ErrNotFound, id)
		case have && known != nil:
			rec = *known
		default:
			rec, err = e.cfg.Store.Get(ctx, id)
		}
		if ctx.Err() != nil {
			e.retire(id, w, true)
			return
		}
		if err != nil && !errors.Is(err, instance.ErrNotFound) {
			e.logger.Error("executor: read instance", "instance", id, "err", err)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if err != nil || rec.Err != nil || rec.Transition == nil || rec.Transition.Node != e.cfg.Node {
			if rec.Err != nil {
				e.logger.Error("executor: skipping an unreadable record", "instance", id, "err", rec.Err)
			}
			if e.retire(id, w, false) {
				return
			}
			continue
		}
		if w.resume {
			w.resume = false
			if rec, err = e.restartClock(ctx, rec); err != nil {
				continue // stale or etcd trouble: read again
			}
		}
		rctx, cancel := context.WithCancel(ctx)
		e.mu.Lock()
		w.running, w.cancel = rec.Transition.RequestID, cancel
		e.mu.Unlock()
		done, next := e.execute(ctx, rctx, rec)
		cancel()
		if o := e.cfg.Observer; o != nil && next != nil && next.StateRev != 0 {
			o.Wrote(*next)
		}
		e.mu.Lock()
		w.running, w.cancel = "", nil
		switch {
		case next != nil && next.StateRev == 0:
			// The worker deleted the instance (a delete's end). Commit
			// gives no revision for that, so the watch will bring the
			// worker's own delete as news; it says gone too.
			w.next, w.have, w.gone = nil, true, true
		case next != nil:
			w.wroteRev = max(next.StateRev, next.TransitionRev)
			w.learn(next, w.wroteRev, false)
		}
		e.mu.Unlock()
		if done {
			backoff = 100 * time.Millisecond
			continue
		}
		// The outcome could not be written (etcd trouble): try again
		// later rather than spin.
		if !sleep(ctx, backoff) {
			e.retire(id, w, true)
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// retire removes the worker unless a newer event arrived meanwhile (or
// force is set); it reports whether the worker should exit.
func (e *Executor) retire(id string, w *worker, force bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w.dirty && !force {
		return false
	}
	delete(e.workers, id)
	if w.nextRev > 0 {
		e.known[id] = w.nextRev
	}
	return true
}

// restartClock marks a step found in flight at start as attempted again
// from now, so its step timeout (and the reconciler's idea of a stuck
// step) counts from the resumption. It changes no status.
func (e *Executor) restartClock(ctx context.Context, rec store.Record) (store.Record, error) {
	t := *rec.Transition
	t.Attempt++
	t.StepStartedAt = e.cfg.Recorder.Now()
	st := rec.State
	next, err := e.cfg.Recorder.Update(ctx, rec, st.ID, &st, &t)
	if err != nil {
		e.logger.Warn("executor: resume step", "instance", st.ID, "err", err)
		return rec, err
	}
	e.logger.Info("executor: resuming a step found in flight", "instance", st.ID, "action", t.Action, "step", t.Current(), "attempt", t.Attempt)
	return next, nil
}

// execute runs the current step of rec's transition and writes its
// outcome. It reports whether the record moved on (next step, end,
// failure recorded, or replaced by someone else), and the record as it
// wrote it if it did; false means the outcome could not be written and
// the caller should try again later.
//
// stepCtx ends when the transition is replaced (dispatch) and stops the
// driver's step; ctx ends only when the executor stops. The outcome is
// written under ctx: once the step is over, the guard decides whether
// its outcome still applies, and cancelling the write could not unwrite
// it, only hide that it landed. That happened when the watch's echo of
// the write (its transition gone) reached dispatch before the write's
// own answer: the worker then never heard of its write, so neither did
// the Observer (waiters answered late) nor the status-change metric.
func (e *Executor) execute(ctx, stepCtx context.Context, rec store.Record) (bool, *store.Record) {
	t := rec.Transition
	log := &stepLog{base: e.logger, rec: &rec}
	spec, err := instance.Lookup(t.Action)
	var stepErr error
	if err != nil {
		stepErr = err
	} else if op, ok := spec.Op(t); !ok {
		stepErr = fmt.Errorf("transition %s is at step %d of %d", t.Action, t.Step, len(spec.Steps))
	} else if d, ok := e.cfg.Drivers[rec.State.Driver]; !ok {
		stepErr = fmt.Errorf("driver %q is not configured on node %s", rec.State.Driver, e.cfg.Node)
	} else {
		sctx, cancel := context.WithTimeout(stepCtx, e.stepTimeout(t.Action))
		stepErr = e.run(sctx, d, op, rec, log)
		cancel()
	}
	if stepCtx.Err() != nil {
		// Replaced by another transition, or the node is stopping: the
		// record belongs to whoever replaced us; write nothing.
		log.get().Info("executor: step interrupted", "err", stepCtx.Err())
		return true, nil
	}
	var ch lifecycle.Change
	switch {
	case stepErr != nil:
		log.get().Warn("executor: step failed", "err", stepErr)
		ch = e.failure(rec, spec, stepErr)
	case spec.Last(t):
		ch = e.success(rec, spec)
	default:
		ch = e.advance(rec)
	}
	return e.write(ctx, rec, spec, ch, log)
}

// write records the outcome. An outcome the policy refuses ends the
// transition in ERROR with a fault naming the policy; one it cannot judge
// (it fails) is retried a few times first, since a failing policy
// instance is replaced by a fresh one. Nothing is ever recorded as the
// opposite of what the driver did.
func (e *Executor) write(ctx context.Context, rec store.Record, spec instance.Spec, ch lifecycle.Change, log *stepLog) (bool, *store.Record) {
	const policyRetries = 3
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		next, err := e.cfg.Recorder.Record(ctx, rec, ch)
		var refused *lifecycle.RefusedError
		switch {
		case err == nil:
			return true, &next
		case errors.Is(err, store.ErrStale):
			// Someone else changed the record (a pre-empting delete, a
			// flag): the newer record, from the watch or a read, tells
			// what to do.
			log.get().Debug("executor: outcome lost the guard; deciding again on the newer record")
			return true, nil
		case errors.As(err, &refused) && refused.Failed && attempt < policyRetries:
			log.get().Warn("executor: validate policy failed on the outcome; asking again", "attempt", attempt, "err", err)
			if !sleep(ctx, wait) {
				return true, nil
			}
			wait *= 2
			continue
		case errors.As(err, &refused):
			log.get().Error("executor: outcome refused by the validate policy; ending the transition in ERROR", "err", err)
			return e.impose(ctx, rec, ch, refused, log)
		case ctx.Err() != nil:
			return true, nil
		default:
			log.get().Error("executor: write outcome", "err", err)
			return false, nil
		}
	}
}

// impose ends the transition in ERROR after a refusal. That write cannot be
// refused; its fault and history name the policy and its reason.
func (e *Executor) impose(ctx context.Context, rec store.Record, ch lifecycle.Change, refused *lifecycle.RefusedError, log *stepLog) (bool, *store.Record) {
	now := e.cfg.Recorder.Now()
	st := rec.State
	st.UpdatedAt = now
	st.VMState = instance.Error
	what := "refused"
	if refused.Failed {
		what = "could not judge"
	}
	msg := fmt.Sprintf("the validate policy %s %s the step's outcome %s -> %s: %s", refused.Policy, what, refused.From, refused.To, refused.Reason)
	if ch.Message != "" {
		msg += " (the step itself: " + ch.Message + ")"
	}
	st.Fault = &instance.Fault{Code: 500, Message: msg, At: now, During: rec.Transition.Action}
	next, err := e.cfg.Recorder.Impose(ctx, rec, lifecycle.Change{
		ID: st.ID, State: &st, At: now, Action: rec.Transition.Action, RequestID: rec.Transition.RequestID, Message: msg,
	})
	switch {
	case err == nil:
		return true, &next
	case errors.Is(err, store.ErrStale), ctx.Err() != nil:
		return true, nil
	default:
		log.get().Error("executor: write imposed ERROR", "err", err)
		return false, nil
	}
}

// advance is the change that moves a transition to its next step.
func (e *Executor) advance(rec store.Record) lifecycle.Change {
	now := e.cfg.Recorder.Now()
	t := *rec.Transition
	t.Step++
	t.StepStartedAt, t.Attempt = now, 1
	st := rec.State
	st.UpdatedAt = now
	return lifecycle.Change{ID: st.ID, State: &st, Transition: &t, At: now,
		Action: t.Action, Cause: instance.CauseDriver, RequestID: t.RequestID}
}

// success is the change that ends a transition as planned.
func (e *Executor) success(rec store.Record, spec instance.Spec) lifecycle.Change {
	now := e.cfg.Recorder.Now()
	t := rec.Transition
	ch := lifecycle.Change{ID: rec.State.ID, At: now, Action: t.Action, Cause: instance.CauseDriver, RequestID: t.RequestID}
	if t.Target == instance.StatusDeleted {
		return ch // the state goes; the history stays
	}
	st := rec.State
	st.UpdatedAt = now
	if spec.Applies != nil {
		spec.Applies(&st, t)
	}
	vm, err := instance.SettledState(t.Target)
	if err != nil {
		vm = instance.Error
	}
	st.VMState = vm
	if row, _ := t.Target.Row(); row.Power != "" {
		st.PowerState = row.Power
	} else if r, _ := st.ResizedFrom.Row(); r.Power != "" {
		st.PowerState = r.Power // VERIFY_RESIZE keeps the power it had
	}
	st.Fault = nil
	ch.State = &st
	return ch
}

// failure is the change that ends a failed transition: back to the origin
// with a fault if the action's table row says the failing step changed
// nothing, else ERROR with a fault.
func (e *Executor) failure(rec store.Record, spec instance.Spec, cause error) lifecycle.Change {
	now := e.cfg.Recorder.Now()
	t := rec.Transition
	st := rec.State
	st.UpdatedAt = now
	st.Fault = &instance.Fault{Code: 500, Message: cause.Error(), At: now, During: t.Action}
	st.VMState = instance.Error
	if spec.FailsToOrigin(t.Step) {
		if vm, err := instance.SettledState(t.Origin); err == nil {
			st.VMState = vm
		}
	}
	return lifecycle.Change{ID: st.ID, State: &st, At: now, Action: t.Action, Cause: instance.CauseDriver,
		RequestID: t.RequestID, Message: cause.Error()}
}

// stepLog is a step's logger, made the first time the step logs: most
// steps log nothing, and slog's With formats its attributes at once
// (0.8 % of lucid serve's CPU on a stop/start load when every step made
// one). It belongs to the one goroutine running the step.
type stepLog struct {
	base *slog.Logger
	rec  *store.Record
	l    *slog.Logger
}

func (s *stepLog) get() *slog.Logger {
	if s.l == nil {
		t := s.rec.Transition
		s.l = s.base.With("instance", s.rec.State.ID, "action", t.Action, "request_id", t.RequestID, "step", t.Step)
	}
	return s.l
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
