package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lucid-project/lucid/sdk/policy"
)

// plan is one row of DESIGN.md section 3's action table, written out again
// here rather than taken from the host: this policy is the independent
// check of what the executor does, so it must not trust the executor's own
// plan. The columns are the table's: allowed from, visible in flight,
// success, failure.
type plan struct {
	from []policy.Status // allowed origins; nil means any
	// enforceFrom are further origins only the reconciler may start the
	// action from, to make the VM follow the record (a stop while the
	// record says SHUTOFF and the VM runs).
	enforceFrom []policy.Status
	steps       []policy.Status // shown in flight, in order
	success     func(origin policy.Status) []policy.Status
	// failBack lists the steps on which a failure returns the instance to
	// its origin (nothing has changed yet); a failure on any other step,
	// or of an action without steps, goes to ERROR.
	failBack []policy.Status
}

func always(s ...policy.Status) func(policy.Status) []policy.Status {
	return func(policy.Status) []policy.Status { return s }
}

const (
	build, active, shutoff, errorS  = policy.StatusBuild, policy.StatusActive, policy.StatusShutoff, policy.StatusError
	verifyResize, deleting, deleted = policy.StatusVerifyResize, policy.StatusDeleting, policy.StatusDeleted
	queueResize, prepResize         = policy.StatusQueueResize, policy.StatusPrepResize
	stopping, starting              = policy.StatusStopping, policy.StatusStarting
)

// asBefore ends an action where it started: SHUTOFF if it was, else ACTIVE.
func asBefore(origin policy.Status) []policy.Status {
	if origin == shutoff {
		return []policy.Status{shutoff}
	}
	return []policy.Status{active}
}

// of lists statuses.
func of(s ...policy.Status) []policy.Status { return s }

// plans has one row per action, in the columns of the table: allowed from
// (nil: any), also from when the reconciler enforces, visible in flight,
// success, and the steps on which a failure goes back to the origin (on any
// other it goes to ERROR).
var plans = map[policy.Action]plan{
	policy.ActionCreate:        {from: nil, steps: of(build), success: always(active)},
	policy.ActionRebuild:       {from: of(active, shutoff, errorS), steps: of(policy.StatusRebuild), success: asBefore},
	policy.ActionResize:        {from: of(active, shutoff), steps: of(queueResize, prepResize, policy.StatusResize), success: always(verifyResize), failBack: of(queueResize, prepResize)},
	policy.ActionConfirmResize: {from: of(verifyResize), steps: nil, success: always(active, shutoff)},
	policy.ActionRevertResize:  {from: of(verifyResize), steps: of(policy.StatusRevertResize), success: always(active, shutoff)},
	policy.ActionStop:          {from: of(active, errorS), enforceFrom: of(shutoff), steps: of(stopping), success: always(shutoff), failBack: of(stopping)},
	policy.ActionStart:         {from: of(shutoff), enforceFrom: of(active), steps: of(starting), success: always(active), failBack: of(starting)},
	policy.ActionReboot:        {from: of(active), steps: of(policy.StatusReboot), success: always(active)},
	policy.ActionHardReboot:    {from: of(active, shutoff, errorS), steps: of(policy.StatusHardReboot), success: always(active)},
	policy.ActionDelete:        {from: nil, steps: of(deleting), success: always(deleted)},
}

// settled are the statuses the reconciler may move an instance between
// when no action is in flight.
var settled = []policy.Status{active, shutoff, errorS}

// settings are the operator's knobs, from the HCL settings block. Whether
// the reconciler may change ERROR is the reconcile policy's decision
// (its on_error), not this policy's.
type settings struct {
	// ForbidActions refuses to start the listed actions.
	ForbidActions []policy.Action `json:"forbid_actions"`
}

const settingsSchema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "forbid_actions": {"type": "array", "items": {"enum": ["create", "delete", "rebuild", "resize",
      "confirmResize", "revertResize", "stop", "start", "reboot", "hardReboot"]},
      "description": "actions that may not be started"}
  }
}`

// parseSettings decodes and checks the settings object.
func parseSettings(raw []byte) (settings, error) {
	var s settings
	if err := policy.DecodeSettings(raw, &s); err != nil {
		return settings{}, err
	}
	for _, a := range s.ForbidActions {
		if _, ok := plans[a]; !ok {
			return settings{}, fmt.Errorf("forbid_actions: unknown action %q", a)
		}
	}
	return s, nil
}

// edge is one allowed status change.
type edge struct {
	from, to policy.Status
	start    bool // the change that starts the action
	failure  bool // a change that ends the action as failed
}

// check is the validate hook.
//
// A change by the reconciler between settled statuses (ACTIVE, SHUTOFF,
// ERROR) is allowed: whether to correct a record, ERROR included, is the
// reconcile policy's decision. Within an action, the reconciler (and a
// change forced by a policy's answer, cause "policy") may start it (an
// enforcing transition), and may end it as a failure: in ERROR from any
// step, or back at its origin where the action's failure rule allows the
// origin at that step. Advancing an action is the driver's.
func (s *settings) check(req policy.ValidateRequest) policy.Verdict {
	from, to := req.From, req.To
	overseer := req.Cause == policy.CauseReconciler || req.Cause == policy.CausePolicy
	if req.Cause == policy.CauseReconciler && slices.Contains(settled, from) && slices.Contains(settled, to) {
		return policy.Allow()
	}
	if overseer && req.Transition == nil {
		return policy.Deny(fmt.Sprintf("the %s may not change %s to %s outside an action", who(req.Cause), show(from), to))
	}

	p, ok := plans[req.Action]
	if !ok {
		return policy.Deny(fmt.Sprintf("unknown action %q may not change %s to %s", req.Action, show(from), to))
	}
	t := req.Transition
	if t != nil {
		if t.Action != req.Action {
			return policy.Deny(fmt.Sprintf("%s may not change %s to %s: the change belongs to a %s transition", req.Action, show(from), to, t.Action))
		}
		if !slices.Equal(t.Steps, p.steps) {
			return policy.Deny(fmt.Sprintf("%s may not declare the steps %s (it shows %s)", req.Action, list(t.Steps), list(p.steps)))
		}
		if req.Action != policy.ActionDelete && (p.from == nil || slices.Contains(p.from, t.Origin) || slices.Contains(p.enforceFrom, t.Origin)) {
			if ends := p.success(t.Origin); !slices.Contains(ends, t.Target) {
				return policy.Deny(fmt.Sprintf("%s from %s may not target %s (only %s)", req.Action, show(t.Origin), show(t.Target), list(ends)))
			}
		}
	}

	edges := p.edges(req.Action, origin(req, p), t, req.Cause)
	if overseer {
		edges = overseen(edges, p)
	}
	for _, e := range edges {
		if e.from == from && e.to == to {
			if e.start && slices.Contains(s.ForbidActions, req.Action) {
				return policy.Deny(fmt.Sprintf("%s is forbidden by the operator (forbid_actions)", req.Action))
			}
			return policy.Allow()
		}
	}
	if overseer {
		return policy.Deny(fmt.Sprintf("the %s may not take %s from %s to %s (only start it, or end it in ERROR or back at its origin where it may fail back)",
			who(req.Cause), req.Action, show(from), to))
	}
	return policy.Deny(p.why(req.Action, from, to, edges))
}

// overseen keeps the edges the reconciler or a policy may take: starting
// the action and failing it, and adds ERROR from every step.
func overseen(edges []edge, p plan) []edge {
	var es []edge
	for _, e := range edges {
		if e.start || e.failure {
			es = append(es, e)
		}
	}
	for _, st := range p.steps {
		es = append(es, edge{from: st, to: errorS, failure: true})
	}
	return es
}

func who(c policy.Cause) string {
	if c == policy.CausePolicy {
		return "policy"
	}
	return "reconciler"
}

// origin is the status the action started from: the transition's, or for
// a start without a transition, the status it leaves.
func origin(req policy.ValidateRequest, p plan) policy.Status {
	if req.Transition != nil {
		return req.Transition.Origin
	}
	if req.Action == policy.ActionCreate || slices.Contains(p.steps, req.From) {
		return ""
	}
	return req.From
}

// edges lists every change the action may make, given its origin ("" when
// unknown, which rules out the changes that need it), transition and the
// cause of the change (only the reconciler starts from enforceFrom).
func (p plan) edges(a policy.Action, origin policy.Status, t *policy.Transition, cause policy.Cause) []edge {
	var es []edge
	if a == policy.ActionDelete {
		// Delete pre-empts anything: any status may go to DELETING.
		for st := range allStatuses() {
			if st != deleting {
				es = append(es, edge{from: st, to: deleting, start: true})
			}
		}
		return append(es, edge{from: deleting, to: deleted}, edge{from: deleting, to: errorS, failure: true})
	}

	success := p.success(origin)
	if t != nil && slices.Contains(success, t.Target) {
		success = []policy.Status{t.Target} // the transition chose among the allowed ends
	}
	canStart := a == policy.ActionCreate || (origin != "" && (p.from == nil || slices.Contains(p.from, origin) ||
		cause == policy.CauseReconciler && slices.Contains(p.enforceFrom, origin)))
	if len(p.steps) == 0 {
		// The action is one change, which both starts and ends it.
		if !canStart {
			return nil
		}
		for _, s := range success {
			es = append(es, edge{from: origin, to: s, start: true})
		}
		return append(es, edge{from: origin, to: errorS, failure: true})
	}
	if canStart {
		es = append(es, edge{from: origin, to: p.steps[0], start: true})
	}
	for i := 1; i < len(p.steps); i++ {
		es = append(es, edge{from: p.steps[i-1], to: p.steps[i]})
	}
	last := p.steps[len(p.steps)-1]
	for _, s := range success {
		es = append(es, edge{from: last, to: s})
	}
	for _, st := range p.steps {
		switch {
		case !slices.Contains(p.failBack, st):
			es = append(es, edge{from: st, to: errorS, failure: true})
		case origin != "":
			es = append(es, edge{from: st, to: origin, failure: true})
		}
	}
	return es
}

// why explains a refused change in the words of the table: a status the
// action never shows, a start from the wrong status, or a wrong order.
func (p plan) why(a policy.Action, from, to policy.Status, edges []edge) string {
	shows := slices.Clone(p.steps)
	shows = append(shows, errorS)
	for _, o := range append(slices.Clone(p.from), "") {
		shows = append(shows, p.success(o)...)
	}
	if len(p.failBack) > 0 {
		shows = append(shows, p.from...)
	}
	if !slices.Contains(shows, to) {
		return fmt.Sprintf("%s may not show %s (from %s)", a, to, show(from))
	}
	starting := len(p.steps) == 0 || (to == p.steps[0] && !slices.Contains(p.steps, from))
	if starting && p.from != nil && !slices.Contains(p.from, from) {
		return fmt.Sprintf("%s may not start from %s (only from %s)", a, show(from), list(p.from))
	}
	var allowed []string
	for _, e := range edges {
		if e.from == from && !slices.Contains(allowed, string(e.to)) {
			allowed = append(allowed, string(e.to))
		}
	}
	if len(allowed) == 0 {
		return fmt.Sprintf("%s may not go from %s to %s", a, show(from), to)
	}
	return fmt.Sprintf("%s may not go from %s to %s (only to %s)", a, show(from), to, strings.Join(allowed, ", "))
}

// show names a status in a reason; "" is the nothing a create starts from.
func show(s policy.Status) string {
	if s == "" {
		return "nothing"
	}
	return string(s)
}

func list(ss []policy.Status) string {
	if len(ss) == 0 {
		return "no steps"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// allStatuses yields every status Lucid can show.
func allStatuses() func(func(policy.Status) bool) {
	return slices.Values([]policy.Status{
		policy.StatusBuild, policy.StatusActive, policy.StatusShutoff, policy.StatusError,
		policy.StatusRebuild, policy.StatusQueueResize, policy.StatusPrepResize, policy.StatusResize,
		policy.StatusVerifyResize, policy.StatusRevertResize, policy.StatusStopping, policy.StatusStarting,
		policy.StatusReboot, policy.StatusHardReboot, policy.StatusDeleting, policy.StatusDeleted,
	})
}
