// Command transitions is Lucid's default validate policy: it allows only
// the status changes of DESIGN.md section 3's table. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/policies/transitions.wasm ./policies/transitions
//
// For each action it allows the start (origin to the first step; for
// create, nothing to BUILD; for confirmResize, which shows no step, the one
// change from VERIFY_RESIZE to its target), the steps in order, the last
// step to the transition's target, and a failure: back to the origin on
// the steps where nothing has changed yet (stop's STOPPING, start's
// STARTING, resize's QUEUE_RESIZE and PREP_RESIZE), to ERROR on every
// other step. A transition must target what the table says (rebuild ends
// SHUTOFF only if it was; confirmResize and revertResize end ACTIVE or
// SHUTOFF). Delete may go from any status to DELETING, and from DELETING
// to DELETED or ERROR.
//
// The reconciler may change a settled status (ACTIVE, SHUTOFF, ERROR) to
// another, ERROR included: whether it should is the reconcile policy's
// decision. Within an action, the reconciler, and a change a policy's
// answer forces (cause "policy"), may start it, end it in ERROR from any
// step, or roll it back to its origin where a failure may go back. Only the
// reconciler may start stop from SHUTOFF and start from ACTIVE, to make a
// VM follow its record (enforce).
//
// Settings:
//
//	forbid_actions = ["hardReboot"] # refuse to start these actions
package main

import "github.com/lucid-project/lucid/sdk/policy"

// version is reported in the policy's info.
const version = "2.0.0"

func init() {
	var s settings
	policy.SetInfo(policy.Info{Name: "transitions", Version: version, SettingsSchema: []byte(settingsSchema),
		// The verdict depends on these fields and the settings only, so the
		// host may keep verdicts instead of asking for every change.
		Reads: []string{"action", "cause", "from", "to", "transition.action", "transition.steps",
			"transition.origin", "transition.target"},
		Deterministic: true,
	})
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
