package instance

import (
	"fmt"
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

// Op is a driver operation: what the executor asks the hypervisor to do
// for one step. The executor maps each Op to one driver call.
type Op string

// The driver operations.
const (
	OpSpawn         Op = "spawn"
	OpDestroy       Op = "destroy"
	OpPowerOff      Op = "power_off"
	OpPowerOn       Op = "power_on"
	OpReboot        Op = "reboot"
	OpHardReboot    Op = "hard_reboot"
	OpRebuild       Op = "rebuild"
	OpResizeQueue   Op = "resize_queue"
	OpResizePrepare Op = "resize_prepare"
	OpResizeFinish  Op = "resize_finish"
	OpConfirmResize Op = "confirm_resize"
	OpRevertResize  Op = "revert_resize"
)

// Step is one step of an action: the status it shows while it runs and
// the driver operation it runs. Status is "" for an action's only,
// invisible step (confirmResize shows nothing in flight: its one record
// goes straight from VERIFY_RESIZE to where it ends).
type Step struct {
	Status Status
	Op     Op
}

// Spec is one row of the action table: everything Lucid knows about an
// action. The API checks requests against it, the lifecycle service
// starts transitions from it, the executor runs its steps, and the default
// transitions policy states the same table independently.
type Spec struct {
	Action Action
	// From lists the statuses the action may start from; empty means any.
	From []Status
	// EnforceFrom lists further statuses the reconciler (never a user) may
	// start the action from, to make the hypervisor follow the record: a
	// start while the record says ACTIVE but the VM is off, a stop while
	// it says SHUTOFF but the VM runs.
	EnforceFrom []Status
	// Steps run in order. Their statuses are the only ones the action may
	// show while it is in flight.
	Steps []Step
	// Success is where the action ends when every step succeeded, given
	// the status it started from and the settled state.
	Success func(origin Status, st State) Status
	// OriginUntil is how many leading steps fail back to the origin status
	// (with a fault) because they change nothing; a failure at a later
	// step ends in ERROR with a fault. 0: every failure is ERROR.
	OriginUntil int
	// Preempts says the action replaces one already in flight (delete).
	Preempts bool
	// Capability is the optional driver capability the action needs (see
	// sdk/driver: "rebuild", "resize"); "" for the core contract.
	Capability string
	// Applies changes the settled state when the action succeeds, beyond
	// the status (a rebuild records the new image, a resize swaps flavors).
	// nil: nothing else changes.
	Applies func(st *State, t *Transition)
	// Check validates the request against the instance before anything is
	// written; nil accepts anything. Errors wrap ErrInvalid.
	Check func(st State, req Request) error
}

// Request carries an action's arguments, already resolved from the
// operator's catalogs by the caller.
type Request struct {
	Flavor *Flavor // resize: the new flavor
	Image  *Image  // rebuild: the new image
	Name   string  // rebuild: an optional new name
}

func always(s Status) func(Status, State) Status { return func(Status, State) Status { return s } }

// resizedFrom ends confirm and revert where the instance was before the
// resize.
func resizedFrom(_ Status, st State) Status {
	if st.ResizedFrom == StatusShutoff {
		return StatusShutoff
	}
	return StatusActive
}

var actions = []Spec{
	{
		Action:  ActionCreate,
		Steps:   []Step{{StatusBuild, OpSpawn}},
		Success: always(StatusActive),
	},
	{
		Action:   ActionDelete,
		Steps:    []Step{{StatusDeleting, OpDestroy}},
		Success:  always(StatusDeleted),
		Preempts: true,
	},
	{
		Action: ActionRebuild,
		From:   []Status{StatusActive, StatusShutoff, StatusError},
		Steps:  []Step{{StatusRebuild, OpRebuild}},
		Success: func(origin Status, _ State) Status {
			if origin == StatusShutoff {
				return StatusShutoff
			}
			return StatusActive
		},
		Capability: "rebuild",
		Applies: func(st *State, t *Transition) {
			if t.Image != nil {
				st.Image = *t.Image
			}
			if t.Name != "" {
				st.Name = t.Name
			}
		},
		Check: func(_ State, req Request) error {
			if req.Image == nil {
				return fmt.Errorf("%w: rebuild needs an imageRef", ErrInvalid)
			}
			return nil
		},
	},
	{
		Action: ActionResize,
		From:   []Status{StatusActive, StatusShutoff},
		Steps: []Step{
			{StatusQueueResize, OpResizeQueue},
			{StatusPrepResize, OpResizePrepare},
			{StatusResize, OpResizeFinish},
		},
		Success:     always(StatusVerifyResize),
		OriginUntil: 2, // QUEUE_RESIZE and PREP_RESIZE change nothing yet
		Capability:  "resize",
		Applies: func(st *State, t *Transition) {
			old := st.Flavor
			st.OldFlavor = &old
			if t.Flavor != nil {
				st.Flavor = *t.Flavor
			}
			st.ResizedFrom = t.Origin
		},
		Check: func(st State, req Request) error {
			f := req.Flavor
			switch {
			case f == nil:
				return fmt.Errorf("%w: resize needs a flavorRef", ErrInvalid)
			case f.ID == st.Flavor.ID:
				return fmt.Errorf("%w: instance %s already has flavor %s; resize to a different one", ErrInvalid, st.ID, f.ID)
			case f.DiskGB < st.Flavor.DiskGB:
				return fmt.Errorf("%w: flavor %s has a %d GB disk, smaller than the instance's %d GB; disks cannot shrink", ErrInvalid, f.ID, f.DiskGB, st.Flavor.DiskGB)
			}
			return nil
		},
	},
	{
		Action:     ActionConfirmResize,
		From:       []Status{StatusVerifyResize},
		Steps:      []Step{{"", OpConfirmResize}},
		Success:    resizedFrom,
		Capability: "resize",
		Applies: func(st *State, _ *Transition) {
			st.OldFlavor, st.ResizedFrom = nil, ""
		},
	},
	{
		Action:     ActionRevertResize,
		From:       []Status{StatusVerifyResize},
		Steps:      []Step{{StatusRevertResize, OpRevertResize}},
		Success:    resizedFrom,
		Capability: "resize",
		Applies: func(st *State, _ *Transition) {
			if st.OldFlavor != nil {
				st.Flavor = *st.OldFlavor
			}
			st.OldFlavor, st.ResizedFrom = nil, ""
		},
	},
	{
		Action:      ActionStop,
		From:        []Status{StatusActive, StatusError},
		EnforceFrom: []Status{StatusShutoff},
		Steps:       []Step{{StatusStopping, OpPowerOff}},
		Success:     always(StatusShutoff),
		OriginUntil: 1,
	},
	{
		Action:      ActionStart,
		From:        []Status{StatusShutoff},
		EnforceFrom: []Status{StatusActive},
		Steps:       []Step{{StatusStarting, OpPowerOn}},
		Success:     always(StatusActive),
		OriginUntil: 1,
	},
	{
		Action:  ActionReboot,
		From:    []Status{StatusActive},
		Steps:   []Step{{StatusReboot, OpReboot}},
		Success: always(StatusActive),
	},
	{
		Action:  ActionHardReboot,
		From:    []Status{StatusActive, StatusShutoff, StatusError},
		Steps:   []Step{{StatusHardReboot, OpHardReboot}},
		Success: always(StatusActive),
	},
}

// Actions returns the action table. The rows are copies; changing them
// changes nothing.
func Actions() []Spec {
	out := make([]Spec, len(actions))
	for i, a := range actions {
		a.From, a.EnforceFrom, a.Steps = slices.Clone(a.From), slices.Clone(a.EnforceFrom), slices.Clone(a.Steps)
		out[i] = a
	}
	return out
}

// Lookup returns the row of action a. An unknown action is ErrInvalid.
func Lookup(a Action) (Spec, error) {
	for _, s := range actions {
		if s.Action == a {
			s.From, s.EnforceFrom, s.Steps = slices.Clone(s.From), slices.Clone(s.EnforceFrom), slices.Clone(s.Steps)
			return s, nil
		}
	}
	return Spec{}, fmt.Errorf("%w: unknown action %q", ErrInvalid, a)
}

// Allows reports whether the action may start from status from when
// cause asks for it: the reconciler may also start it from EnforceFrom.
func (s Spec) Allows(from Status, cause Cause) bool {
	if len(s.From) == 0 || slices.Contains(s.From, from) {
		return true
	}
	return cause == CauseReconciler && slices.Contains(s.EnforceFrom, from)
}

// Runnable reports whether every step names a driver operation. The API
// refuses an action whose row is not runnable, in one place.
func (s Spec) Runnable() bool {
	if len(s.Steps) == 0 {
		return false
	}
	for _, st := range s.Steps {
		if st.Op == "" {
			return false
		}
	}
	return true
}

// Shows returns the statuses the action shows in flight, in order. An
// invisible step shows nothing.
func (s Spec) Shows() []Status {
	var out []Status
	for _, st := range s.Steps {
		if st.Status != "" {
			out = append(out, st.Status)
		}
	}
	return out
}

// FailsToOrigin reports whether a failure at step i returns the instance
// to its origin status rather than ERROR.
func (s Spec) FailsToOrigin(i int) bool { return i < s.OriginUntil }

// Begin returns the transition that carries out the action on an instance
// st that currently shows origin, executed by node. It does not check
// Allows or Check; the caller has.
func (s Spec) Begin(origin Status, st State, requestID, node string, req Request) *Transition {
	t := &Transition{
		Schema:    TransitionSchema,
		Action:    s.Action,
		RequestID: requestID,
		Steps:     s.Shows(),
		Origin:    origin,
		Target:    s.Success(origin, st),
		Attempt:   1,
		Node:      node,
		Flavor:    req.Flavor,
		Image:     req.Image,
		Name:      req.Name,
	}
	return t
}

// Op returns the driver operation of the transition's current step.
func (s Spec) Op(t *Transition) (Op, bool) {
	if t == nil || t.Step < 0 || t.Step >= len(s.Steps) {
		return "", false
	}
	return s.Steps[t.Step].Op, true
}

// Last reports whether the transition is on its action's last step.
func (s Spec) Last(t *Transition) bool { return t.Step >= len(s.Steps)-1 }
