// Command reconcile is Lucid's default reconcile policy: it tells the
// reconciler what to do when the record and the hypervisor disagree, one
// operator setting per kind of disagreement. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/policies/reconcile.wasm ./policies/reconcile
//
// Settings, with their defaults:
//
//	on_power_mismatch = "correct" # correct | flag | leave | enforce
//	on_error          = "leave"   # correct | flag | leave: ERROR is never changed by default
//	on_vanished       = "correct" # correct | flag | leave: correct means ERROR with a fault
//	on_unmanaged      = "flag"    # flag | leave
//	on_stuck          = "correct" # correct | flag | leave: correct means ERROR
//	on_orphan         = "correct" # correct | rollback | leave | adopt: correct means ERROR
//	grace             = "0s"      # a disagreement younger than this is left alone, whatever the case
//
// Correct makes the record follow the VM: ACTIVE if it runs, SHUTOFF if it
// is shut down or crashed (Nova's behaviour when a VM stops behind its
// back). A paused VM, or one whose power is unknown, is flagged instead:
// Lucid has no status that would be true of it. Enforce drives the VM back
// to the record. Rollback ends an orphaned transition at its origin (the
// validate policy decides whether the action may fail back at that step);
// a create has none, so it ends in ERROR instead. Adopt lets the asking
// node resume an orphaned transition when it can (it has the driver), and
// ends it in ERROR when it cannot.
//
// Every reason says what was seen, for how long and which setting
// decided, for example "VM shut down behind Lucid's back for 3s;
// on_power_mismatch = correct".
package main

import "github.com/lucid-project/lucid/sdk/policy"

// version is reported in the policy's info.
const version = "1.0.0"

func init() {
	s := defaults()
	policy.SetInfo(policy.Info{Name: "reconcile", Version: version, SettingsSchema: []byte(settingsSchema)})
	policy.HandleInit(func(raw []byte) error {
		parsed, err := parseSettings(raw)
		if err != nil {
			return err
		}
		s = parsed
		return nil
	})
	policy.HandleReconcile(func(req policy.ReconcileRequest) policy.Decision { return s.decide(req) })
}

func main() {}
