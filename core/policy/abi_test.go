package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	sdk "github.com/lucid-project/lucid/sdk/policy"
)

// roundTrip encodes v as the host does, decodes it strictly into the SDK's
// type, encodes that, and checks nothing was lost or unknown.
func roundTrip(t *testing.T, v any, into any) {
	t.Helper()
	host, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(host))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("the SDK cannot decode what the host sends: %v\n%s", err, host)
	}
	guest, err := json.Marshal(into)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal(host, &a)
	_ = json.Unmarshal(guest, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("host and SDK disagree:\nhost:  %s\nguest: %s", host, guest)
	}
}

// TestWireMatchesSDK keeps the host's requests and the guest SDK's types in
// step: every field the host sends is one the SDK knows, with its value.
func TestWireMatchesSDK(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	req := benchRequest()
	req.Instance.Fault = &instance.Fault{Code: 500, Message: "disk gone", At: now, During: instance.ActionResize}
	req.Instance.Flags = []instance.Flag{{Kind: "power", Message: "off on the hypervisor", Since: now}}
	roundTrip(t, req.wire(), &sdk.ValidateRequest{})

	for _, rr := range []ReconcileRequest{
		{Now: now, Case: CaseOrphan, Node: "node-2", Instance: &req.Instance, Transition: req.Transition, Status: instance.StatusPrepResize,
			Observed: Observation{Present: true, PowerState: instance.Shutdown, ID: "vm-7"}, Disagreeing: 90 * time.Second,
			LostNode: "node-1", CanAdopt: true},
		{Now: now, Case: CaseUnmanaged, Node: "node-2", Observed: Observation{Present: true, PowerState: instance.Running, ID: "vm-9"}},
	} {
		roundTrip(t, rr.wire(), &sdk.ReconcileRequest{})
	}
}

// TestStatusesMatchSDK checks that the SDK names the same statuses.
func TestStatusesMatchSDK(t *testing.T) {
	pairs := map[instance.Status]sdk.Status{
		instance.StatusBuild: sdk.StatusBuild, instance.StatusActive: sdk.StatusActive, instance.StatusShutoff: sdk.StatusShutoff,
		instance.StatusError: sdk.StatusError, instance.StatusRebuild: sdk.StatusRebuild, instance.StatusQueueResize: sdk.StatusQueueResize,
		instance.StatusPrepResize: sdk.StatusPrepResize, instance.StatusResize: sdk.StatusResize, instance.StatusVerifyResize: sdk.StatusVerifyResize,
		instance.StatusRevertResize: sdk.StatusRevertResize, instance.StatusStopping: sdk.StatusStopping, instance.StatusStarting: sdk.StatusStarting,
		instance.StatusReboot: sdk.StatusReboot, instance.StatusHardReboot: sdk.StatusHardReboot, instance.StatusDeleting: sdk.StatusDeleting,
		instance.StatusDeleted: sdk.StatusDeleted,
	}
	for h, g := range pairs {
		if string(h) != string(g) {
			t.Errorf("host %q, SDK %q", h, g)
		}
	}
	for _, a := range []instance.Action{instance.ActionCreate, instance.ActionDelete, instance.ActionRebuild, instance.ActionResize,
		instance.ActionConfirmResize, instance.ActionRevertResize, instance.ActionStop, instance.ActionStart, instance.ActionReboot, instance.ActionHardReboot} {
		if _, err := instance.Lookup(a); err != nil {
			t.Error(err)
		}
	}
}

// TestParseDecision runs every decision kind against every case: which are
// allowed, what a correction without a status becomes, and the checks on
// rollback, adopt and stray statuses.
func TestParseDecision(t *testing.T) {
	stop := &instance.Transition{Action: instance.ActionStop, Steps: []instance.Status{instance.StatusStopping}, Origin: instance.StatusActive, Target: instance.StatusShutoff}
	create := &instance.Transition{Action: instance.ActionCreate, Steps: []instance.Status{instance.StatusBuild}, Target: instance.StatusActive}
	rec := &instance.State{ID: "i-1"}
	off := Observation{Present: true, PowerState: instance.Shutdown}
	on := Observation{Present: true, PowerState: instance.Running}
	reqs := map[ReconcileCase]ReconcileRequest{
		CasePowerMismatch: {Case: CasePowerMismatch, Instance: rec, Status: instance.StatusActive, Observed: off},
		CaseError:         {Case: CaseError, Instance: rec, Status: instance.StatusError, Observed: on},
		CaseVanished:      {Case: CaseVanished, Instance: rec, Status: instance.StatusActive},
		CaseUnmanaged:     {Case: CaseUnmanaged, Observed: on},
		CaseStuck:         {Case: CaseStuck, Instance: rec, Transition: stop, Status: instance.StatusStopping, Observed: on},
		CaseOrphan:        {Case: CaseOrphan, Node: "n2", Instance: rec, Transition: stop, Status: instance.StatusStopping, LostNode: "n1", CanAdopt: true},
	}
	tests := []struct {
		c       ReconcileCase
		resp    string
		want    Decision
		wantErr string // "" for success
	}{
		{CasePowerMismatch, `{"decision":"correct","reason":"r"}`, Decision{DecisionCorrect, instance.StatusShutoff, "r"}, ""},
		{CasePowerMismatch, `{"decision":"correct","status":"ACTIVE"}`, Decision{DecisionCorrect, instance.StatusActive, ""}, ""},
		{CasePowerMismatch, `{"decision":"correct","status":"REBOOT"}`, Decision{}, `cannot correct to "REBOOT": not a settled status`},
		{CasePowerMismatch, `{"decision":"flag"}`, Decision{Kind: DecisionFlag}, ""},
		{CasePowerMismatch, `{"decision":"leave"}`, Decision{Kind: DecisionLeave}, ""},
		{CasePowerMismatch, `{"decision":"enforce"}`, Decision{Kind: DecisionEnforce}, ""},
		{CasePowerMismatch, `{"decision":"enforce","status":"ACTIVE"}`, Decision{}, `decision "enforce" takes no status, got "ACTIVE"`},
		{CasePowerMismatch, `{"decision":"rollback"}`, Decision{}, `decision "rollback" is not allowed for case power_mismatch (only correct, flag, leave, enforce)`},
		{CasePowerMismatch, `{"decision":"adopt"}`, Decision{}, `decision "adopt" is not allowed for case power_mismatch`},
		{CaseError, `{"decision":"correct"}`, Decision{DecisionCorrect, instance.StatusActive, ""}, ""},
		{CaseError, `{"decision":"enforce"}`, Decision{}, `decision "enforce" is not allowed for case error (only correct, flag, leave)`},
		{CaseVanished, `{"decision":"correct"}`, Decision{DecisionCorrect, instance.StatusError, ""}, ""},
		{CaseVanished, `{"decision":"flag"}`, Decision{Kind: DecisionFlag}, ""},
		{CaseUnmanaged, `{"decision":"flag","reason":"stray VM"}`, Decision{DecisionFlag, "", "stray VM"}, ""},
		{CaseUnmanaged, `{"decision":"leave"}`, Decision{Kind: DecisionLeave}, ""},
		{CaseUnmanaged, `{"decision":"correct","status":"ACTIVE"}`, Decision{}, `decision "correct" is not allowed for case unmanaged (only flag, leave)`},
		{CaseStuck, `{"decision":"correct"}`, Decision{DecisionCorrect, instance.StatusError, ""}, ""},
		{CaseStuck, `{"decision":"rollback"}`, Decision{}, `decision "rollback" is not allowed for case stuck`},
		{CaseOrphan, `{"decision":"correct"}`, Decision{DecisionCorrect, instance.StatusError, ""}, ""},
		{CaseOrphan, `{"decision":"rollback"}`, Decision{DecisionRollback, instance.StatusActive, ""}, ""},
		{CaseOrphan, `{"decision":"rollback","status":"ACTIVE"}`, Decision{DecisionRollback, instance.StatusActive, ""}, ""},
		{CaseOrphan, `{"decision":"rollback","status":"SHUTOFF"}`, Decision{}, "decision rollback to SHUTOFF, but the transition's origin is ACTIVE"},
		{CaseOrphan, `{"decision":"adopt"}`, Decision{Kind: DecisionAdopt}, ""},
		{CaseOrphan, `{"decision":"flag"}`, Decision{Kind: DecisionFlag}, ""},
		{CaseOrphan, `{"decision":"enforce"}`, Decision{}, `decision "enforce" is not allowed for case orphan`},
		{CaseOrphan, `{"decision":"shrug"}`, Decision{}, `unknown decision "shrug"`},
		{CaseOrphan, `{"decision":"flag","error":"panic: x"}`, Decision{}, "policy reported failure: panic: x"},
		{CaseOrphan, `{}`, Decision{}, `unknown decision ""`},
	}
	for _, tt := range tests {
		got, err := parseDecision([]byte(tt.resp), reqs[tt.c])
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("%s %s: %+v, %v; want %+v", tt.c, tt.resp, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s %s: %+v, %v; want an error saying %q", tt.c, tt.resp, got, err, tt.wantErr)
		}
	}

	// Rollback needs an origin; adopt needs a node that can.
	orphan := reqs[CaseOrphan]
	orphan.Transition = create
	if _, err := parseDecision([]byte(`{"decision":"rollback"}`), orphan); err == nil || !strings.Contains(err.Error(), "the create transition has no origin") {
		t.Errorf("rollback of a create: err = %v", err)
	}
	orphan = reqs[CaseOrphan]
	orphan.CanAdopt = false
	if _, err := parseDecision([]byte(`{"decision":"adopt"}`), orphan); !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), `node "n2" cannot adopt`) {
		t.Errorf("adopt without CanAdopt: err = %v", err)
	}
}

// TestReconcileRequestCheck lists the requests the host refuses to send.
func TestReconcileRequestCheck(t *testing.T) {
	rec := &instance.State{ID: "i-1"}
	tr := &instance.Transition{Action: instance.ActionStop}
	tests := []struct {
		r    ReconcileRequest
		want string // "" for valid
	}{
		{ReconcileRequest{Case: CasePowerMismatch, Instance: rec, Status: instance.StatusActive}, ""},
		{ReconcileRequest{Case: CaseUnmanaged}, ""},
		{ReconcileRequest{Case: CaseStuck, Instance: rec, Transition: tr, Status: instance.StatusStopping}, ""},
		{ReconcileRequest{Case: CaseOrphan, Instance: rec, Transition: tr, Status: instance.StatusStopping, LostNode: "n1"}, ""},
		{ReconcileRequest{Case: "drift", Instance: rec, Status: instance.StatusActive}, `unknown reconcile case "drift"`},
		{ReconcileRequest{Case: CaseUnmanaged, Instance: rec}, "case unmanaged with an instance record"},
		{ReconcileRequest{Case: CaseError, Status: instance.StatusError}, "case error without an instance record"},
		{ReconcileRequest{Case: CaseVanished, Instance: rec}, "case vanished without the record's status"},
		{ReconcileRequest{Case: CaseStuck, Instance: rec, Status: instance.StatusStopping}, "case stuck without a transition"},
		{ReconcileRequest{Case: CasePowerMismatch, Instance: rec, Transition: tr, Status: instance.StatusActive}, "case power_mismatch with a transition"},
		{ReconcileRequest{Case: CaseOrphan, Instance: rec, Transition: tr, Status: instance.StatusStopping}, "case orphan without the lost node"},
	}
	for _, tt := range tests {
		err := tt.r.check()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.r, err)
		case tt.want != "" && (!errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: err = %v, want ErrRequest saying %q", tt.r, err, tt.want)
		}
	}
}
