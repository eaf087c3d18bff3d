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

// SettledStatus maps a settled VM state to the status it shows.
func SettledStatus(v VMState) Status {
	switch v {
	case Building:
		return StatusBuild
	case Active:
		return StatusActive
	case Stopped:
		return StatusShutoff
	case Resized:
		return StatusVerifyResize
	case Error:
		return StatusError
	case Deleted:
		return StatusDeleted
	}
	return StatusError
}

// SettledState is the inverse of SettledStatus for the statuses an action
// can end in.
func SettledState(s Status) (VMState, error) {
	switch s {
	case StatusBuild:
		return Building, nil
	case StatusActive:
		return Active, nil
	case StatusShutoff:
		return Stopped, nil
	case StatusVerifyResize:
		return Resized, nil
	case StatusError:
		return Error, nil
	case StatusDeleted:
		return Deleted, nil
	}
	return "", fmt.Errorf("%w: %s is not a settled status", ErrInvalid, s)
}

// Derive returns the user-visible status of an instance.
func Derive(s State, t *Transition) Status {
	if c := t.Current(); c != "" {
		return c
	}
	return SettledStatus(s.VMState)
}

// TaskState is the OpenStack OS-EXT-STS:task_state for a transition step:
// what the compute service is doing right now, or "" when nothing is.
func TaskState(t *Transition) string {
	switch t.Current() {
	case StatusBuild:
		return "spawning"
	case StatusRebuild:
		return "rebuilding"
	case StatusQueueResize:
		return "resize_prep"
	case StatusPrepResize:
		return "resize_migrating"
	case StatusResize:
		return "resize_finish"
	case StatusRevertResize:
		return "resize_reverting"
	case StatusStopping:
		return "powering-off"
	case StatusStarting:
		return "powering-on"
	case StatusReboot:
		return "rebooting"
	case StatusHardReboot:
		return "rebooting_hard"
	case StatusDeleting:
		return "deleting"
	}
	return ""
}
