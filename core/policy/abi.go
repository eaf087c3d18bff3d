package policy

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/lucid-project/lucid/core/instance"
)

// ABIVersion is the host/guest contract this package speaks; a module whose
// lucid_abi_version returns anything else is refused at load time.
const ABIVersion = 1

// Hook names the host call a module is loaded for.
type Hook string

// The hooks of ABI v1.
const (
	HookValidate  Hook = "validate"
	HookReconcile Hook = "reconcile"
)

// The ABI exports and their signatures (params -> results, i32 "i", i64 "I").
const (
	exportABIVersion = "lucid_abi_version"
	exportAlloc      = "lucid_alloc"
	exportInfo       = "lucid_policy_info"
	exportInit       = "lucid_init"
)

// hookExport is the export that serves a hook.
func (h Hook) export() string { return "lucid_" + string(h) }

// Info is what a module says about itself through lucid_policy_info.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Hooks   []Hook `json:"hooks"`
	// SettingsSchema is the JSON Schema of the settings the policy accepts,
	// verbatim; nil if the module gave none.
	SettingsSchema json.RawMessage `json:"settings_schema,omitempty"`
}

// ValidateRequest asks whether one status change may be written.
//
// From is "" only for the first record of a create. Transition is the
// transition the change belongs to (started, advanced or ended by it), nil
// for changes outside any action. Now is passed because the guest clock is
// fake; a zero Now is replaced by the host's current time.
type ValidateRequest struct {
	Now        time.Time
	Action     instance.Action
	Cause      instance.Cause
	From, To   instance.Status
	Instance   instance.State
	Transition *instance.Transition
}

// Verdict is the answer to a ValidateRequest. Reason is for the user.
type Verdict struct {
	Allow  bool
	Reason string
}

// Observation is what the hypervisor reports about an instance.
type Observation struct {
	Present    bool                `json:"present"`
	PowerState instance.PowerState `json:"power_state,omitempty"`
}

// ReconcileRequest asks what to do when the record and the hypervisor
// disagree, or when a transition lost its node (Orphan).
type ReconcileRequest struct {
	Now         time.Time
	Instance    instance.State
	Transition  *instance.Transition
	Observed    Observation
	Disagreeing time.Duration // how long record and hypervisor have disagreed
	Orphan      bool
}

// DecisionKind is what the reconciler should do.
type DecisionKind string

// The reconcile decisions; a module answering anything else is in error.
const (
	DecisionCorrect DecisionKind = "correct" // rewrite the record to Decision.Status
	DecisionFlag    DecisionKind = "flag"    // record the mismatch, change nothing
	DecisionLeave   DecisionKind = "leave"   // do nothing
	DecisionEnforce DecisionKind = "enforce" // drive the hypervisor to the record
)

// Decision is the answer to a ReconcileRequest.
type Decision struct {
	Kind   DecisionKind
	Status instance.Status // required for DecisionCorrect
	Reason string
}

// The wire forms. Field names are the ABI; see DESIGN.md section 6.
type (
	validateWire struct {
		ABI        int                  `json:"abi"`
		Now        time.Time            `json:"now"`
		Action     instance.Action      `json:"action"`
		Cause      instance.Cause       `json:"cause"`
		From       instance.Status      `json:"from"`
		To         instance.Status      `json:"to"`
		Instance   instance.State       `json:"instance"`
		Transition *instance.Transition `json:"transition"`
	}
	reconcileWire struct {
		ABI           int                  `json:"abi"`
		Now           time.Time            `json:"now"`
		Instance      instance.State       `json:"instance"`
		Transition    *instance.Transition `json:"transition"`
		Observed      Observation          `json:"observed"`
		DisagreeingMS int64                `json:"disagreeing_ms"`
		Orphan        bool                 `json:"orphan,omitempty"`
	}
	verdictWire struct {
		Allow  *bool  `json:"allow"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	}
	decisionWire struct {
		Decision DecisionKind    `json:"decision"`
		Status   instance.Status `json:"status"`
		Reason   string          `json:"reason"`
		Error    string          `json:"error"`
	}
	initWire struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
)

func (r ValidateRequest) wire() validateWire {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	return validateWire{ABI: ABIVersion, Now: now.UTC(), Action: r.Action, Cause: r.Cause,
		From: r.From, To: r.To, Instance: r.Instance, Transition: r.Transition}
}

func (r ReconcileRequest) wire() reconcileWire {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	return reconcileWire{ABI: ABIVersion, Now: now.UTC(), Instance: r.Instance, Transition: r.Transition,
		Observed: r.Observed, DisagreeingMS: r.Disagreeing.Milliseconds(), Orphan: r.Orphan}
}

// parseVerdict decodes a validate response. A response without "allow" is
// malformed: silence must not read as "deny" or "allow" by accident.
func parseVerdict(b []byte) (Verdict, error) {
	var w verdictWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Verdict{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if w.Error != "" {
		return Verdict{}, fmt.Errorf("%w: %s", ErrGuest, w.Error)
	}
	if w.Allow == nil {
		return Verdict{}, fmt.Errorf("%w: no \"allow\" field", ErrBadResponse)
	}
	return Verdict{Allow: *w.Allow, Reason: w.Reason}, nil
}

// parseDecision decodes a reconcile response; an unknown decision, or a
// correction without a status, is malformed.
func parseDecision(b []byte) (Decision, error) {
	var w decisionWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if w.Error != "" {
		return Decision{}, fmt.Errorf("%w: %s", ErrGuest, w.Error)
	}
	switch w.Decision {
	case DecisionCorrect:
		if w.Status == "" {
			return Decision{}, fmt.Errorf("%w: decision %q without a status", ErrBadResponse, w.Decision)
		}
	case DecisionFlag, DecisionLeave, DecisionEnforce:
	default:
		return Decision{}, fmt.Errorf("%w: unknown decision %q", ErrBadResponse, w.Decision)
	}
	return Decision{Kind: w.Decision, Status: w.Status, Reason: w.Reason}, nil
}
