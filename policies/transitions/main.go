// Command transitions is Lucid's default validate policy: it allows only
// the status changes of DESIGN.md section 3's table. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/policies/transitions.wasm ./policies/transitions
//
// For each action it allows the start (origin to the first step; for
// create, nothing to BUILD; for an action without steps, origin to its
// end), the steps in order, the last step to the transition's target, and
// failure to ERROR, or back to the origin where the table says so (stop
// and start only to the origin; resize also to the origin while still on
// QUEUE_RESIZE). Delete may go from any
// status to DELETING, and from DELETING to DELETED or ERROR. A change made
// by the reconciler between settled statuses (ACTIVE, SHUTOFF, ERROR) is
// allowed unless it leaves ERROR; an orphaned transition may be ended in
// ERROR by the reconciler.
//
// Settings:
//
//	reconciler_may_clear_error = true          # let the reconciler leave ERROR
//	forbid_actions             = ["hardReboot"] # refuse to start these actions
package main

import "github.com/lucid-project/lucid/sdk/policy"

// version is reported in the policy's info.
const version = "1.0.0"

func init() {
	var s settings
	policy.SetInfo(policy.Info{Name: "transitions", Version: version, SettingsSchema: []byte(settingsSchema)})
	policy.HandleInit(func(raw []byte) error {
		parsed, err := parseSettings(raw)
		if err != nil {
			return err
		}
		s = parsed
		return nil
	})
	policy.HandleValidate(s.check)
}

func main() {}
