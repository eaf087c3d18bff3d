// Package instance is Lucid's model of a compute instance: the settled
// state, the in-flight transition, the user-visible status derived from
// both, and the history records every status change leaves behind.
//
// The package is pure: it knows nothing of etcd, plugins or HTTP. The rest
// of Lucid stores, validates and executes what is described here.
package instance

import (
	"encoding/json"
	"errors"
	"fmt"
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
	// CausePolicy marks the ERROR Lucid writes when the validate policy
	// refused (or could not judge) the outcome of a step the driver had
	// already carried out: the transition must end, and the record must
	// say why. That write cannot itself be refused.
	CausePolicy Cause = "policy"
)

// Schema versions of the stored records. A record of an older version is
// migrated when it is decoded, never shown as ERROR; a record of a newer
// version than this Lucid knows is ErrNewerSchema (written by a newer
// Lucid: leave it alone).
const (
	// StateSchema 2: flavor and image are objects (as built). Version 1
	// (no "schema" field) stored their ids as strings.
	StateSchema = 2
	// TransitionSchema 2: typed arguments (flavor, image, name). Version 1
	// had an untyped "args" map, never used by the actions it ran.
	TransitionSchema = 2
	// HistorySchema 1: the first versioned history record.
	HistorySchema = 1
)

// ErrNewerSchema means a record was written by a newer Lucid.
var ErrNewerSchema = errors.New("record has a newer schema than this Lucid knows")

// Flavor is an instance's size as built: copied from the operator's
// catalog when the instance was created or resized, so a later change to
// the catalog never rewrites a record.
type Flavor struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	VCPUs  int    `json:"vcpus"`
	RAMMB  int    `json:"ram_mb"`
	DiskGB int    `json:"disk_gb"`
}

// Image is what an instance was built from, as the catalog said then.
type Image struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Source     string `json:"source,omitempty"`
	DiskFormat string `json:"disk_format,omitempty"`
}

// Schema 1 stored a flavor and an image as their bare ids. DecodeState
// and DecodeTransition read that form when decoding the current one
// fails on it (legacyRef), rather than through an UnmarshalJSON method
// on Flavor and Image: such a method makes encoding/json validate and
// decode each of those objects a second time, on every read of every
// record (about 7% of a listing's CPU).

// legacyRef reports whether err is decoding a bare id (schema 1) into a
// flavor or image field of a record.
func legacyRef(err error) bool {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Value != "string" {
		return false
	}
	switch te.Field {
	case "flavor", "old_flavor", "image":
		return true
	}
	return false
}

// refs are a record's flavor and image fields undecoded, for a record
// with schema 1's bare ids among them. (The decoders below declare them
// beside the embedded record, not by embedding refs: encoding/json
// ignores two fields of one name at the same depth.)
type refs struct {
	Flavor, OldFlavor, Image json.RawMessage
}

// decode fills the flavors and the image from r, each in either form; a
// field that is absent or null is left alone.
func (r refs) decode(flavor, oldFlavor **Flavor, image **Image) error {
	if err := decodeRef(r.Flavor, flavor, func(id string) Flavor { return Flavor{ID: id, Name: id} }); err != nil {
		return fmt.Errorf("flavor: %w", err)
	}
	if err := decodeRef(r.OldFlavor, oldFlavor, func(id string) Flavor { return Flavor{ID: id, Name: id} }); err != nil {
		return fmt.Errorf("old_flavor: %w", err)
	}
	if err := decodeRef(r.Image, image, func(id string) Image { return Image{ID: id, Name: id} }); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// decodeRef decodes raw, an object or a bare id (fromID), into a new T
// at *dst; nil dst ignores the field, and absent or null leaves *dst.
func decodeRef[T any](raw json.RawMessage, dst **T, fromID func(string) T) error {
	if dst == nil || len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var v T
	if raw[0] == '"' {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return err
		}
		v = fromID(id)
	} else if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	*dst = &v
	return nil
}

// Fault explains why an instance is in ERROR, or why an action failed and
// the instance went back to where it was.
type Fault struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	During  Action    `json:"during,omitempty"`
}

// Flag is a mismatch between the record and the hypervisor that the
// reconciler noticed and, by policy, did not correct. It is cleared when
// record and hypervisor agree again, or by an operator.
type Flag struct {
	// Kind is the reconcile case: power_mismatch, vanished, stuck...
	Kind string `json:"kind"`
	// Message is the policy's reason.
	Message string `json:"message"`
	// Since is when the disagreement was first seen.
	Since time.Time `json:"since"`
	// Recorded is the status the record shows; Observed what the
	// hypervisor reports (a power state, or "absent").
	Recorded Status `json:"recorded,omitempty"`
	Observed string `json:"observed,omitempty"`
}

// State is the settled truth about one instance, stored under
// <prefix>/instances/<id>/state.
type State struct {
	// Schema is the record's version (StateSchema when written).
	Schema     int        `json:"schema"`
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	VMState    VMState    `json:"vm_state"`
	PowerState PowerState `json:"power_state"`
	Flavor     Flavor     `json:"flavor"`
	// OldFlavor is kept while the instance waits in VERIFY_RESIZE, to
	// revert to; ResizedFrom is the status it had before the resize, where
	// confirm and revert return it.
	OldFlavor   *Flavor           `json:"old_flavor,omitempty"`
	ResizedFrom Status            `json:"resized_from,omitempty"`
	Image       Image             `json:"image"`
	Project     string            `json:"project,omitempty"`
	User        string            `json:"user,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Node        string            `json:"node"`
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
	// Schema is the record's version (TransitionSchema when written).
	Schema    int    `json:"schema"`
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
	// Node is the node that owns and executes the transition. It is alive
	// while its lease-bound nodes/<node> key exists; a transition whose
	// node is gone is an orphan.
	Node string `json:"node"`
	// The action's arguments, resolved when it was accepted: the flavor a
	// resize goes to, the image and optional new name of a rebuild.
	Flavor *Flavor `json:"flavor,omitempty"`
	Image  *Image  `json:"image,omitempty"`
	Name   string  `json:"name,omitempty"`
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
	// Schema is the record's version (HistorySchema when written).
	Schema    int       `json:"schema"`
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	From      Status    `json:"from"`
	To        Status    `json:"to"`
	Action    Action    `json:"action"`
	Cause     Cause     `json:"cause"`
	RequestID string    `json:"request_id"`
	// User made the change (the API's caller; empty for the driver's and
	// the reconciler's own writes), in Project, the instance's project
	// (so a deleted instance's history still says whose it was).
	User    string `json:"user,omitempty"`
	Project string `json:"project,omitempty"`
	Message string `json:"message,omitempty"`
	// Policy names the policy that refused a change or made a reconciler
	// decision: "name@version sha256:<12 hex>".
	Policy string `json:"policy,omitempty"`
}

// DecodeState reads a stored state, migrating older schemas.
func DecodeState(b []byte) (State, error) {
	var st State
	if err := json.Unmarshal(b, &st); legacyRef(err) {
		if st, err = decodeLegacyState(b); err != nil {
			return State{}, err
		}
	} else if err != nil {
		return State{}, err
	}
	if st.Schema > StateSchema {
		return State{}, fmt.Errorf("%w: state schema %d, this Lucid knows up to %d", ErrNewerSchema, st.Schema, StateSchema)
	}
	st.Schema = StateSchema // schema 1 was migrated by Flavor/Image's decoders
	return st, nil
}

// DecodeTransition reads a stored transition, migrating older schemas.
func DecodeTransition(b []byte) (Transition, error) {
	var t Transition
	if err := json.Unmarshal(b, &t); legacyRef(err) {
		if t, err = decodeLegacyTransition(b); err != nil {
			return Transition{}, err
		}
	} else if err != nil {
		return Transition{}, err
	}
	if t.Schema > TransitionSchema {
		return Transition{}, fmt.Errorf("%w: transition schema %d, this Lucid knows up to %d", ErrNewerSchema, t.Schema, TransitionSchema)
	}
	t.Schema = TransitionSchema // schema 1's args were never used
	return t, nil
}

// decodeLegacyState decodes a state whose flavor, old flavor or image is
// a bare id (schema 1).
func decodeLegacyState(b []byte) (State, error) {
	var v struct {
		State
		Flavor    json.RawMessage `json:"flavor"`
		OldFlavor json.RawMessage `json:"old_flavor"`
		Image     json.RawMessage `json:"image"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return State{}, err
	}
	st := v.State
	flavor, image := &st.Flavor, &st.Image
	if err := (refs{v.Flavor, v.OldFlavor, v.Image}).decode(&flavor, &st.OldFlavor, &image); err != nil {
		return State{}, err
	}
	st.Flavor, st.Image = *flavor, *image
	return st, nil
}

// decodeLegacyTransition decodes a transition whose flavor or image is a
// bare id.
func decodeLegacyTransition(b []byte) (Transition, error) {
	var v struct {
		Transition
		Flavor json.RawMessage `json:"flavor"`
		Image  json.RawMessage `json:"image"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Transition{}, err
	}
	t := v.Transition
	if err := (refs{Flavor: v.Flavor, Image: v.Image}).decode(&t.Flavor, nil, &t.Image); err != nil {
		return Transition{}, err
	}
	return t, nil
}

// DecodeHistory reads a stored history record.
func DecodeHistory(b []byte) (HistoryRecord, error) {
	var h HistoryRecord
	if err := json.Unmarshal(b, &h); err != nil {
		return HistoryRecord{}, err
	}
	if h.Schema > HistorySchema {
		return HistoryRecord{}, fmt.Errorf("%w: history schema %d, this Lucid knows up to %d", ErrNewerSchema, h.Schema, HistorySchema)
	}
	h.Schema = HistorySchema
	return h, nil
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
	// ErrUnsupported: the instance's driver lacks the capability an
	// action needs.
	ErrUnsupported = errors.New("unsupported by the instance's driver")
)
