// Package policy is the guest SDK for Lucid policies: the JSON types of
// ABI v1 and the helpers that turn a few Go functions into a WebAssembly
// module the Lucid host can load.
//
// A policy is a WASI reactor built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o p.wasm ./mypolicy
//
// and its main package only registers handlers:
//
//	package main
//
//	import "github.com/lucid-project/lucid/sdk/policy"
//
//	func init() {
//		policy.SetInfo(policy.Info{Name: "mine", Version: "1.0.0"})
//		policy.HandleValidate(func(req policy.ValidateRequest) policy.Verdict {
//			if req.To == policy.StatusShutoff {
//				return policy.Deny("no SHUTOFF here")
//			}
//			return policy.Allow()
//		})
//	}
//
//	func main() {}
//
// The //go:wasmexport functions of the ABI live in this package behind the
// wasip1 build tag; importing it is enough. On other platforms the package
// compiles (so tools and native tests work) and exports nothing.
//
// The package imports nothing from Lucid's core and no WebAssembly runtime:
// policy authors depend on it alone.
package policy

import (
	"encoding/json"
	"time"
)

// ABIVersion is the version of the host/guest contract this SDK speaks.
const ABIVersion = 1

// Hook names a host call a policy can serve.
type Hook string

// The hooks of ABI v1.
const (
	HookValidate  Hook = "validate"
	HookReconcile Hook = "reconcile"
)

// Status is what a user sees: the current step of an action in flight, or
// the settled status.
type Status string

// Every status Lucid can show.
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

// Cause says who made a status change.
type Cause string

// The causes of a status change.
const (
	CauseAPI        Cause = "api"
	CauseDriver     Cause = "driver"
	CauseReconciler Cause = "reconciler"
	// CausePolicy marks the ERROR the host writes when the validate policy
	// refused the outcome of a step the driver already carried out. The
	// host does not ask the policy about that write.
	CausePolicy Cause = "policy"
)

// Instance is the settled record of an instance as the host stores it.
type Instance struct {
	Schema     int    `json:"schema"`
	ID         string `json:"id"`
	Name       string `json:"name"`
	VMState    string `json:"vm_state"`    // building, active, stopped, resized, error, deleted
	PowerState string `json:"power_state"` // running, shutdown, crashed, paused, nostate
	// Flavor is the size as built; during VERIFY_RESIZE OldFlavor is the
	// one a revert returns to and ResizedFrom the status before the resize.
	Flavor      Flavor            `json:"flavor"`
	OldFlavor   *Flavor           `json:"old_flavor,omitempty"`
	ResizedFrom Status            `json:"resized_from,omitempty"`
	Image       Image             `json:"image"`
	Project     string            `json:"project,omitempty"`
	User        string            `json:"user,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Node        string            `json:"node"`
	Driver      string            `json:"driver"` // the hypervisor driver on Node
	Fault       *Fault            `json:"fault,omitempty"`
	Flags       []Flag            `json:"flags,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	HistorySeq  int64             `json:"history_seq"`
}

// Flavor is an instance's size.
type Flavor struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	VCPUs  int    `json:"vcpus"`
	RAMMB  int    `json:"ram_mb"`
	DiskGB int    `json:"disk_gb"`
}

// Image is what an instance was built from.
type Image struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Source     string `json:"source,omitempty"`
	DiskFormat string `json:"disk_format,omitempty"`
}

// Fault explains why an instance is in ERROR or why an action failed.
type Fault struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	During  Action    `json:"during,omitempty"`
}

// Flag is a mismatch the reconciler noticed and did not correct.
type Flag struct {
	Kind     string    `json:"kind"`
	Message  string    `json:"message"`
	Since    time.Time `json:"since"`
	Recorded Status    `json:"recorded,omitempty"`
	Observed string    `json:"observed,omitempty"`
}

// Transition is an action in flight: its declared steps, the current one,
// where it started and where it ends on success.
type Transition struct {
	Schema        int       `json:"schema"`
	Action        Action    `json:"action"`
	RequestID     string    `json:"request_id"`
	Steps         []Status  `json:"steps"`
	Step          int       `json:"step"`
	Origin        Status    `json:"origin"`
	Target        Status    `json:"target"`
	StartedAt     time.Time `json:"started_at"`
	StepStartedAt time.Time `json:"step_started_at"`
	Attempt       int       `json:"attempt"`
	Node          string    `json:"node"`
	// The action's arguments: the flavor a resize goes to, the image and
	// optional new name of a rebuild.
	Flavor *Flavor `json:"flavor,omitempty"`
	Image  *Image  `json:"image,omitempty"`
	Name   string  `json:"name,omitempty"`
}

// ValidateRequest asks whether one status change may be written.
//
// From is "" only for the first record of a create. Transition is the
// transition the change belongs to (the one being started, advanced or
// ended); it is nil for changes that belong to no action, such as a
// reconciler correcting a settled status. Now is the host's clock: the
// guest clock is fake.
type ValidateRequest struct {
	ABI        int         `json:"abi"`
	Now        time.Time   `json:"now"`
	Action     Action      `json:"action"`
	Cause      Cause       `json:"cause"`
	From       Status      `json:"from"`
	To         Status      `json:"to"`
	Instance   Instance    `json:"instance"`
	Transition *Transition `json:"transition"`
}

// Verdict answers a ValidateRequest. Reason is shown to the user and kept
// in the log when the change is refused.
type Verdict struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"`
}

// Allow returns a verdict that lets the change through.
func Allow() Verdict { return Verdict{Allow: true} }

// Deny returns a verdict that refuses the change for reason.
func Deny(reason string) Verdict { return Verdict{Allow: false, Reason: reason} }

// Case says why the reconciler asks: what kind of disagreement between the
// record and the hypervisor it found.
type Case string

// The reconcile cases.
const (
	// CasePowerMismatch: record and VM power disagree (the record says
	// ACTIVE and the VM is shut down, crashed or paused, or the record
	// says SHUTOFF and the VM runs).
	CasePowerMismatch Case = "power_mismatch"
	// CaseError: the record is ERROR and the hypervisor has the VM.
	CaseError Case = "error"
	// CaseVanished: the record exists, the driver does not know the VM.
	CaseVanished Case = "vanished"
	// CaseUnmanaged: the driver has a VM no record names. Instance is nil
	// and Status is "".
	CaseUnmanaged Case = "unmanaged"
	// CaseStuck: Transition's current step outlived its step timeout.
	CaseStuck Case = "stuck"
	// CaseOrphan: Transition's owner node (LostNode) lost its lease.
	CaseOrphan Case = "orphan"
)

// Observation is what the hypervisor says about a VM.
type Observation struct {
	// Present is false when the driver does not know the VM.
	Present    bool   `json:"present"`
	PowerState string `json:"power_state,omitempty"` // running, shutdown, crashed, paused, nostate
	// ID is the driver's identifier of the VM.
	ID string `json:"id,omitempty"`
}

// ReconcileRequest asks what to do about one disagreement between the
// record and the hypervisor, of the kind Case names. The fault of an
// instance in ERROR is in Instance.Fault.
type ReconcileRequest struct {
	ABI  int       `json:"abi"`
	Now  time.Time `json:"now"`
	Case Case      `json:"case"`
	// Node is the node asking.
	Node string `json:"node"`
	// Instance is the record; nil for CaseUnmanaged.
	Instance *Instance `json:"instance"`
	// Transition is the stuck or orphaned transition; nil for the other
	// cases.
	Transition *Transition `json:"transition"`
	// Status is the record's derived status; "" for CaseUnmanaged.
	Status   Status      `json:"status"`
	Observed Observation `json:"observed"`
	// DisagreeingMS is how long, in milliseconds, this disagreement has
	// been seen; for CaseStuck, how long the step is past its deadline.
	DisagreeingMS int64 `json:"disagreeing_ms"`
	// LostNode is, for CaseOrphan, the node whose lease expired.
	LostNode string `json:"lost_node"`
	// CanAdopt is, for CaseOrphan, whether the asking node can resume the
	// transition (it has the same driver).
	CanAdopt bool `json:"can_adopt"`
}

// DecisionKind is what the reconciler should do.
type DecisionKind string

// The reconcile decisions. The host refuses any other value, and a
// decision the request's case does not allow: flag and leave fit every
// case; correct every case but unmanaged; enforce only a power mismatch;
// rollback and adopt only an orphan.
const (
	// Correct rewrites the record to Status. Without a Status the host
	// picks the one the case implies: ACTIVE or SHUTOFF after the VM's
	// power (power_mismatch, error), ERROR (vanished, stuck, orphan).
	DecisionCorrect DecisionKind = "correct"
	// Flag records the mismatch on the instance and changes nothing else.
	DecisionFlag DecisionKind = "flag"
	// Leave does nothing.
	DecisionLeave DecisionKind = "leave"
	// Enforce drives the VM back to what the record says.
	DecisionEnforce DecisionKind = "enforce"
	// Rollback ends an orphaned transition at its origin status (the
	// validate policy decides whether the action allows that at its step).
	DecisionRollback DecisionKind = "rollback"
	// Adopt makes the asking node resume an orphaned transition; only
	// when the request says CanAdopt.
	DecisionAdopt DecisionKind = "adopt"
)

// Decision answers a ReconcileRequest. Status is only for Correct (where
// it is optional) and Rollback (where it must be the origin, if given).
// Reason is kept in the instance's history: say what was seen and which
// setting decided.
type Decision struct {
	Decision DecisionKind `json:"decision"`
	Status   Status       `json:"status,omitempty"`
	Reason   string       `json:"reason,omitempty"`
}

// Info describes a policy to the host: shown by the CLI, and checked at
// load time (the host refuses a module that does not declare the hook it
// is configured for). Hooks is filled in from the registered handlers.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Hooks   []Hook `json:"hooks"`
	// SettingsSchema is a JSON Schema of the settings object the policy
	// accepts; documentation for operators, not enforced by the host.
	SettingsSchema json.RawMessage `json:"settings_schema,omitempty"`
	// Reads lists the validate request fields the verdict depends on, and
	// Deterministic promises that, for given settings, the same values of
	// those fields always get the same verdict. The host then keeps
	// verdicts and asks again only for values it has not seen: a policy
	// call saved on most status changes. The fields the host knows:
	// action, cause, from, to, transition.action, transition.steps,
	// transition.step, transition.origin, transition.target (a transition
	// field also keys on whether there is a transition). A policy that
	// reads anything else (instance fields, now) must not declare itself
	// deterministic over this list.
	Reads         []string `json:"reads,omitempty"`
	Deterministic bool     `json:"deterministic,omitempty"`
}
