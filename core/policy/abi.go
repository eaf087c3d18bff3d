package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
	// Reads and Deterministic: the validate request fields the verdict
	// depends on, and the promise that equal values get equal verdicts
	// (see verdicts.go).
	Reads         []string `json:"reads,omitempty"`
	Deterministic bool     `json:"deterministic,omitempty"`
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

// ReconcileCase says why the reconciler asks: what kind of disagreement
// between the record and the hypervisor it found.
type ReconcileCase string

// The reconcile cases.
const (
	// CasePowerMismatch: record and VM power disagree (the record says
	// ACTIVE and the VM is shut down, crashed or paused, or the record
	// says SHUTOFF and the VM runs).
	CasePowerMismatch ReconcileCase = "power_mismatch"
	// CaseError: the record is ERROR and the hypervisor has the VM.
	CaseError ReconcileCase = "error"
	// CaseVanished: the record exists, the driver does not know the VM.
	CaseVanished ReconcileCase = "vanished"
	// CaseUnmanaged: the driver has a VM that no record names.
	CaseUnmanaged ReconcileCase = "unmanaged"
	// CaseStuck: a transition's step outlived its step timeout.
	CaseStuck ReconcileCase = "stuck"
	// CaseOrphan: a transition whose owner node's lease expired.
	CaseOrphan ReconcileCase = "orphan"
)

// caseDecisions is, for each case, the decisions a policy may answer, and
// how a correction without a status is completed. Flag and leave are valid
// everywhere (they are also the fallbacks); enforce only where "drive the
// VM back to the record" has a meaning; rollback and adopt only for an
// orphaned transition.
var caseDecisions = map[ReconcileCase]struct {
	kinds []DecisionKind
	// correct derives the status of a correction that named none; nil
	// when correct is not allowed.
	correct func(ReconcileRequest) instance.Status
}{
	CasePowerMismatch: {[]DecisionKind{DecisionCorrect, DecisionFlag, DecisionLeave, DecisionEnforce}, followVM},
	CaseError:         {[]DecisionKind{DecisionCorrect, DecisionFlag, DecisionLeave}, followVM},
	CaseVanished:      {[]DecisionKind{DecisionCorrect, DecisionFlag, DecisionLeave}, toError},
	CaseUnmanaged:     {[]DecisionKind{DecisionFlag, DecisionLeave}, nil},
	CaseStuck:         {[]DecisionKind{DecisionCorrect, DecisionFlag, DecisionLeave}, toError},
	CaseOrphan:        {[]DecisionKind{DecisionCorrect, DecisionFlag, DecisionLeave, DecisionRollback, DecisionAdopt}, toError},
}

// followVM corrects the record to what the VM does: ACTIVE if it runs,
// SHUTOFF otherwise.
func followVM(r ReconcileRequest) instance.Status {
	if r.Observed.PowerState == instance.Running {
		return instance.StatusActive
	}
	return instance.StatusShutoff
}

func toError(ReconcileRequest) instance.Status { return instance.StatusError }

// Observation is what the hypervisor reports about a VM.
type Observation struct {
	// Present is false when the driver does not know the VM.
	Present    bool                `json:"present"`
	PowerState instance.PowerState `json:"power_state,omitempty"`
	// ID is the driver's identifier of the VM (for an unmanaged VM, the
	// only name it has).
	ID string `json:"id,omitempty"`
}

// ReconcileRequest asks what to do about one disagreement the reconciler
// found. Reconcile refuses (ErrRequest) a request whose fields do not fit
// its Case: Instance and Status are set except for CaseUnmanaged,
// Transition is set exactly for CaseStuck and CaseOrphan, LostNode is set
// for CaseOrphan.
type ReconcileRequest struct {
	Now  time.Time // zero means the host's current time
	Case ReconcileCase
	// Node is the node asking.
	Node string
	// Instance is the record; nil for CaseUnmanaged.
	Instance *instance.State
	// Transition is the stuck or orphaned transition; nil otherwise.
	Transition *instance.Transition
	// Status is the record's derived status; "" for CaseUnmanaged.
	Status   instance.Status
	Observed Observation
	// Disagreeing is how long this disagreement has been seen; for
	// CaseStuck, how long the step is past its deadline.
	Disagreeing time.Duration
	// LostNode is, for CaseOrphan, the node whose lease expired.
	LostNode string
	// CanAdopt is, for CaseOrphan, whether the asking node can resume the
	// transition (it has the same driver).
	CanAdopt bool
}

// check reports a request that does not fit its case.
func (r ReconcileRequest) check() error {
	if _, ok := caseDecisions[r.Case]; !ok {
		return fmt.Errorf("%w: unknown reconcile case %q", ErrRequest, r.Case)
	}
	switch {
	case r.Case == CaseUnmanaged && r.Instance != nil:
		return fmt.Errorf("%w: case %s with an instance record", ErrRequest, r.Case)
	case r.Case != CaseUnmanaged && r.Instance == nil:
		return fmt.Errorf("%w: case %s without an instance record", ErrRequest, r.Case)
	case r.Case != CaseUnmanaged && r.Status == "":
		return fmt.Errorf("%w: case %s without the record's status", ErrRequest, r.Case)
	case (r.Case == CaseStuck || r.Case == CaseOrphan) && r.Transition == nil:
		return fmt.Errorf("%w: case %s without a transition", ErrRequest, r.Case)
	case r.Case != CaseStuck && r.Case != CaseOrphan && r.Transition != nil:
		return fmt.Errorf("%w: case %s with a transition (only stuck and orphan have one)", ErrRequest, r.Case)
	case r.Case == CaseOrphan && r.LostNode == "":
		return fmt.Errorf("%w: case %s without the lost node", ErrRequest, r.Case)
	}
	return nil
}

// DecisionKind is what the reconciler should do.
type DecisionKind string

// The reconcile decisions; a module answering anything else, or a decision
// its case does not allow, is in error (see Module.Reconcile).
const (
	DecisionCorrect  DecisionKind = "correct"  // rewrite the record to Decision.Status
	DecisionFlag     DecisionKind = "flag"     // record the mismatch, change nothing
	DecisionLeave    DecisionKind = "leave"    // do nothing
	DecisionEnforce  DecisionKind = "enforce"  // drive the VM back to the record
	DecisionRollback DecisionKind = "rollback" // orphan: end the transition at its origin
	DecisionAdopt    DecisionKind = "adopt"    // orphan: the asking node resumes it
)

// Decision is the answer to a ReconcileRequest. Status is set for
// DecisionCorrect (the policy's, or derived from the case when the policy
// named none) and DecisionRollback (the transition's origin), and empty
// otherwise.
type Decision struct {
	Kind   DecisionKind
	Status instance.Status
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
		Case          ReconcileCase        `json:"case"`
		Node          string               `json:"node"`
		Instance      *instance.State      `json:"instance"`
		Transition    *instance.Transition `json:"transition"`
		Status        instance.Status      `json:"status"`
		Observed      Observation          `json:"observed"`
		DisagreeingMS int64                `json:"disagreeing_ms"`
		LostNode      string               `json:"lost_node"`
		CanAdopt      bool                 `json:"can_adopt"`
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
	return reconcileWire{ABI: ABIVersion, Now: now.UTC(), Case: r.Case, Node: r.Node, Instance: r.Instance,
		Transition: r.Transition, Status: r.Status, Observed: r.Observed,
		DisagreeingMS: r.Disagreeing.Milliseconds(), LostNode: r.LostNode, CanAdopt: r.CanAdopt}
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

// parseDecision decodes a reconcile response to req. An unknown decision,
// one req's case does not allow, or a status where none fits is malformed.
// A correction without a status gets the one its case implies; a rollback
// gets the transition's origin.
func parseDecision(b []byte, req ReconcileRequest) (Decision, error) {
	var w decisionWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if w.Error != "" {
		return Decision{}, fmt.Errorf("%w: %s", ErrGuest, w.Error)
	}
	d := Decision{Kind: w.Decision, Status: w.Status, Reason: w.Reason}
	cd := caseDecisions[req.Case]
	switch {
	case !slices.Contains([]DecisionKind{DecisionCorrect, DecisionFlag, DecisionLeave, DecisionEnforce, DecisionRollback, DecisionAdopt}, d.Kind):
		return Decision{}, fmt.Errorf("%w: unknown decision %q", ErrBadResponse, d.Kind)
	case !slices.Contains(cd.kinds, d.Kind):
		return Decision{}, fmt.Errorf("%w: decision %q is not allowed for case %s (only %s)", ErrBadResponse, d.Kind, req.Case, kinds(cd.kinds))
	}
	switch d.Kind {
	case DecisionCorrect:
		if d.Status == "" {
			d.Status = cd.correct(req)
		}
		if _, err := instance.SettledState(d.Status); err != nil {
			return Decision{}, fmt.Errorf("%w: cannot correct to %q: not a settled status", ErrBadResponse, d.Status)
		}
	case DecisionRollback:
		origin := req.Transition.Origin
		if origin == "" {
			return Decision{}, fmt.Errorf("%w: decision rollback, but the %s transition has no origin to go back to", ErrBadResponse, req.Transition.Action)
		}
		if d.Status != "" && d.Status != origin {
			return Decision{}, fmt.Errorf("%w: decision rollback to %s, but the transition's origin is %s", ErrBadResponse, d.Status, origin)
		}
		d.Status = origin
	case DecisionAdopt:
		if !req.CanAdopt {
			return Decision{}, fmt.Errorf("%w: decision adopt, but node %q cannot adopt this transition", ErrBadResponse, req.Node)
		}
		fallthrough
	default:
		if d.Status != "" {
			return Decision{}, fmt.Errorf("%w: decision %q takes no status, got %q", ErrBadResponse, d.Kind, d.Status)
		}
	}
	return d, nil
}

func kinds(ks []DecisionKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
