// Package reconcile compares, on each node, what the records say with
// what the node's hypervisors report, and lets the operator's reconcile
// policy decide what a disagreement means.
//
// Nova's power-state poller silently rewrote the record (ERROR became
// SHUTDOWN every two minutes, erasing the one status that explained a
// failure) and could not be turned off. Here nothing is decided in code:
// each disagreement is a case (a power mismatch, an ERROR whose VM is
// there, a VM that vanished, a VM nobody recorded, a step that outlived
// its timeout) handed to the reconcile policy, which answers correct (the
// record follows the hypervisor), flag (the mismatch is noted on the
// instance, its status untouched), leave, or enforce (the hypervisor
// follows the record, through an ordinary action). Every change goes
// through the lifecycle Recorder with cause "reconciler" and a history
// record naming the policy. A failing policy means its fallback, flag or
// leave: never a state change.
//
// A sweep reads the node's records in one ranged read of all instances
// (filtered by node: no per-node index, because an index key would cost a
// write on every status change, while a sweep is one read per interval;
// revisit when clusters hold many nodes) and asks each driver for all its
// VMs in one List. Only cases reach the policy, and each is confirmed by
// a fresh read of the record and a fresh Inspect before it is decided, so
// a sweep racing an action decides nothing on stale data. Driver events
// (EventSource) and plugin restarts trigger the same checks at once.
package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/metrics"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/sdk/driver"
)

// Decider is the reconcile policy. A *policy.Module satisfies it; on a
// policy failure it returns an error with its fallback decision (flag or
// leave).
type Decider interface {
	Reconcile(ctx context.Context, req policy.ReconcileRequest) (policy.Decision, error)
}

// Starter starts an enforcing action (a *lifecycle.Service).
type Starter interface {
	Begin(ctx context.Context, id string, action instance.Action, req lifecycle.ActionRequest) (store.Record, error)
}

// Unmanaged records VMs nobody recorded, bound to the node's lease (a
// *store.Registration).
type Unmanaged interface {
	PutUnmanaged(ctx context.Context, u store.Unmanaged) error
}

// Config configures a Reconciler.
type Config struct {
	Store *store.Store
	// View is the node's latest record of each instance from its watch
	// (nil: none). Driver events are settled from it (checkEvent).
	View      *store.View
	Recorder  *lifecycle.Recorder
	Starter   Starter
	Unmanaged Unmanaged
	// Node is this node; it reconciles the instances whose state names it.
	Node string
	// Drivers by configured name.
	Drivers map[string]driver.Driver
	// Policy decides; nil means observe only (every case is flagged).
	Policy Decider
	// PolicyID names the policy in history records and flags.
	PolicyID string
	// Interval between sweeps (and orphan passes); default 30 s.
	Interval time.Duration
	// LeaseTTL is the node lease's TTL, used for the orphans election's
	// session too; default 10 s.
	LeaseTTL time.Duration
	// StepTimeout is the executor's bound on a step of an action; a step
	// older than that is stuck. nil or 0 means 15 minutes.
	StepTimeout func(instance.Action) time.Duration
	Logger      *slog.Logger
	// Now is the clock; nil means time.Now in UTC.
	Now func() time.Time
	// Metrics counts sweeps, cases and decisions; nil counts nothing.
	Metrics *metrics.Set
}

// Reconciler runs sweeps and handles driver events for one node. Run it
// with Run; Sweep and Check are exported for tests and benchmarks.
type Reconciler struct {
	cfg    Config
	logger *slog.Logger

	sweeps        atomic.Int64
	eventsSettled atomic.Int64
	orphans       atomic.Int64
	leading       atomic.Bool

	mu sync.Mutex
	// seen is when each open disagreement (instance or VM id and case)
	// was first noticed, so the policy learns how long it has lasted.
	seen map[disagreement]time.Time
}

type disagreement struct {
	id   string
	kind policy.ReconcileCase
}

// New returns a Reconciler.
func New(cfg Config) *Reconciler {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Now().UTC() }
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, logger: l, seen: map[disagreement]time.Time{}}
}

// subscriber is a driver whose events (and plugin restarts) can be
// followed: the host's *driver.Plugin.
type subscriber interface {
	Subscribe(ctx context.Context) <-chan driver.Event
}

// Run sweeps every Interval and reacts to driver events until ctx ends.
// The first sweep runs at once.
func (r *Reconciler) Run(ctx context.Context) error {
	events := newPending()
	var wg sync.WaitGroup
	defer wg.Wait()
	for name, d := range r.cfg.Drivers {
		s, ok := d.(subscriber)
		if !ok {
			continue
		}
		ch := s.Subscribe(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range ch {
				events.add(name, ev)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.leadOrphans(ctx)
	}()
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	r.sweepLogged(ctx, "")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.sweepLogged(ctx, "")
		case <-events.ready:
			restarted, evs := events.take()
			for _, drv := range restarted {
				// The plugin was restarted: it may have forgotten VMs or
				// lost events. Look at all of them now.
				r.sweepLogged(ctx, drv)
			}
			for _, e := range evs {
				if ctx.Err() != nil {
					return nil
				}
				if _, err := r.checkEvent(ctx, e.driver, e.ev); err != nil && ctx.Err() == nil {
					r.logger.Warn("reconcile: event check failed", "driver", e.driver, "vm", e.ev.ID, "event", e.ev.Kind, "err", err)
				}
			}
		}
	}
}

func (r *Reconciler) sweepLogged(ctx context.Context, drv string) {
	rep, err := r.Sweep(ctx, drv)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Error("reconcile: sweep failed", "driver", drv, "err", err)
		}
		return
	}
	if rep.Cases > 0 {
		r.logger.Info("reconcile: sweep", "driver", drv, "checked", rep.Checked, "vms", rep.VMs, "cases", rep.Cases,
			"decisions", rep.Decisions, "took", rep.Took.Round(time.Microsecond))
	}
}

// Report says what one sweep found and did.
type Report struct {
	// Checked is how many records of this node were compared; VMs how
	// many VMs the drivers listed.
	Checked, VMs int
	// Cases is how many disagreements went to the policy (the number of
	// policy calls), by case and by decision.
	Cases     int
	ByCase    map[policy.ReconcileCase]int
	Decisions map[policy.DecisionKind]int
	Took      time.Duration
}

// tally counts into a Report from the goroutines deciding cases.
type tally struct {
	mu  sync.Mutex
	rep *Report
}

func (t *tally) count(c policy.ReconcileCase, d policy.DecisionKind) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rep.count(c, d)
}

// deciders is how many cases a sweep decides at once. Each case is a few
// round trips (a read, an Inspect, a policy call, maybe a write), mostly
// waiting; deciding them one after another made a sweep with a hundred
// cases wait on three hundred round trips in a row.
const deciders = 8

// decideAll decides the cases a sweep found on driver drv, deciders at a
// time.
func (r *Reconciler) decideAll(ctx context.Context, drv string, cases []seen, rep *Report) {
	t := &tally{rep: rep}
	work := make(chan seen)
	var wg sync.WaitGroup
	for range min(deciders, len(cases)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if err := r.decideSeen(ctx, drv, c, t); err != nil && ctx.Err() == nil {
					r.logger.Warn("reconcile: deciding a case failed", "id", c.id, "driver", drv, "err", err)
				}
			}
		}()
	}
	for _, c := range cases {
		select {
		case work <- c:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

func (rep *Report) count(c policy.ReconcileCase, d policy.DecisionKind) {
	rep.Cases++
	rep.ByCase[c]++
	rep.Decisions[d]++
}

// decisions counts a decision in the node's metrics.
func (r *Reconciler) decisions(c policy.ReconcileCase, d policy.DecisionKind) {
	r.cfg.Metrics.Decided(string(c), string(d))
}

// Sweep compares every record of this node run by driver drv ("" for all
// drivers) with the driver's VMs, and decides each disagreement.
func (r *Reconciler) Sweep(ctx context.Context, drv string) (Report, error) {
	start := time.Now()
	rep := Report{ByCase: map[policy.ReconcileCase]int{}, Decisions: map[policy.DecisionKind]int{}}
	recs, _, err := r.cfg.Store.List(ctx)
	if err != nil {
		return rep, err
	}
	known := make(map[string]bool, len(recs))
	for _, rec := range recs {
		known[rec.State.ID] = true
	}
	open := map[disagreement]bool{}
	var cases []seen
	for name, d := range r.cfg.Drivers {
		if drv != "" && name != drv {
			continue
		}
		vms, err := d.List(ctx)
		if err != nil {
			// Without the driver's view nothing can be told about its
			// instances; they wait for the next sweep.
			r.logger.Warn("reconcile: driver cannot list its VMs; skipping it this sweep", "driver", name, "err", err)
			continue
		}
		rep.VMs += len(vms)
		byID := make(map[string]driver.Instance, len(vms))
		for _, vm := range vms {
			byID[vm.ID] = vm
		}
		for _, rec := range recs {
			if rec.Err != nil || rec.State.Node != r.cfg.Node || rec.State.Driver != name {
				continue
			}
			rep.Checked++
			vm, present := byID[rec.State.ID]
			c, ok := r.classify(rec, vm, present)
			if !ok {
				if len(rec.State.Flags) > 0 && rec.Transition == nil {
					r.clearFlags(ctx, rec)
				}
				continue
			}
			open[disagreement{rec.State.ID, c}] = true
			cases = append(cases, seen{id: rec.State.ID, rec: rec, haveRecord: true, vm: vm, present: present})
		}
		for _, vm := range vms {
			if known[vm.ID] {
				continue
			}
			open[disagreement{vm.ID, policy.CaseUnmanaged}] = true
			cases = append(cases, seen{id: vm.ID, vm: vm, present: true})
		}
		r.decideAll(ctx, name, cases, &rep)
		cases = cases[:0]
		r.forgetUnmanaged(ctx, name, byID, known)
	}
	r.forget(open, drv == "")
	rep.Took = time.Since(start)
	r.sweeps.Add(1)
	r.cfg.Metrics.Swept(rep.Took, rep.Checked)
	return rep, ctx.Err()
}

// Sweeps is how many sweeps have completed.
func (r *Reconciler) Sweeps() int64 { return r.sweeps.Load() }

// forget drops the first-seen times of disagreements that are over. A
// sweep of one driver cannot tell about others', so only full sweeps
// forget.
func (r *Reconciler) forget(open map[disagreement]bool, full bool) {
	if !full {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.seen {
		if !open[k] {
			delete(r.seen, k)
		}
	}
}

// forgetUnmanaged removes the unmanaged-VM entries of driver drv on this
// node whose VM is gone or has a record now.
func (r *Reconciler) forgetUnmanaged(ctx context.Context, drv string, vms map[string]driver.Instance, known map[string]bool) {
	us, err := r.cfg.Store.UnmanagedVMs(ctx)
	if err != nil {
		r.logger.Warn("reconcile: list unmanaged VMs", "err", err)
		return
	}
	for _, u := range us {
		if u.Node != r.cfg.Node || u.Driver != drv {
			continue
		}
		if _, still := vms[u.ID]; still && !known[u.ID] {
			continue
		}
		if err := r.cfg.Store.DeleteUnmanaged(ctx, u.Node, u.Driver, u.ID); err != nil {
			r.logger.Warn("reconcile: forget unmanaged VM", "vm", u.ID, "err", err)
		}
	}
}

// Check looks at one VM or instance id on driver drv afresh and decides
// it if record and hypervisor disagree. It reports whether there was a
// case. Driver events call it.
func (r *Reconciler) Check(ctx context.Context, drv, id string) (bool, error) {
	d, ok := r.cfg.Drivers[drv]
	if !ok {
		return false, fmt.Errorf("reconcile: no driver %q", drv)
	}
	rep := Report{ByCase: map[policy.ReconcileCase]int{}, Decisions: map[policy.DecisionKind]int{}}
	err := r.decide(ctx, drv, d, id, &tally{rep: &rep})
	return rep.Cases > 0, err
}

// checkEvent handles a driver event. Most events are the echo of
// Lucid's own actions (a stop powers the VM off, and the driver says so),
// arriving while the action is still in flight or after it settled the
// record to what the event reports. For those, the record alone shows
// there can be no case: an in-flight transition is never second-guessed,
// and a settled record whose expected power the event confirms agrees
// with it. Only then is the fresh Inspect skipped. An event that
// disagrees, or any doubt (no record, an unreadable one, flags to
// clear), takes the full look: a fresh record and a fresh Inspect, never
// a decision on the event alone. Skipping is safe because doing nothing
// is: a later change sends a later event, and sweeps remain the backstop.
//
// The record for that shortcut is the node's View when it has the
// instance (else a read): the View trails etcd by the watch's lag, so
// it can agree with an event that the truth, changed in the last
// moments, would not. The one event that matters then is a VM failing
// within that lag of an action that Lucid recorded; it is noticed at
// the next sweep instead of at once. Everything that changes a record
// still starts from a fresh read and a fresh Inspect.
func (r *Reconciler) checkEvent(ctx context.Context, drv string, ev driver.Event) (bool, error) {
	if ev.Kind == driver.EventPower && ev.Power != "" && ev.Power != driver.PowerNoState {
		rec, err := r.record(ctx, ev.ID)
		if err == nil && rec.Err == nil && rec.State.Node == r.cfg.Node && rec.State.Driver == drv && len(rec.State.Flags) == 0 {
			if _, isCase := r.classify(rec, driver.Instance{ID: ev.ID, Power: ev.Power}, true); !isCase {
				r.eventsSettled.Add(1)
				return false, nil
			}
		}
	}
	return r.Check(ctx, drv, ev.ID)
}

// record is the View's record of id, or a read's.
func (r *Reconciler) record(ctx context.Context, id string) (store.Record, error) {
	if r.cfg.View != nil {
		if rec, ok := r.cfg.View.Get(id); ok {
			return rec, nil
		}
	}
	return r.cfg.Store.Get(ctx, id)
}

// EventsSettledByRecord counts driver events whose record showed there
// could be no case, so no Inspect was made (see checkEvent).
func (r *Reconciler) EventsSettledByRecord() int64 { return r.eventsSettled.Load() }

// classify says which case, if any, a record and its VM make. A
// transition in flight is never second-guessed unless its step outlived
// its timeout on this node; another node's transition is not ours.
func (r *Reconciler) classify(rec store.Record, vm driver.Instance, present bool) (policy.ReconcileCase, bool) {
	st, t := rec.State, rec.Transition
	if t != nil {
		if t.Node == r.cfg.Node && r.cfg.Now().After(r.deadline(t)) {
			return policy.CaseStuck, true
		}
		return "", false
	}
	switch st.VMState {
	case instance.Building, instance.Deleted:
		return "", false
	case instance.Error:
		if present {
			return policy.CaseError, true
		}
		return "", false // ERROR already says it is not well; nothing to add
	}
	if !present {
		return policy.CaseVanished, true
	}
	want, ok := expectedPower(rec)
	if !ok || vm.Power == driver.PowerNoState || vm.Power == "" {
		return "", false
	}
	if running := vm.Power == driver.PowerRunning; running != (want == instance.Running) {
		return policy.CasePowerMismatch, true
	}
	return "", false
}

// expectedPower is the power a settled record implies: running for
// ACTIVE, not running for SHUTOFF, and for VERIFY_RESIZE whatever the
// instance had before the resize.
func expectedPower(rec store.Record) (instance.PowerState, bool) {
	s := rec.Status()
	if s == instance.StatusVerifyResize {
		s = rec.State.ResizedFrom
		if s == "" {
			s = instance.StatusActive
		}
	}
	row, ok := s.Row()
	if !ok || row.Power == "" {
		return "", false
	}
	return row.Power, true
}

func (r *Reconciler) deadline(t *instance.Transition) time.Time {
	d := 15 * time.Minute
	if r.cfg.StepTimeout != nil {
		if v := r.cfg.StepTimeout(t.Action); v > 0 {
			d = v
		}
	}
	return t.StepStartedAt.Add(d)
}

// since returns when a disagreement was first seen, recording now if it
// is new.
func (r *Reconciler) since(k disagreement, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.seen[k]
	if !ok {
		r.seen[k] = now
		return now
	}
	return t
}
