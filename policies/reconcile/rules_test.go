package main

import (
	"testing"

	"github.com/lucid-project/lucid/sdk/policy"
)

// decision is one rule case: settings (JSON), a request, and the exact
// decision.
type decision struct {
	name     string
	settings string
	req      policy.ReconcileRequest
	want     policy.Decision
}

var (
	record = &policy.Instance{ID: "i-1", Name: "web-1", VMState: "active", PowerState: "running", Node: "node-1", Driver: "fake"}
	broken = &policy.Instance{ID: "i-1", Name: "web-1", VMState: "error", Node: "node-1", Driver: "fake",
		Fault: &policy.Fault{Code: 500, Message: "spawn failed", During: "create"}}
	stopT   = &policy.Transition{Action: "stop", Steps: []policy.Status{"STOPPING"}, Origin: "ACTIVE", Target: "SHUTOFF", Attempt: 1, Node: "node-1"}
	createT = &policy.Transition{Action: "create", Steps: []policy.Status{"BUILD"}, Target: "ACTIVE", Attempt: 1, Node: "node-1"}
)

func seen(power string) policy.Observation {
	return policy.Observation{Present: true, PowerState: power, ID: "vm-1"}
}

func mismatch(status policy.Status, power string, ms int64) policy.ReconcileRequest {
	return policy.ReconcileRequest{ABI: 1, Case: policy.CasePowerMismatch, Node: "node-1", Instance: record, Status: status, Observed: seen(power), DisagreeingMS: ms}
}

func inError(power string, ms int64) policy.ReconcileRequest {
	return policy.ReconcileRequest{ABI: 1, Case: policy.CaseError, Node: "node-1", Instance: broken, Status: "ERROR", Observed: seen(power), DisagreeingMS: ms}
}

func vanished(ms int64) policy.ReconcileRequest {
	return policy.ReconcileRequest{ABI: 1, Case: policy.CaseVanished, Node: "node-1", Instance: record, Status: "ACTIVE", DisagreeingMS: ms}
}

func unmanaged(ms int64) policy.ReconcileRequest {
	return policy.ReconcileRequest{ABI: 1, Case: policy.CaseUnmanaged, Node: "node-2", Observed: policy.Observation{Present: true, PowerState: "running", ID: "vm-9"}, DisagreeingMS: ms}
}

func stuck(ms int64) policy.ReconcileRequest {
	return policy.ReconcileRequest{ABI: 1, Case: policy.CaseStuck, Node: "node-1", Instance: record, Transition: stopT, Status: "STOPPING", Observed: seen("running"), DisagreeingMS: ms}
}

func orphan(t *policy.Transition, status policy.Status, canAdopt bool) policy.ReconcileRequest {
	return policy.ReconcileRequest{ABI: 1, Case: policy.CaseOrphan, Node: "node-2", Instance: record, Transition: t, Status: status,
		Observed: seen("running"), DisagreeingMS: 45000, LostNode: "node-1", CanAdopt: canAdopt}
}

func d(k policy.DecisionKind, st policy.Status, reason string) policy.Decision {
	return policy.Decision{Decision: k, Status: st, Reason: reason}
}

var decisions = []decision{
	// power mismatch: the record follows the VM by default
	{"shut down", `{}`, mismatch("ACTIVE", "shutdown", 3000), d(correct, "SHUTOFF", "VM shut down behind Lucid's back for 3s; on_power_mismatch = correct")},
	{"crashed", `{}`, mismatch("ACTIVE", "crashed", 1500), d(correct, "SHUTOFF", "VM crashed for 1.5s; on_power_mismatch = correct")},
	{"started", `{}`, mismatch("SHUTOFF", "running", 90000), d(correct, "ACTIVE", "VM started behind Lucid's back for 1m30s; on_power_mismatch = correct")},
	{"paused is flagged", `{}`, mismatch("ACTIVE", "paused", 3000),
		d(flag, "", "VM paused behind Lucid's back for 3s; on_power_mismatch = correct, but no status is true of a paused VM: flagged")},
	{"unknown power is flagged", `{}`, mismatch("ACTIVE", "nostate", 3000),
		d(flag, "", "record says ACTIVE, VM is nostate for 3s; on_power_mismatch = correct, but no status is true of a nostate VM: flagged")},
	{"mismatch flagged", `{"on_power_mismatch":"flag"}`, mismatch("ACTIVE", "shutdown", 3000), d(flag, "", "VM shut down behind Lucid's back for 3s; on_power_mismatch = flag")},
	{"mismatch left", `{"on_power_mismatch":"leave"}`, mismatch("ACTIVE", "shutdown", 3000), d(leave, "", "VM shut down behind Lucid's back for 3s; on_power_mismatch = leave")},
	{"mismatch enforced", `{"on_power_mismatch":"enforce"}`, mismatch("SHUTOFF", "running", 3000), d(enforce, "", "VM started behind Lucid's back for 3s; on_power_mismatch = enforce")},
	{"paused enforced", `{"on_power_mismatch":"enforce"}`, mismatch("ACTIVE", "paused", 3000), d(enforce, "", "VM paused behind Lucid's back for 3s; on_power_mismatch = enforce")},

	// ERROR is left alone unless the operator says otherwise
	{"error left", `{}`, inError("running", 3000), d(leave, "", "instance in ERROR while its VM is running (fault: spawn failed) for 3s; on_error = leave")},
	{"error corrected to ACTIVE", `{"on_error":"correct"}`, inError("running", 3000),
		d(correct, "ACTIVE", "instance in ERROR while its VM is running (fault: spawn failed) for 3s; on_error = correct")},
	{"error corrected to SHUTOFF", `{"on_error":"correct"}`, inError("shutdown", 3000),
		d(correct, "SHUTOFF", "instance in ERROR while its VM is shutdown (fault: spawn failed) for 3s; on_error = correct")},
	{"error of a paused VM flagged", `{"on_error":"correct"}`, inError("paused", 3000),
		d(flag, "", "instance in ERROR while its VM is paused (fault: spawn failed) for 3s; on_error = correct, but no status is true of a paused VM: flagged")},
	{"error flagged", `{"on_error":"flag"}`, inError("running", 0), d(flag, "", "instance in ERROR while its VM is running (fault: spawn failed) for 0s; on_error = flag")},

	// vanished: ERROR by default
	{"vanished", `{}`, vanished(3000), d(correct, "ERROR", "VM gone from the hypervisor while the record says ACTIVE for 3s; on_vanished = correct")},
	{"vanished flagged", `{"on_vanished":"flag"}`, vanished(3000), d(flag, "", "VM gone from the hypervisor while the record says ACTIVE for 3s; on_vanished = flag")},
	{"vanished left", `{"on_vanished":"leave"}`, vanished(3000), d(leave, "", "VM gone from the hypervisor while the record says ACTIVE for 3s; on_vanished = leave")},

	// unmanaged: flagged by default
	{"unmanaged", `{}`, unmanaged(3000), d(flag, "", "VM vm-9 (running) on node node-2 has no Lucid record for 3s; on_unmanaged = flag")},
	{"unmanaged left", `{"on_unmanaged":"leave"}`, unmanaged(3000), d(leave, "", "VM vm-9 (running) on node node-2 has no Lucid record for 3s; on_unmanaged = leave")},

	// stuck: ERROR by default
	{"stuck", `{}`, stuck(12000), d(correct, "ERROR", "stop stuck at STOPPING past its step deadline for 12s; on_stuck = correct")},
	{"stuck flagged", `{"on_stuck":"flag"}`, stuck(12000), d(flag, "", "stop stuck at STOPPING past its step deadline for 12s; on_stuck = flag")},
	{"stuck left", `{"on_stuck":"leave"}`, stuck(12000), d(leave, "", "stop stuck at STOPPING past its step deadline for 12s; on_stuck = leave")},

	// orphan: ERROR by default; rollback, adopt and leave on request
	{"orphan", `{}`, orphan(stopT, "STOPPING", true), d(correct, "ERROR", "stop at STOPPING orphaned by lost node node-1 for 45s; on_orphan = correct")},
	{"orphan rolled back", `{"on_orphan":"rollback"}`, orphan(stopT, "STOPPING", true),
		d(rollback, "ACTIVE", "stop at STOPPING orphaned by lost node node-1 for 45s; on_orphan = rollback")},
	{"orphaned create cannot roll back", `{"on_orphan":"rollback"}`, orphan(createT, "BUILD", true),
		d(correct, "ERROR", "create at BUILD orphaned by lost node node-1 for 45s; on_orphan = rollback, but it has no origin to go back to: ERROR")},
	{"orphan adopted", `{"on_orphan":"adopt"}`, orphan(stopT, "STOPPING", true), d(adopt, "", "stop at STOPPING orphaned by lost node node-1 for 45s; on_orphan = adopt")},
	{"orphan that cannot be adopted", `{"on_orphan":"adopt"}`, orphan(stopT, "STOPPING", false),
		d(correct, "ERROR", "stop at STOPPING orphaned by lost node node-1 for 45s; on_orphan = adopt, but node node-2 cannot adopt it: ERROR")},
	{"orphan left", `{"on_orphan":"leave"}`, orphan(stopT, "STOPPING", true), d(leave, "", "stop at STOPPING orphaned by lost node node-1 for 45s; on_orphan = leave")},

	// grace: a younger disagreement is left alone, whatever the case
	{"mismatch within grace", `{"grace":"10s"}`, mismatch("ACTIVE", "shutdown", 3000), d(leave, "", "VM shut down behind Lucid's back for 3s, within grace = 10s")},
	{"mismatch at grace", `{"grace":"3s"}`, mismatch("ACTIVE", "shutdown", 3000), d(correct, "SHUTOFF", "VM shut down behind Lucid's back for 3s; on_power_mismatch = correct")},
	{"error within grace", `{"grace":"1m","on_error":"correct"}`, inError("running", 59999),
		d(leave, "", "instance in ERROR while its VM is running (fault: spawn failed) for 59.999s, within grace = 1m0s")},
	{"vanished within grace", `{"grace":"5s"}`, vanished(4000), d(leave, "", "VM gone from the hypervisor while the record says ACTIVE for 4s, within grace = 5s")},
	{"unmanaged within grace", `{"grace":"5s"}`, unmanaged(0), d(leave, "", "VM vm-9 (running) on node node-2 has no Lucid record for 0s, within grace = 5s")},
	{"stuck within grace", `{"grace":"30s"}`, stuck(12000), d(leave, "", "stop stuck at STOPPING past its step deadline for 12s, within grace = 30s")},
	{"orphan within grace", `{"grace":"1m"}`, orphan(stopT, "STOPPING", true), d(leave, "", "stop at STOPPING orphaned by lost node node-1 for 45s, within grace = 1m0s")},
}

func TestDecide(t *testing.T) {
	for _, c := range decisions {
		t.Run(c.name, func(t *testing.T) {
			s, err := parseSettings([]byte(c.settings))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.decide(c.req); got != c.want {
				t.Errorf("decide =\n%+v, want\n%+v", got, c.want)
			}
		})
	}
}

func TestUnknownCase(t *testing.T) {
	s := defaults()
	want := d(flag, "", `unknown reconcile case "drift": flagged`)
	if got := s.decide(policy.ReconcileRequest{Case: "drift"}); got != want {
		t.Errorf("decide = %+v, want %+v", got, want)
	}
}

// settingErrors are settings the policy refuses, with the exact reason the
// operator sees at the HCL settings line.
var settingErrors = []struct{ raw, want string }{
	{`{"on_eror":"leave"}`, `unknown setting "on_eror"`},
	{`{"on_power_mismatch":"rollback"}`, `setting "on_power_mismatch": want correct, flag, leave or enforce, got "rollback"`},
	{`{"on_error":"enforce"}`, `setting "on_error": want correct, flag or leave, got "enforce"`},
	{`{"on_vanished":"adopt"}`, `setting "on_vanished": want correct, flag or leave, got "adopt"`},
	{`{"on_unmanaged":"correct"}`, `setting "on_unmanaged": want flag or leave, got "correct"`},
	{`{"on_stuck":"enforce"}`, `setting "on_stuck": want correct, flag or leave, got "enforce"`},
	{`{"on_orphan":"flag"}`, `setting "on_orphan": want correct, rollback, leave or adopt, got "flag"`},
	{`{"on_error":true}`, `setting "on_error": want string, got bool`},
	{`{"grace":"soon"}`, `setting "grace": want a duration such as "30s" or "5m", got "soon"`},
	{`{"grace":"-5s"}`, `setting "grace": want a duration of 0 or more, got "-5s"`},
	{`{"grace":30}`, `setting "grace": want string, got number`},
}

func TestSettings(t *testing.T) {
	for _, tt := range settingErrors {
		if _, err := parseSettings([]byte(tt.raw)); err == nil || err.Error() != tt.want {
			t.Errorf("parseSettings(%s) = %v, want %q", tt.raw, err, tt.want)
		}
	}
	s, err := parseSettings([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[policy.Case]policy.DecisionKind{"power_mismatch": correct, "error": leave, "vanished": correct, "unmanaged": flag, "stuck": correct, "orphan": correct}
	for c, k := range want {
		if s.on[c] != k {
			t.Errorf("default for %s = %s, want %s", c, s.on[c], k)
		}
	}
	if s.grace != 0 || len(s.on) != len(want) {
		t.Errorf("defaults = %+v", s)
	}
}
