package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ValidateFunc decides whether one status change may be written.
type ValidateFunc func(ValidateRequest) Verdict

// ReconcileFunc decides what to do about a record/hypervisor mismatch.
type ReconcileFunc func(ReconcileRequest) Decision

// InitFunc receives the policy's settings (a JSON object, "{}" when the
// operator gave none) once per module instance, before any hook. A non-nil
// error refuses the configuration; its text is shown to the operator at
// the HCL settings line, so name the offending key.
type InitFunc func(settings []byte) error

// registry holds what a policy registered. It is package state on purpose:
// a WebAssembly module has exactly one set of exports, and the exported
// functions can only reach handlers through a package variable. A module
// instance is single-threaded, so no locking is needed.
type registry struct {
	info      Info
	init      InitFunc
	validate  ValidateFunc
	reconcile ReconcileFunc
}

var reg registry

// SetInfo sets the name, version and settings schema the policy reports.
// Hooks is ignored: it is derived from the registered handlers. Call it
// from an init function.
func SetInfo(info Info) { reg.info = info }

// HandleInit registers the settings handler. Without one, the policy
// accepts only empty settings.
func HandleInit(f InitFunc) { reg.init = f }

// HandleValidate registers the validate hook. Call it from an init
// function.
func HandleValidate(f ValidateFunc) { reg.validate = f }

// HandleReconcile registers the reconcile hook. Call it from an init
// function.
func HandleReconcile(f ReconcileFunc) { reg.reconcile = f }

// DecodeSettings decodes a settings object into v strictly: an unknown key
// is an error naming it ("unknown setting \"x\""), so that a typo in the
// operator's HCL does not pass silently. Empty settings leave v alone.
func DecodeSettings(settings []byte, v any) error {
	if len(bytes.TrimSpace(settings)) == 0 || string(bytes.TrimSpace(settings)) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// encoding/json reports `json: unknown field "x"`; say it in the
		// operator's words.
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("unknown setting %s", name)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("setting %q: want %s, got %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}

// The wire forms of responses. Error is set when the guest failed (bad
// request, panic in a handler); the host then applies its fallback.
type (
	initResponse struct {
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}
	verdictResponse struct {
		Verdict
		Error string `json:"error,omitempty"`
	}
	decisionResponse struct {
		Decision
		Error string `json:"error,omitempty"`
	}
)

// infoJSON is the response of lucid_policy_info.
func (r *registry) infoJSON() []byte {
	info := r.info
	info.Hooks = nil
	if r.validate != nil {
		info.Hooks = append(info.Hooks, HookValidate)
	}
	if r.reconcile != nil {
		info.Hooks = append(info.Hooks, HookReconcile)
	}
	if info.Hooks == nil {
		info.Hooks = []Hook{}
	}
	b, err := json.Marshal(info)
	if err != nil {
		// Only a malformed SettingsSchema can fail; report it the way the
		// host will understand: as an unusable info.
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

// initJSON is the response of lucid_init.
func (r *registry) initJSON(settings []byte) []byte {
	err := protect(func() error {
		if r.init != nil {
			return r.init(settings)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(settings, &m); err != nil {
			return fmt.Errorf("settings must be a JSON object: %w", err)
		}
		for k := range m {
			return fmt.Errorf("unknown setting %q: this policy takes no settings", k)
		}
		return nil
	})
	resp := initResponse{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	}
	b, _ := json.Marshal(resp)
	return b
}

// validateJSON is the response of lucid_validate. It takes ownership of
// req: the request's strings share its memory.
func (r *registry) validateJSON(req []byte) []byte {
	var resp verdictResponse
	err := protect(func() error {
		if r.validate == nil {
			return errors.New("no validate handler registered")
		}
		var q ValidateRequest
		if err := unmarshalRequest(req, &q); err != nil {
			return fmt.Errorf("decode request: %w", err)
		}
		resp.Verdict = r.validate(q)
		return nil
	})
	if err != nil {
		resp = verdictResponse{Verdict: Deny("policy failed"), Error: err.Error()}
	}
	return marshalVerdict(resp)
}

// reconcileJSON is the response of lucid_reconcile. It takes ownership of
// req, like validateJSON.
func (r *registry) reconcileJSON(req []byte) []byte {
	var resp decisionResponse
	err := protect(func() error {
		if r.reconcile == nil {
			return errors.New("no reconcile handler registered")
		}
		var q ReconcileRequest
		if err := unmarshalRequest(req, &q); err != nil {
			return fmt.Errorf("decode request: %w", err)
		}
		resp.Decision = r.reconcile(q)
		return nil
	})
	if err != nil {
		resp = decisionResponse{Decision: Decision{Decision: DecisionFlag, Reason: "policy failed"}, Error: err.Error()}
	}
	return marshalDecision(resp)
}

// protect runs f and turns a panic into an error, so that a bug in a
// handler becomes a clean error response instead of a trap that costs the
// host a module instance.
func protect(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}
