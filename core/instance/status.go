package instance

import "fmt"

// Status is what a user sees: the current step of the transition if an
// action is in flight, else the settled state. It is derived, never stored.
type Status string

// Every status Lucid can show. No other value ever appears.
const (
	StatusBuild        Status = "BUILD"
	StatusActive       Status = "ACTIVE"
	StatusShutoff      Status = "SHUTOFF"
	StatusError        Status = "ERROR"
	StatusRebuild      Status = "REBUILD"
	StatusQueueResize  Status = "QUEUE_RESIZE"
	StatusPrepResize   Status = "PREP_RESIZE"
	StatusResize       Status = "RESIZE"
	StatusVerifyResize Status = "VERIFY_RESIZE"
	StatusRevertResize Status = "REVERT_RESIZE"
	StatusStopping     Status = "STOPPING"
	StatusStarting     Status = "STARTING"
	StatusReboot       Status = "REBOOT"
	StatusHardReboot   Status = "HARD_REBOOT"
	StatusDeleting     Status = "DELETING"
	StatusDeleted      Status = "DELETED"
)

// StatusRow is one row of the status table: what a status means for the
// settled record and for OpenStack's task_state.
type StatusRow struct {
	Status Status
	// Settled is the vm_state an instance rests in while showing this
	// status with no action in flight; "" for statuses shown only while a
	// step runs.
	Settled VMState
	// TaskState is OpenStack's OS-EXT-STS:task_state while this status is
	// a step in flight; "" for settled statuses.
	TaskState string
	// Power is the power state an instance settled in this status has, if
	// the status implies one (ACTIVE is running, SHUTOFF shut down); ""
	// when it does not.
	Power PowerState
}

// statuses is the status table. Derive, SettledStatus, SettledState and
// TaskState read it; tests iterate it.
var statuses = []StatusRow{
	{Status: StatusBuild, Settled: Building, TaskState: "spawning"},
	{Status: StatusActive, Settled: Active, Power: Running},
	{Status: StatusShutoff, Settled: Stopped, Power: Shutdown},
	{Status: StatusError, Settled: Error},
	{Status: StatusVerifyResize, Settled: Resized},
	{Status: StatusDeleted, Settled: Deleted},
	{Status: StatusRebuild, TaskState: "rebuilding"},
	{Status: StatusQueueResize, TaskState: "resize_prep"},
	{Status: StatusPrepResize, TaskState: "resize_migrating"},
	{Status: StatusResize, TaskState: "resize_finish"},
	{Status: StatusRevertResize, TaskState: "resize_reverting"},
	{Status: StatusStopping, TaskState: "powering-off"},
	{Status: StatusStarting, TaskState: "powering-on"},
	{Status: StatusReboot, TaskState: "rebooting"},
	{Status: StatusHardReboot, TaskState: "rebooting_hard"},
	{Status: StatusDeleting, TaskState: "deleting"},
}

// Statuses returns the status table, in a stable order. The slice is a
// copy.
func Statuses() []StatusRow { return append([]StatusRow(nil), statuses...) }

// Row returns the table row of s.
func (s Status) Row() (StatusRow, bool) {
	for _, r := range statuses {
		if r.Status == s {
			return r, true
		}
	}
	return StatusRow{}, false
}

// SettledStatus maps a settled VM state to the status it shows. A value
// outside the table shows as ERROR: an instance whose state Lucid cannot
// read must not look healthy.
func SettledStatus(v VMState) Status {
	for _, r := range statuses {
		if r.Settled != "" && r.Settled == v {
			return r.Status
		}
	}
	return StatusError
}

// SettledState is the inverse of SettledStatus. A status that is only
// ever a step in flight is ErrInvalid.
func SettledState(s Status) (VMState, error) {
	if r, ok := s.Row(); ok && r.Settled != "" {
		return r.Settled, nil
	}
	return "", fmt.Errorf("%w: %s is not a settled status", ErrInvalid, s)
}

// Derive returns the user-visible status of an instance: the current
// step of the transition in flight, else its settled state.
func Derive(s State, t *Transition) Status {
	if c := t.Current(); c != "" {
		return c
	}
	return SettledStatus(s.VMState)
}

// TaskState is the OpenStack OS-EXT-STS:task_state for a transition:
// what the compute service is doing right now, or "" when nothing is.
func TaskState(t *Transition) string {
	if r, ok := t.Current().Row(); ok {
		return r.TaskState
	}
	return ""
}

// novaPower maps power states to Nova's integer codes, which OpenStack
// clients expect in OS-EXT-STS:power_state.
var novaPower = map[PowerState]int{NoState: 0, Running: 1, Paused: 3, Shutdown: 4, Crashed: 6}

// PowerCode is the Nova power_state code of p (0, "no state", for a value
// Lucid does not know).
func PowerCode(p PowerState) int { return novaPower[p] }
