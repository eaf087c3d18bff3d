package policy

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func TestValidateJSON(t *testing.T) {
	tests := []struct {
		name string
		h    ValidateFunc
		req  string
		want string
	}{
		{"allow", func(ValidateRequest) Verdict { return Allow() }, `{"abi":1,"to":"BUILD"}`, `{"allow":true}`},
		{"deny names to", func(r ValidateRequest) Verdict { return Deny("no " + string(r.To)) }, `{"to":"SHUTOFF","future":1}`, `{"allow":false,"reason":"no SHUTOFF"}`},
		{"panic recovered", func(ValidateRequest) Verdict { panic("boom") }, `{}`, `{"allow":false,"reason":"policy failed","error":"panic: boom"}`},
		{"bad request", func(ValidateRequest) Verdict { return Allow() }, `{`, `{"allow":false,"reason":"policy failed","error":"decode request: unexpected end of JSON input"}`},
		{"no handler", nil, `{}`, `{"allow":false,"reason":"policy failed","error":"no validate handler registered"}`},
	}
	for _, tt := range tests {
		r := registry{validate: tt.h}
		if got := string(r.validateJSON([]byte(tt.req))); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestReconcileJSON(t *testing.T) {
	r := registry{reconcile: func(q ReconcileRequest) Decision {
		if !q.Observed.Present {
			panic("gone")
		}
		return Decision{Decision: DecisionCorrect, Status: StatusShutoff}
	}}
	if got, want := string(r.reconcileJSON([]byte(`{"observed":{"present":true,"power_state":"shutdown"}}`))), `{"decision":"correct","status":"SHUTOFF"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := string(r.reconcileJSON([]byte(`{}`))), `{"decision":"flag","reason":"policy failed","error":"panic: gone"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestInitJSON(t *testing.T) {
	var none registry
	for settings, want := range map[string]string{
		`{}`:      `{"ok":true}`,
		`{"x":1}`: `{"ok":false,"error":"unknown setting \"x\": this policy takes no settings"}`,
		`[]`:      `{"ok":false,"error":"settings must be a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage"}`,
	} {
		if got := string(none.initJSON([]byte(settings))); got != want {
			t.Errorf("no handler, %s: got %s, want %s", settings, got, want)
		}
	}
	type knobs struct {
		Level int `json:"level"`
	}
	var k knobs
	r := registry{init: func(s []byte) error { return DecodeSettings(s, &k) }}
	if got := string(r.initJSON([]byte(`{"level":3}`))); got != `{"ok":true}` || k.Level != 3 {
		t.Errorf("got %s, level %d", got, k.Level)
	}
	if got, want := string(r.initJSON([]byte(`{"levle":3}`))), `{"ok":false,"error":"unknown setting \"levle\""}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := string(r.initJSON([]byte(`{"level":"high"}`))), `{"ok":false,"error":"setting \"level\": want int, got string"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	p := registry{init: func([]byte) error { panic("bad") }}
	if got, want := string(p.initJSON([]byte(`{}`))), `{"ok":false,"error":"panic: bad"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestInfoJSON(t *testing.T) {
	r := registry{info: Info{Name: "p", Version: "1", Hooks: []Hook{"bogus"}, SettingsSchema: json.RawMessage(`{"type":"object"}`)},
		validate: func(ValidateRequest) Verdict { return Allow() }}
	if got, want := string(r.infoJSON()), `{"name":"p","version":"1","hooks":["validate"],"settings_schema":{"type":"object"}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestDependencies keeps the SDK free of Lucid's core and of any
// WebAssembly runtime, on the host and in the guest build.
func TestDependencies(t *testing.T) {
	for _, goos := range []string{"", "wasip1"} {
		cmd := exec.Command("go", "list", "-deps", "./...")
		if goos != "" {
			cmd.Env = append(cmd.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list (GOOS=%s): %v", goos, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/lucid-project/lucid/core/") || strings.Contains(dep, "wazero") {
				t.Errorf("GOOS=%s: sdk/policy depends on %s", goos, dep)
			}
		}
	}
}
