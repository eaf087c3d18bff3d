package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lucid-project/lucid/sdk/policy"
)

const (
	correct  = policy.DecisionCorrect
	flag     = policy.DecisionFlag
	leave    = policy.DecisionLeave
	enforce  = policy.DecisionEnforce
	rollback = policy.DecisionRollback
	adopt    = policy.DecisionAdopt
)

// rule is one case and the setting that decides it: one row per case.
type rule struct {
	c       policy.Case
	key     string                // the setting's name
	allowed []policy.DecisionKind // the values it may take
	def     policy.DecisionKind
}

var rules = []rule{
	{policy.CasePowerMismatch, "on_power_mismatch", []policy.DecisionKind{correct, flag, leave, enforce}, correct},
	{policy.CaseError, "on_error", []policy.DecisionKind{correct, flag, leave}, leave},
	{policy.CaseVanished, "on_vanished", []policy.DecisionKind{correct, flag, leave}, correct},
	{policy.CaseUnmanaged, "on_unmanaged", []policy.DecisionKind{flag, leave}, flag},
	{policy.CaseStuck, "on_stuck", []policy.DecisionKind{correct, flag, leave}, correct},
	{policy.CaseOrphan, "on_orphan", []policy.DecisionKind{correct, rollback, leave, adopt}, correct},
}

// settings are the operator's choices: a decision per case, and the grace
// before any disagreement is acted on.
type settings struct {
	on    map[policy.Case]policy.DecisionKind
	grace time.Duration
}

func defaults() settings {
	s := settings{on: map[policy.Case]policy.DecisionKind{}}
	for _, r := range rules {
		s.on[r.c] = r.def
	}
	return s
}

const settingsSchema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "on_power_mismatch": {"enum": ["correct", "flag", "leave", "enforce"], "default": "correct",
      "description": "record and VM power disagree: make the record follow the VM, flag it, leave it, or drive the VM back"},
    "on_error":     {"enum": ["correct", "flag", "leave"], "default": "leave",
      "description": "the record is ERROR and the VM is there: by default ERROR is never changed"},
    "on_vanished":  {"enum": ["correct", "flag", "leave"], "default": "correct",
      "description": "the hypervisor lost the VM: correct means ERROR with a fault"},
    "on_unmanaged": {"enum": ["flag", "leave"], "default": "flag",
      "description": "a VM no record names"},
    "on_stuck":     {"enum": ["correct", "flag", "leave"], "default": "correct",
      "description": "a step outlived its timeout: correct means ERROR"},
    "on_orphan":    {"enum": ["correct", "rollback", "leave", "adopt"], "default": "correct",
      "description": "a transition whose node was lost: correct means ERROR"},
    "grace":        {"type": "string", "default": "0s",
      "description": "Go duration; a disagreement younger than this is left alone"}
  }
}`

// parseSettings decodes and checks the settings object. Every error names
// the offending key, so the host can point at its HCL line.
func parseSettings(raw []byte) (settings, error) {
	var in struct {
		OnPowerMismatch *string `json:"on_power_mismatch"`
		OnError         *string `json:"on_error"`
		OnVanished      *string `json:"on_vanished"`
		OnUnmanaged     *string `json:"on_unmanaged"`
		OnStuck         *string `json:"on_stuck"`
		OnOrphan        *string `json:"on_orphan"`
		Grace           *string `json:"grace"`
	}
	if err := policy.DecodeSettings(raw, &in); err != nil {
		return settings{}, err
	}
	s := defaults()
	given := map[policy.Case]*string{
		policy.CasePowerMismatch: in.OnPowerMismatch, policy.CaseError: in.OnError, policy.CaseVanished: in.OnVanished,
		policy.CaseUnmanaged: in.OnUnmanaged, policy.CaseStuck: in.OnStuck, policy.CaseOrphan: in.OnOrphan,
	}
	for _, r := range rules {
		v := given[r.c]
		if v == nil {
			continue
		}
		if !slices.Contains(r.allowed, policy.DecisionKind(*v)) {
			return settings{}, fmt.Errorf("setting %q: want %s, got %q", r.key, oneOf(r.allowed), *v)
		}
		s.on[r.c] = policy.DecisionKind(*v)
	}
	if in.Grace != nil {
		d, err := time.ParseDuration(*in.Grace)
		if err != nil {
			return settings{}, fmt.Errorf("setting \"grace\": want a duration such as \"30s\" or \"5m\", got %q", *in.Grace)
		}
		if d < 0 {
			return settings{}, fmt.Errorf("setting \"grace\": want a duration of 0 or more, got %q", *in.Grace)
		}
		s.grace = d
	}
	return s, nil
}

// oneOf lists choices as "a, b or c".
func oneOf(ks []policy.DecisionKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// decide is the reconcile hook.
func (s *settings) decide(req policy.ReconcileRequest) policy.Decision {
	i := slices.IndexFunc(rules, func(r rule) bool { return r.c == req.Case })
	if i < 0 {
		return policy.Decision{Decision: flag, Reason: fmt.Sprintf("unknown reconcile case %q: flagged", req.Case)}
	}
	r := rules[i]
	seen := fmt.Sprintf("%s for %s", what(req), age(req))
	if age(req) < s.grace {
		return policy.Decision{Decision: leave, Reason: fmt.Sprintf("%s, within grace = %s", seen, s.grace)}
	}
	kind := s.on[r.c]
	because := fmt.Sprintf("%s; %s = %s", seen, r.key, kind)
	instead := func(k policy.DecisionKind, st policy.Status, why string) policy.Decision {
		return policy.Decision{Decision: k, Status: st, Reason: because + ", but " + why}
	}
	switch kind {
	case correct:
		switch req.Case {
		case policy.CasePowerMismatch, policy.CaseError:
			st, ok := follow(req.Observed.PowerState)
			if !ok {
				return instead(flag, "", fmt.Sprintf("no status is true of a %s VM: flagged", power(req.Observed.PowerState)))
			}
			return policy.Decision{Decision: correct, Status: st, Reason: because}
		default: // vanished, stuck, orphan
			return policy.Decision{Decision: correct, Status: policy.StatusError, Reason: because}
		}
	case rollback:
		if req.Transition == nil || req.Transition.Origin == "" {
			return instead(correct, policy.StatusError, "it has no origin to go back to: ERROR")
		}
		return policy.Decision{Decision: rollback, Status: req.Transition.Origin, Reason: because}
	case adopt:
		if !req.CanAdopt {
			return instead(correct, policy.StatusError, fmt.Sprintf("node %s cannot adopt it: ERROR", req.Node))
		}
	}
	return policy.Decision{Decision: kind, Reason: because}
}

// follow is the status a record takes to match a VM's power.
func follow(p string) (policy.Status, bool) {
	switch p {
	case "running":
		return policy.StatusActive, true
	case "shutdown", "crashed":
		return policy.StatusShutoff, true
	}
	return "", false
}

func power(p string) string {
	if p == "" {
		return "nostate"
	}
	return p
}

// what says in an operator's words what the reconciler saw.
func what(req policy.ReconcileRequest) string {
	switch req.Case {
	case policy.CasePowerMismatch:
		switch p := req.Observed.PowerState; {
		case req.Status == policy.StatusShutoff && p == "running":
			return "VM started behind Lucid's back"
		case p == "shutdown":
			return "VM shut down behind Lucid's back"
		case p == "crashed":
			return "VM crashed"
		case p == "paused":
			return "VM paused behind Lucid's back"
		default:
			return fmt.Sprintf("record says %s, VM is %s", req.Status, power(p))
		}
	case policy.CaseError:
		s := "instance in ERROR while its VM is " + power(req.Observed.PowerState)
		if req.Instance != nil && req.Instance.Fault != nil {
			s += fmt.Sprintf(" (fault: %s)", req.Instance.Fault.Message)
		}
		return s
	case policy.CaseVanished:
		return fmt.Sprintf("VM gone from the hypervisor while the record says %s", req.Status)
	case policy.CaseUnmanaged:
		return fmt.Sprintf("VM %s (%s) on node %s has no Lucid record", req.Observed.ID, power(req.Observed.PowerState), req.Node)
	case policy.CaseStuck:
		return fmt.Sprintf("%s stuck at %s past its step deadline", action(req), req.Status)
	case policy.CaseOrphan:
		return fmt.Sprintf("%s at %s orphaned by lost node %s", action(req), req.Status, req.LostNode)
	}
	return string(req.Case)
}

func action(req policy.ReconcileRequest) string {
	if req.Transition == nil {
		return "transition"
	}
	return string(req.Transition.Action)
}

// age is how long the disagreement has lasted, as a Go duration.
func age(req policy.ReconcileRequest) time.Duration {
	return time.Duration(req.DisagreeingMS) * time.Millisecond
}
