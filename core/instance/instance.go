// Package instance is Lucid's model of a compute instance: the settled
// state, the in-flight transition, the user-visible status derived from
// both, and the history records every status change leaves behind.
//
// The package is pure: it knows nothing of etcd, plugins or HTTP. The rest
// of Lucid stores, validates and executes what is described here.
package instance

import (
	"errors"
	"time"
)

// VMState is the settled condition of an instance, what it is when no
// action is in flight.
type VMState string

// The settled VM states.
const (
	Building VMState = "building"
	Active   VMState = "active"
	Stopped  VMState = "stopped"
	Resized  VMState = "resized"
	Error    VMState = "error"
	Deleted  VMState = "deleted"
)

// PowerState is what the hypervisor last said about the instance's power.
type PowerState string

// The power states, as drivers report them.
const (
	Running  PowerState = "running"
	Shutdown PowerState = "shutdown"
	Crashed  PowerState = "crashed"
	Paused   PowerState = "paused"
	NoState  PowerState = "nostate"
)

// Cause says who made a status change.
type Cause string

// The causes of a status change.
const (
	CauseAPI        Cause = "api"
	CauseDriver     Cause = "driver"
	CauseReconciler Cause = "reconciler"
)

// Fault explains why an instance is in ERROR, or why an action failed and
// the instance went back to where it was.
type Fault struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	During  Action    `json:"during,omitempty"`
}

// Flag is a mismatch between the record and the hypervisor that the
// reconciler noticed and, by policy, did not correct.
type Flag struct {
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

// State is the settled truth about one instance, stored under
// <prefix>/instances/<id>/state.
type State struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	VMState    VMState    `json:"vm_state"`
	PowerState PowerState `json:"power_state"`
	Flavor     string     `json:"flavor"`
	Image      string     `json:"image"`
	Node       string     `json:"node"`
	// Driver names the hypervisor driver on Node that runs the instance.
	Driver    string    `json:"driver"`
	Fault     *Fault    `json:"fault,omitempty"`
	Flags     []Flag    `json:"flags,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// HistorySeq is the sequence number of the last history record written
	// for this instance. It lives in the state so that the next record's
	// number is allocated inside the same guarded transaction.
	HistorySeq int64 `json:"history_seq"`
}

// Transition is an action in flight, stored under
// <prefix>/instances/<id>/transition only while the action runs.
type Transition struct {
	Action    Action `json:"action"`
	RequestID string `json:"request_id"`
	// Steps are the statuses the action shows, in order; Step indexes the
	// current one. No other status may appear while the action runs.
	Steps []Status `json:"steps"`
	Step  int      `json:"step"`
	// Origin is the status the instance had when the action was accepted;
	// Target is the status it ends in on success.
	Origin        Status    `json:"origin"`
	Target        Status    `json:"target"`
	StartedAt     time.Time `json:"started_at"`
	StepStartedAt time.Time `json:"step_started_at"`
	Attempt       int       `json:"attempt"`
	// Node is the node that executes the transition.
	Node string `json:"node"`
	// Args carries the action's parameters (for example a new flavor).
	Args map[string]string `json:"args,omitempty"`
}

// Current is the status the transition shows now.
func (t *Transition) Current() Status {
	if t == nil || len(t.Steps) == 0 {
		return ""
	}
	i := t.Step
	if i < 0 {
		i = 0
	}
	if i >= len(t.Steps) {
		i = len(t.Steps) - 1
	}
	return t.Steps[i]
}

// HistoryRecord is one status change, stored under
// <prefix>/history/<id>/<seq>. History outlives the instance.
type HistoryRecord struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	From      Status    `json:"from"`
	To        Status    `json:"to"`
	Action    Action    `json:"action"`
	Cause     Cause     `json:"cause"`
	RequestID string    `json:"request_id"`
	Message   string    `json:"message,omitempty"`
}

// Sentinel errors of the model. Other layers wrap them; HTTP translates
// them in one place.
var (
	// ErrNotFound: no such instance.
	ErrNotFound = errors.New("instance not found")
	// ErrConflict: another action is in flight, or the action is not
	// allowed from the instance's current status.
	ErrConflict = errors.New("conflicting action")
	// ErrInvalid: the request itself is malformed.
	ErrInvalid = errors.New("invalid request")
	// ErrRefused: the transition policy refused a status change.
	ErrRefused = errors.New("refused by policy")
)
