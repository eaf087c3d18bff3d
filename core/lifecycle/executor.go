package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coredriver "github.com/lucid-project/lucid/core/driver"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/sdk/driver"
)

// Hypervisor is what the executor needs from a driver. A *driver.Plugin
// from core/driver satisfies it.
type Hypervisor interface {
	Spawn(ctx context.Context, spec driver.Spec) error
	Destroy(ctx context.Context, id string) error
	PowerOff(ctx context.Context, id string) error
	PowerOn(ctx context.Context, id string) error
	Reboot(ctx context.Context, id string, hard bool) error
}

// Claimer records which node executes an instance's transition, bound to
// the node's lease. A *store.Registration satisfies it.
type Claimer interface {
	Claim(ctx context.Context, node, id string) error
	Release(ctx context.Context, node, id string) error
}

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	Service *Service
	Store   *store.Store
	Claims  Claimer
	Node    string
	// Drivers by name, as configured on this node.
	Drivers map[string]Hypervisor
	// StepTimeout bounds one driver call; default 15 minutes.
	StepTimeout time.Duration
	Logger      *slog.Logger
}

// Executor carries out the transitions owned by its node. Each instance
// has at most one worker goroutine, so an instance's steps never overlap;
// a transition that replaces the one being executed (a delete pre-empting
// a create) cancels the running step's context.
type Executor struct {
	cfg    ExecutorConfig
	logger *slog.Logger

	mu      sync.Mutex
	workers map[string]*worker
	wg      sync.WaitGroup
}

type worker struct {
	running string             // request id being executed, "" if none
	cancel  context.CancelFunc // cancels the running step
	dirty   bool               // the transition changed since the last read
}

// NewExecutor returns an Executor; Run starts it.
func NewExecutor(cfg ExecutorConfig) *Executor {
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 15 * time.Minute
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Executor{cfg: cfg, logger: l, workers: map[string]*worker{}}
}

// Run lists the transitions in flight (resuming any this node owns, for
// example after a restart), then watches for new ones until ctx ends. It
// returns after every worker it started has stopped.
func (e *Executor) Run(ctx context.Context) error {
	defer e.wg.Wait()
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
		for _, r := range recs {
			if r.Transition != nil {
				e.dispatch(ctx, r.State.ID, r.Transition)
			}
		}
		err = e.cfg.Store.WatchTransitions(ctx, rev, func(ev store.TransitionEvent) {
			e.dispatch(ctx, ev.ID, ev.Transition)
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
// one if needed. It never blocks on driver calls.
func (e *Executor) dispatch(ctx context.Context, id string, t *instance.Transition) {
	if t != nil && t.Node != e.cfg.Node {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.workers[id]
	if !ok {
		if t == nil {
			return
		}
		w = &worker{}
		e.workers[id] = w
		e.wg.Add(1)
		go e.work(ctx, id, w)
		return
	}
	w.dirty = true
	if w.running != "" && (t == nil || t.RequestID != w.running) {
		w.cancel()
	}
}

// work executes id's transitions one after another until none is left.
func (e *Executor) work(ctx context.Context, id string, w *worker) {
	defer e.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		e.mu.Lock()
		w.dirty = false
		e.mu.Unlock()

		rec, err := e.cfg.Store.Get(ctx, id)
		if ctx.Err() != nil {
			e.retire(id, w, true)
			return
		}
		if err != nil && !errors.Is(err, instance.ErrNotFound) {
			e.logger.Error("executor: read instance", "instance", id, "err", err)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		if err != nil || rec.Transition == nil || rec.Transition.Node != e.cfg.Node {
			if e.retire(id, w, false) {
				return
			}
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		e.mu.Lock()
		w.running, w.cancel = rec.Transition.RequestID, cancel
		e.mu.Unlock()
		done := e.execute(rctx, rec)
		cancel()
		e.mu.Lock()
		w.running, w.cancel = "", nil
		e.mu.Unlock()
		if done {
			backoff = 100 * time.Millisecond
			continue
		}
		// The step could not be written (policy refused, etcd trouble):
		// try again later rather than spin.
		if !sleep(ctx, backoff) {
			e.retire(id, w, true)
			return
		}
		backoff = min(backoff*2, 30*time.Second)
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
	return true
}

// execute runs the current step of rec's transition and writes its
// outcome. It reports whether the transition moved on (finished, failed
// and recorded, or was replaced); false means try again later.
func (e *Executor) execute(ctx context.Context, rec store.Record) bool {
	t := rec.Transition
	id := rec.State.ID
	log := e.logger.With("instance", id, "action", t.Action, "request_id", t.RequestID)
	if err := e.cfg.Claims.Claim(ctx, e.cfg.Node, id); err != nil {
		if ctx.Err() != nil {
			return true
		}
		log.Error("executor: claim", "err", err)
		return false
	}
	defer e.cfg.Claims.Release(context.WithoutCancel(ctx), e.cfg.Node, id)

	hv, ok := e.cfg.Drivers[rec.State.Driver]
	var stepErr error
	if !ok {
		stepErr = fmt.Errorf("driver %q is not configured on node %s", rec.State.Driver, e.cfg.Node)
	} else {
		sctx, cancel := context.WithTimeout(ctx, e.cfg.StepTimeout)
		stepErr = e.stepWithRetry(sctx, hv, rec, log)
		cancel()
	}
	if ctx.Err() != nil {
		// Replaced by another transition, or the node is stopping: the
		// record belongs to whoever replaced us; write nothing.
		log.Info("executor: step interrupted", "err", ctx.Err())
		return true
	}
	now := e.cfg.Service.now()
	hist := instance.HistoryRecord{At: now, Action: t.Action, Cause: instance.CauseDriver, RequestID: t.RequestID}
	var ch store.Change
	if stepErr == nil {
		ch = e.success(rec, now, hist)
	} else {
		log.Warn("executor: step failed", "err", stepErr)
		ch = e.failure(rec, now, hist, stepErr)
	}
	_, err := e.cfg.Service.commit(ctx, rec, ch)
	var refused *RefusedError
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrStale):
		// Someone else changed the record (a pre-empting delete): the
		// next read tells what to do.
		return true
	case errors.As(err, &refused) && stepErr == nil:
		// The policy will not let the action end as planned: record the
		// refusal as the fault, visibly, rather than leave it in flight.
		log.Error("executor: outcome refused by policy", "err", err)
		_, err = e.cfg.Service.commit(ctx, rec, e.failure(rec, now, hist, err))
		if err == nil {
			return true
		}
	}
	if ctx.Err() != nil {
		return true
	}
	log.Error("executor: write outcome", "err", err)
	return false
}

// pluginRetries is how many times a step is tried while its driver plugin
// is down; the host restarts a dead plugin within about 100 ms, so a
// delete or stop issued during a restart waits for it instead of failing.
// A plugin that dies on every attempt (say, a Spawn that crashes it)
// fails the step after the last try.
const pluginRetries = 3

// stepWithRetry runs the step, retrying it with backoff while the plugin
// is down (core/driver.ErrPluginExited). Drivers are idempotent on the
// instance id, so a retry after a crash mid-call is safe.
func (e *Executor) stepWithRetry(ctx context.Context, hv Hypervisor, rec store.Record, log *slog.Logger) error {
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := e.step(ctx, hv, rec)
		if err == nil || !errors.Is(err, coredriver.ErrPluginExited) || attempt == pluginRetries {
			return err
		}
		log.Warn("executor: driver plugin down; retrying step", "attempt", attempt, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return err
		}
		wait *= 2
	}
}

// step performs the driver call of the transition's current step.
func (e *Executor) step(ctx context.Context, hv Hypervisor, rec store.Record) error {
	st := rec.State
	switch rec.Transition.Action {
	case instance.ActionCreate:
		return hv.Spawn(ctx, driver.Spec{ID: st.ID, Name: st.Name, Flavor: driver.Flavor{Name: st.Flavor}, Image: driver.Image{ID: st.Image}})
	case instance.ActionDelete:
		if err := hv.Destroy(ctx, st.ID); err != nil && !errors.Is(err, driver.ErrNotFound) {
			return err
		}
		return nil
	case instance.ActionStop:
		return hv.PowerOff(ctx, st.ID)
	case instance.ActionStart:
		return hv.PowerOn(ctx, st.ID)
	case instance.ActionReboot:
		return hv.Reboot(ctx, st.ID, false)
	case instance.ActionHardReboot:
		return hv.Reboot(ctx, st.ID, true)
	}
	return fmt.Errorf("%w: action %s", driver.ErrUnsupported, rec.Transition.Action)
}

// success is the change that ends a transition as planned.
func (e *Executor) success(rec store.Record, now time.Time, hist instance.HistoryRecord) store.Change {
	t := rec.Transition
	if t.Action == instance.ActionDelete {
		return store.Change{ID: rec.State.ID, History: hist}
	}
	st := rec.State
	st.UpdatedAt = now
	vm, err := instance.SettledState(t.Target)
	if err != nil {
		vm = instance.Error
	}
	st.VMState = vm
	switch vm {
	case instance.Active:
		st.PowerState = instance.Running
	case instance.Stopped:
		st.PowerState = instance.Shutdown
	}
	st.Fault = nil
	return store.Change{ID: st.ID, State: &st, History: hist}
}

// failure is the change that ends a transition that failed: back to the
// origin with a fault if the plan says nothing changed, else ERROR.
func (e *Executor) failure(rec store.Record, now time.Time, hist instance.HistoryRecord, cause error) store.Change {
	t := rec.Transition
	st := rec.State
	st.UpdatedAt = now
	st.Fault = &instance.Fault{Code: 500, Message: cause.Error(), At: now, During: t.Action}
	plan, _ := instance.PlanFor(t.Action)
	st.VMState = instance.Error
	if plan.FailToOrigin {
		if vm, err := instance.SettledState(t.Origin); err == nil {
			st.VMState = vm
		}
	}
	hist.Message = cause.Error()
	return store.Change{ID: st.ID, State: &st, History: hist}
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
