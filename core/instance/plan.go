package instance

import (
	"fmt"
	"maps"
	"slices"
)

// Action names a user request that changes an instance.
type Action string

// The actions Lucid knows.
const (
	ActionCreate        Action = "create"
	ActionDelete        Action = "delete"
	ActionRebuild       Action = "rebuild"
	ActionResize        Action = "resize"
	ActionConfirmResize Action = "confirmResize"
	ActionRevertResize  Action = "revertResize"
	ActionStop          Action = "stop"
	ActionStart         Action = "start"
	ActionReboot        Action = "reboot"
	ActionHardReboot    Action = "hardReboot"
)

// Plan declares what an action may start from, which statuses it shows
// while in flight and how it ends. The executor follows it; the transition
// policy checks every change against what the action declared.
type Plan struct {
	Action Action
	// From lists the statuses the action may start from; empty means any.
	From []Status
	// Steps are the statuses shown in flight, in order.
	Steps []Status
	// Success is the status on success; "" means "the origin status".
	Success Status
	// Preempts says the action may replace one already in flight.
	Preempts bool
	// FailToOrigin says a failure returns the instance to its origin
	// status (with a fault) instead of ERROR: the action changed nothing.
	FailToOrigin bool
}

var plans = map[Action]Plan{
	ActionCreate:        {Action: ActionCreate, Steps: []Status{StatusBuild}, Success: StatusActive},
	ActionDelete:        {Action: ActionDelete, Steps: []Status{StatusDeleting}, Success: StatusDeleted, Preempts: true},
	ActionRebuild:       {Action: ActionRebuild, From: []Status{StatusActive, StatusShutoff, StatusError}, Steps: []Status{StatusRebuild}},
	ActionResize:        {Action: ActionResize, From: []Status{StatusActive, StatusShutoff}, Steps: []Status{StatusQueueResize, StatusPrepResize, StatusResize}, Success: StatusVerifyResize},
	ActionConfirmResize: {Action: ActionConfirmResize, From: []Status{StatusVerifyResize}},
	ActionRevertResize:  {Action: ActionRevertResize, From: []Status{StatusVerifyResize}, Steps: []Status{StatusRevertResize}},
	ActionStop:          {Action: ActionStop, From: []Status{StatusActive, StatusError}, Steps: []Status{StatusStopping}, Success: StatusShutoff, FailToOrigin: true},
	ActionStart:         {Action: ActionStart, From: []Status{StatusShutoff}, Steps: []Status{StatusStarting}, Success: StatusActive, FailToOrigin: true},
	ActionReboot:        {Action: ActionReboot, From: []Status{StatusActive}, Steps: []Status{StatusReboot}, Success: StatusActive},
	ActionHardReboot:    {Action: ActionHardReboot, From: []Status{StatusActive, StatusShutoff, StatusError}, Steps: []Status{StatusHardReboot}, Success: StatusActive},
}

// PlanFor returns the plan of an action. An unknown action is ErrInvalid.
func PlanFor(a Action) (Plan, error) {
	p, ok := plans[a]
	if !ok {
		return Plan{}, fmt.Errorf("%w: unknown action %q", ErrInvalid, a)
	}
	return p, nil
}

// Actions returns every action that has a plan, sorted by name, for
// listing the valid names in errors and config diagnostics.
func Actions() []Action {
	as := slices.Collect(maps.Keys(plans))
	slices.Sort(as)
	return as
}

// Allows reports whether the plan may start from the given status.
func (p Plan) Allows(from Status) bool {
	return len(p.From) == 0 || slices.Contains(p.From, from)
}

// Begin returns the transition that carries out the plan on an instance
// that currently shows origin. It does not check Allows.
func (p Plan) Begin(origin Status, requestID, node string, args map[string]string) *Transition {
	target := p.Success
	if target == "" {
		target = origin
		if origin == StatusError {
			target = StatusActive
		}
	}
	return &Transition{
		Action:    p.Action,
		RequestID: requestID,
		Steps:     slices.Clone(p.Steps),
		Origin:    origin,
		Target:    target,
		Attempt:   1,
		Node:      node,
		Args:      args,
	}
}
