package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lucid-project/lucid/sdk/policy"
)

// failure says where an action may land when it fails.
type failure int

const (
	// failError: any step may fail to ERROR.
	failError failure = iota
	// failOrigin: any step may fail back to the origin status.
	failOrigin
	// failOriginFirstStep: back to origin while on the first step (nothing
	// changed yet), ERROR from any step. Used by resize. ERROR stays allowed
	// on the first step too: an executor unsure whether anything changed
	// must be able to take the safe exit.
	failOriginFirstStep
)

// plan is one row of DESIGN.md section 3's table, written out again here
// rather than taken from the host: this policy is the independent check of
// what the executor does, so it must not trust the executor's own plan.
type plan struct {
	from    []policy.Status // allowed origins; nil means any
	steps   []policy.Status // shown in flight, in order
	success func(origin policy.Status) []policy.Status
	failure failure
}

func always(s ...policy.Status) func(policy.Status) []policy.Status {
	return func(policy.Status) []policy.Status { return s }
}

const (
	build, active, shutoff, errorS  = policy.StatusBuild, policy.StatusActive, policy.StatusShutoff, policy.StatusError
	verifyResize, deleting, deleted = policy.StatusVerifyResize, policy.StatusDeleting, policy.StatusDeleted
)

var plans = map[policy.Action]plan{
	policy.ActionCreate: {steps: []policy.Status{build}, success: always(active)},
	policy.ActionRebuild: {
		from:  []policy.Status{active, shutoff, errorS},
		steps: []policy.Status{policy.StatusRebuild},
		// ACTIVE, or SHUTOFF if it was.
		success: func(origin policy.Status) []policy.Status {
			if origin == shutoff {
				return []policy.Status{shutoff}
			}
			return []policy.Status{active}
		},
	},
	policy.ActionResize: {
		from:    []policy.Status{active, shutoff},
		steps:   []policy.Status{policy.StatusQueueResize, policy.StatusPrepResize, policy.StatusResize},
		success: always(verifyResize),
		failure: failOriginFirstStep,
	},
	policy.ActionConfirmResize: {from: []policy.Status{verifyResize}, success: always(active, shutoff)},
	policy.ActionRevertResize: {
		from:    []policy.Status{verifyResize},
		steps:   []policy.Status{policy.StatusRevertResize},
		success: always(active, shutoff),
	},
	policy.ActionStop: {
		from:    []policy.Status{active, errorS},
		steps:   []policy.Status{policy.StatusStopping},
		success: always(shutoff),
		failure: failOrigin,
	},
	policy.ActionStart: {
		from:    []policy.Status{shutoff},
		steps:   []policy.Status{policy.StatusStarting},
		success: always(active),
		failure: failOrigin,
	},
	policy.ActionReboot:     {from: []policy.Status{active}, steps: []policy.Status{policy.StatusReboot}, success: always(active)},
	policy.ActionHardReboot: {from: []policy.Status{active, shutoff, errorS}, steps: []policy.Status{policy.StatusHardReboot}, success: always(active)},
	policy.ActionDelete:     {steps: []policy.Status{deleting}, success: always(deleted)},
}

// settled are the statuses the reconciler may move an instance between
// when no action is in flight.
var settled = []policy.Status{active, shutoff, errorS}

// settings are the operator's knobs, from the HCL settings block.
type settings struct {
	// ReconcilerMayClearError lets the reconciler move an instance out of
	// ERROR (by default only an operator action may).
	ReconcilerMayClearError bool `json:"reconciler_may_clear_error"`
	// ForbidActions refuses to start the listed actions.
	ForbidActions []policy.Action `json:"forbid_actions"`
}

const settingsSchema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "reconciler_may_clear_error": {"type": "boolean", "default": false,
      "description": "let the reconciler move an instance out of ERROR"},
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
}

// check is the validate hook.
func (s *settings) check(req policy.ValidateRequest) policy.Verdict {
	from, to := req.From, req.To
	if req.Cause == policy.CauseReconciler && slices.Contains(settled, from) && slices.Contains(settled, to) {
		if from == errorS && !s.ReconcilerMayClearError {
			return policy.Deny(fmt.Sprintf("the reconciler may not clear ERROR (to %s) unless reconciler_may_clear_error is set", to))
		}
		return policy.Allow()
	}
	if req.Cause == policy.CauseReconciler && req.Transition == nil {
		return policy.Deny(fmt.Sprintf("the reconciler may not change %s to %s outside an action", show(from), to))
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
	}

	edges := p.edges(req.Action, origin(req, p), t)
	if req.Cause == policy.CauseReconciler {
		// An orphaned transition may always be ended in ERROR.
		for _, st := range p.steps {
			edges = append(edges, edge{from: st, to: errorS})
		}
	}
	for _, e := range edges {
		if e.from == from && e.to == to {
			if e.start && slices.Contains(s.ForbidActions, req.Action) {
				return policy.Deny(fmt.Sprintf("%s is forbidden by the operator (forbid_actions)", req.Action))
			}
			return policy.Allow()
		}
	}
	return policy.Deny(p.why(req.Action, from, to, edges))
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
// unknown, which rules out the changes that need it) and transition.
func (p plan) edges(a policy.Action, origin policy.Status, t *policy.Transition) []edge {
	var es []edge
	if a == policy.ActionDelete {
		// Delete pre-empts anything: any status may go to DELETING.
		for st := range allStatuses() {
			if st != deleting {
				es = append(es, edge{from: st, to: deleting, start: true})
			}
		}
		return append(es, edge{from: deleting, to: deleted}, edge{from: deleting, to: errorS})
	}

	success := p.success(origin)
	if t != nil && slices.Contains(success, t.Target) {
		success = []policy.Status{t.Target} // the transition chose among the allowed ends
	}
	canStart := a == policy.ActionCreate || (origin != "" && (p.from == nil || slices.Contains(p.from, origin)))
	if len(p.steps) == 0 {
		if !canStart {
			return nil // the action is only its start and end
		}
		for _, s := range success {
			es = append(es, edge{from: origin, to: s, start: canStart})
		}
		if origin != "" {
			es = append(es, edge{from: origin, to: errorS})
		}
		return es
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
	for i, st := range p.steps {
		switch p.failure {
		case failOrigin:
			if origin != "" {
				es = append(es, edge{from: st, to: origin})
			}
		case failOriginFirstStep:
			if i == 0 && origin != "" {
				es = append(es, edge{from: st, to: origin})
			}
			es = append(es, edge{from: st, to: errorS})
		default:
			es = append(es, edge{from: st, to: errorS})
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
	if p.failure != failError {
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
