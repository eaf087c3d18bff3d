// Command refuse is a validate policy for tests: it allows every change
// except those its settings name, so a test can make the policy refuse
// the outcome of a step the driver has already carried out.
//
// Settings: {"deny_to": ["ACTIVE"], "deny_cause": "driver"} refuses every
// change to ACTIVE made by the driver; both keys are optional filters
// (an empty deny_to refuses nothing).
package main

import (
	"fmt"
	"slices"

	"github.com/lucid-project/lucid/sdk/policy"
)

type settings struct {
	DenyTo    []policy.Status `json:"deny_to"`
	DenyCause policy.Cause    `json:"deny_cause"`
}

func init() {
	var s settings
	policy.SetInfo(policy.Info{Name: "refuse", Version: "0.0.1"})
	policy.HandleInit(func(raw []byte) error { return policy.DecodeSettings(raw, &s) })
	policy.HandleValidate(func(req policy.ValidateRequest) policy.Verdict {
		if slices.Contains(s.DenyTo, req.To) && (s.DenyCause == "" || s.DenyCause == req.Cause) {
			return policy.Deny(fmt.Sprintf("changes to %s by %s are refused by this test policy", req.To, req.Cause))
		}
		return policy.Allow()
	})
}

func main() {}
