package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/core/store"
)

// electionOrphans names the election under which one node in the cluster
// looks after orphaned transitions.
const electionOrphans = "orphans"

// leadOrphans campaigns for the orphans election and, while this node
// leads, looks for orphans every interval. It returns when ctx ends.
func (r *Reconciler) leadOrphans(ctx context.Context) {
	ttl := r.cfg.LeaseTTL
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	r.cfg.Store.Lead(ctx, electionOrphans, r.cfg.Node, ttl, func(lctx context.Context) {
		r.logger.Info("reconcile: this node looks after orphaned transitions")
		r.leading.Store(true)
		defer r.leading.Store(false)
		tick := time.NewTicker(r.cfg.Interval)
		defer tick.Stop()
		for {
			if _, err := r.Orphans(lctx); err != nil && lctx.Err() == nil {
				r.logger.Error("reconcile: orphan pass failed", "err", err)
			}
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// Leading reports whether this node currently looks after orphans.
func (r *Reconciler) Leading() bool { return r.leading.Load() }

// Orphans finds the transitions whose owner node is gone (its lease-bound
// registration expired: a node that restarts in time resumes its own
// work) and hands each to the policy: correct (ERROR with a fault naming
// the lost node and action), rollback (back to the origin with a fault,
// where the action's failure rule allows it at that step), leave, or
// adopt (this node resumes it, if it runs the same driver). It reports
// how many it found.
func (r *Reconciler) Orphans(ctx context.Context) (int, error) {
	nodes, err := r.cfg.Store.Nodes(ctx)
	if err != nil {
		return 0, err
	}
	alive := map[string]bool{}
	for _, n := range nodes {
		alive[n.Name] = true
	}
	recs, _, err := r.cfg.Store.List(ctx)
	if err != nil {
		return 0, err
	}
	found := 0
	for _, rec := range recs {
		if rec.Err != nil || rec.Transition == nil || alive[rec.Transition.Node] {
			continue
		}
		found++
		r.orphans.Add(1)
		r.cfg.Metrics.Orphan()
		if err := r.orphan(ctx, rec, alive); err != nil && ctx.Err() == nil {
			r.logger.Warn("reconcile: deciding an orphan failed", "instance", rec.State.ID, "err", err)
		}
	}
	return found, ctx.Err()
}

func (r *Reconciler) orphan(ctx context.Context, rec store.Record, alive map[string]bool) error {
	// Read it again: the owner may have come back, or someone else may
	// have decided already.
	rec, err := r.cfg.Store.Get(ctx, rec.State.ID)
	if err != nil || rec.Err != nil || rec.Transition == nil {
		return err
	}
	if _, ok, err := r.cfg.Store.Node(ctx, rec.Transition.Node); err != nil || ok {
		return err
	}
	t := rec.Transition
	now := r.cfg.Now()
	st := rec.State
	_, canAdopt := r.cfg.Drivers[st.Driver]
	since := r.since(disagreement{st.ID, policy.CaseOrphan}, now)
	req := policy.ReconcileRequest{Now: now, Case: policy.CaseOrphan, Node: r.cfg.Node, Instance: &st, Transition: t,
		Status: rec.Status(), Disagreeing: now.Sub(since), LostNode: t.Node, CanAdopt: canAdopt,
		Observed: policy.Observation{ID: st.ID}}
	dec := r.ask(ctx, req)
	r.decisions(req.Case, dec.Kind)
	lost := fmt.Sprintf("node %s, which ran %s of instance %s (step %s, request %s), is gone: its registration expired",
		t.Node, t.Action, st.ID, orNone(t.Current()), t.RequestID)
	switch dec.Kind {
	case policy.DecisionLeave:
		return nil
	case policy.DecisionFlag:
		return r.flag(ctx, "", rec, req, dec, since)
	case policy.DecisionAdopt:
		if !canAdopt {
			return r.flag(ctx, "", rec, req, dec, since)
		}
		_, err := r.cfg.Store.Adopt(ctx, rec, r.cfg.Node, now)
		if err == nil {
			r.logger.Warn("reconcile: adopted an orphaned transition", "instance", st.ID, "action", t.Action, "lost_node", t.Node)
		}
		if errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrNodeAlive) {
			return nil
		}
		return err
	case policy.DecisionCorrect, policy.DecisionRollback:
	default:
		return r.flag(ctx, "", rec, req, dec, since)
	}
	end := dec.Status
	if dec.Kind == policy.DecisionCorrect && end == "" {
		end = instance.StatusError
	}
	vm, err := instance.SettledState(end)
	if err != nil {
		return fmt.Errorf("reconcile: orphan end %q: %w", end, err)
	}
	st.VMState, st.UpdatedAt = vm, now
	st.Fault = &instance.Fault{Code: 500, Message: lost + "; the action's outcome is unknown", At: now, During: t.Action}
	ch := lifecycle.Change{ID: st.ID, State: &st, At: now, Action: t.Action, Cause: instance.CauseReconciler,
		RequestID: t.RequestID, Policy: r.cfg.PolicyID, Message: fmt.Sprintf("orphan, %s: %s; %s", dec.Kind, lost, dec.Reason)}
	_, err = r.cfg.Recorder.Record(ctx, rec, ch)
	var refused *lifecycle.RefusedError
	switch {
	case err == nil, errors.Is(err, store.ErrStale):
		return nil
	case errors.As(err, &refused):
		r.logger.Warn("reconcile: the validate policy refused the orphan's end; flagging instead", "instance", st.ID, "err", err)
		dec.Reason = fmt.Sprintf("%s (ending it in %s was refused: %s)", dec.Reason, end, refused.Reason)
		return r.flag(ctx, "", rec, req, dec, since)
	}
	return err
}
