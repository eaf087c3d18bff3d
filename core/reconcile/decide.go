package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/sdk/driver"
)

// decide reads id's record and asks driver d about the VM afresh,
// classifies the pair, asks the policy about a case, and carries out the
// decision. It counts what it did in rep. Cases of different instances
// are decided concurrently.
func (r *Reconciler) decide(ctx context.Context, drv string, d driver.Driver, id string, rep *tally) error {
	rec, err := r.cfg.Store.Get(ctx, id)
	haveRecord := err == nil
	if err != nil && !errors.Is(err, instance.ErrNotFound) {
		return err
	}
	vm, err := d.Inspect(ctx, id)
	present := err == nil
	if err != nil && !errors.Is(err, driver.ErrNotFound) {
		return err // the driver cannot tell now (restarting?): next time
	}
	return r.decideSeen(ctx, drv, seen{id: id, rec: rec, haveRecord: haveRecord, vm: vm, present: present}, rep)
}

// seen is a record and a VM as a sweep or a fresh look found them.
type seen struct {
	id         string
	rec        store.Record
	haveRecord bool
	vm         driver.Instance
	present    bool
}

// decideSeen classifies what was seen, asks the policy about a case and
// carries out the decision. A sweep decides on what its one ranged read
// and one List returned, without reading again: every change it makes is
// a guarded write, so a record that moved since is not overwritten (the
// write loses as stale and the next look decides again).
func (r *Reconciler) decideSeen(ctx context.Context, drv string, s seen, rep *tally) error {
	id, rec, haveRecord, vm, present := s.id, s.rec, s.haveRecord, s.vm, s.present
	now := r.cfg.Now()
	req := policy.ReconcileRequest{Now: now, Node: r.cfg.Node,
		Observed: policy.Observation{Present: present, PowerState: instance.PowerState(vm.Power), ID: id}}

	switch {
	case !haveRecord && !present:
		return nil
	case !haveRecord:
		req.Case = policy.CaseUnmanaged
	case rec.Err != nil || rec.State.Node != r.cfg.Node || rec.State.Driver != drv:
		return nil // unreadable, or another node's or driver's instance
	default:
		c, ok := r.classify(rec, vm, present)
		if !ok {
			if len(rec.State.Flags) > 0 && rec.Transition == nil {
				r.clearFlags(ctx, rec)
			}
			return nil
		}
		req.Case = c
		st := rec.State
		req.Instance, req.Status = &st, rec.Status()
		if c == policy.CaseStuck {
			req.Transition = rec.Transition
		}
	}
	since := r.since(disagreement{id, req.Case}, now)
	req.Disagreeing = now.Sub(since)
	if req.Case == policy.CaseStuck {
		req.Disagreeing = now.Sub(r.deadline(rec.Transition))
	}

	dec := r.ask(ctx, req)
	rep.count(req.Case, dec.Kind)
	r.decisions(req.Case, dec.Kind)
	switch dec.Kind {
	case policy.DecisionLeave:
		return nil
	case policy.DecisionFlag:
		return r.flag(ctx, drv, rec, req, dec, since)
	case policy.DecisionCorrect:
		return r.correct(ctx, rec, req, dec, since)
	case policy.DecisionEnforce:
		return r.enforce(ctx, rec, req, dec, since)
	}
	// rollback and adopt answer orphans, which a node does not find in
	// its own sweep; anything else was refused by the host already.
	r.logger.Warn("reconcile: decision does not apply to this case; flagging instead", "instance", id, "case", req.Case, "decision", dec.Kind)
	return r.flag(ctx, drv, rec, req, dec, since)
}

// ask calls the policy. Without one the reconciler only observes. A
// failing policy gives its fallback, which is never a state change.
func (r *Reconciler) ask(ctx context.Context, req policy.ReconcileRequest) policy.Decision {
	if r.cfg.Policy == nil {
		return policy.Decision{Kind: policy.DecisionFlag, Reason: "no reconcile policy is configured: observing only"}
	}
	dec, err := r.cfg.Policy.Reconcile(ctx, req)
	if err != nil {
		r.logger.Error("reconcile policy failed; its fallback answered", "case", req.Case, "vm", req.Observed.ID, "decision", dec.Kind, "err", err)
		if dec.Kind != policy.DecisionLeave {
			dec.Kind = policy.DecisionFlag
		}
	}
	return dec
}

func observed(req policy.ReconcileRequest) string {
	if !req.Observed.Present {
		return "absent"
	}
	return string(req.Observed.PowerState)
}

// flag notes the disagreement on the instance (or, for a VM nobody
// recorded, under the node's lease) without changing any status. An
// unchanged flag is not written again.
func (r *Reconciler) flag(ctx context.Context, drv string, rec store.Record, req policy.ReconcileRequest, dec policy.Decision, since time.Time) error {
	if req.Case == policy.CaseUnmanaged {
		if r.cfg.Unmanaged == nil {
			return nil
		}
		return r.cfg.Unmanaged.PutUnmanaged(ctx, store.Unmanaged{Node: r.cfg.Node, Driver: drv, ID: req.Observed.ID,
			Power: string(req.Observed.PowerState), Since: since, Reason: dec.Reason})
	}
	f := instance.Flag{Kind: string(req.Case), Message: dec.Reason, Since: since, Recorded: req.Status, Observed: observed(req)}
	st := rec.State
	for i, old := range st.Flags {
		if old.Kind == f.Kind {
			if old.Observed == f.Observed && old.Recorded == f.Recorded && old.Message == f.Message {
				return nil
			}
			f.Since = old.Since
			st.Flags = slices.Delete(slices.Clone(st.Flags), i, i+1)
			break
		}
	}
	st.Flags = append(slices.Clone(st.Flags), f)
	_, err := r.cfg.Recorder.Update(ctx, rec, st.ID, &st, rec.Transition)
	if errors.Is(err, store.ErrStale) {
		return nil // the record moved; the next look decides again
	}
	return err
}

// clearFlags removes flags from an instance whose record and hypervisor
// agree again.
func (r *Reconciler) clearFlags(ctx context.Context, rec store.Record) {
	st := rec.State
	st.Flags = nil
	if _, err := r.cfg.Recorder.Update(ctx, rec, st.ID, &st, rec.Transition); err != nil && !errors.Is(err, store.ErrStale) {
		r.logger.Warn("reconcile: clear flags", "instance", st.ID, "err", err)
	}
}

// correct makes the record follow the hypervisor, through the write door
// with cause reconciler. An ERROR corrected keeps its fault in history:
// the correction's record quotes it.
func (r *Reconciler) correct(ctx context.Context, rec store.Record, req policy.ReconcileRequest, dec policy.Decision, since time.Time) error {
	now := r.cfg.Now()
	st := rec.State
	st.UpdatedAt = now
	st.Flags = slices.DeleteFunc(slices.Clone(st.Flags), func(f instance.Flag) bool { return f.Kind == string(req.Case) })
	ch := lifecycle.Change{ID: st.ID, State: &st, At: now, Cause: instance.CauseReconciler, Policy: r.cfg.PolicyID}
	target := dec.Status
	switch req.Case {
	case policy.CasePowerMismatch, policy.CaseError:
		vm, err := instance.SettledState(target)
		if err != nil {
			return fmt.Errorf("reconcile: correction to %q: %w", target, err)
		}
		st.VMState, st.PowerState = vm, req.Observed.PowerState
		ch.Message = fmt.Sprintf("%s: the VM is %s; %s", req.Case, observed(req), dec.Reason)
		if rec.State.Fault != nil && vm != instance.Error {
			ch.Message += fmt.Sprintf(" (the fault it had: %s)", rec.State.Fault.Message)
			st.Fault = nil
		}
	case policy.CaseVanished:
		st.VMState, st.PowerState = instance.Error, instance.NoState
		msg := fmt.Sprintf("the VM vanished: driver %s on node %s no longer knows instance %s", st.Driver, st.Node, st.ID)
		st.Fault = &instance.Fault{Code: 500, Message: msg, At: now}
		ch.Message = msg + "; " + dec.Reason
	case policy.CaseStuck:
		t := rec.Transition
		ch.Action, ch.RequestID = t.Action, t.RequestID
		vm, err := instance.SettledState(target)
		if err != nil {
			vm = instance.Error
		}
		st.VMState = vm
		msg := fmt.Sprintf("step %s of %s (attempt %d, started %s) outlived its timeout by %s", orNone(t.Current()), t.Action,
			t.Attempt, t.StepStartedAt.Format(time.RFC3339), req.Disagreeing.Round(time.Second))
		st.Fault = &instance.Fault{Code: 500, Message: msg, At: now, During: t.Action}
		ch.Message = msg + "; " + dec.Reason
	default:
		return r.flag(ctx, "", rec, req, dec, since)
	}
	_, err := r.cfg.Recorder.Record(ctx, rec, ch)
	var refused *lifecycle.RefusedError
	switch {
	case err == nil, errors.Is(err, store.ErrStale):
		return nil
	case errors.As(err, &refused):
		// The validate policy will not have it: note the disagreement
		// instead, saying why nothing changed.
		r.logger.Warn("reconcile: correction refused by the validate policy; flagging instead", "instance", st.ID, "err", err)
		dec.Reason = fmt.Sprintf("%s (the correction to %s was refused: %s)", dec.Reason, target, refused.Reason)
		return r.flag(ctx, "", rec, req, dec, since)
	}
	return err
}

// enforce makes the hypervisor follow the record through an ordinary
// action started with cause reconciler: start when the record says ACTIVE
// and the VM is off, stop when it says SHUTOFF and the VM runs.
func (r *Reconciler) enforce(ctx context.Context, rec store.Record, req policy.ReconcileRequest, dec policy.Decision, since time.Time) error {
	var action instance.Action
	running := req.Observed.PowerState == instance.Running
	switch rec.Status() {
	case instance.StatusActive:
		if !running {
			action = instance.ActionStart
		}
	case instance.StatusShutoff:
		if running {
			action = instance.ActionStop
		}
	}
	if action == "" || r.cfg.Starter == nil {
		dec.Reason += fmt.Sprintf(" (no action enforces %s on a VM that is %s)", rec.Status(), observed(req))
		return r.flag(ctx, "", rec, req, dec, since)
	}
	_, err := r.cfg.Starter.Begin(ctx, rec.State.ID, action, lifecycle.ActionRequest{
		Cause: instance.CauseReconciler, Policy: r.cfg.PolicyID,
		Message: fmt.Sprintf("%s: the VM is %s, the record %s; %s", req.Case, observed(req), rec.Status(), dec.Reason),
	})
	if errors.Is(err, instance.ErrConflict) || errors.Is(err, store.ErrStale) {
		return nil // something else started meanwhile
	}
	return err
}

func orNone(s instance.Status) string {
	if s == "" {
		return "(no status)"
	}
	return string(s)
}
