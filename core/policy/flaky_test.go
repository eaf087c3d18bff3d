package policy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/policy"
)

// TestFlaky checks testdata/flaky, the module end-to-end tests use to make
// a policy fail every Nth call.
func TestFlaky(t *testing.T) {
	e, _ := newEngine(t)
	tests := []struct {
		settings string
		timeout  time.Duration
		want     []error // per call; nil is the normal answer
		allow    bool
	}{
		{`{"every":3,"how":"trap"}`, 0, []error{nil, nil, policy.ErrTrap, nil, nil, policy.ErrTrap}, true},
		{`{"every":2,"how":"error","allow":false}`, 0, []error{nil, policy.ErrGuest, nil, policy.ErrGuest}, false},
		{`{"every":2,"how":"timeout"}`, 300 * time.Millisecond, []error{nil, policy.ErrTimeout, nil, policy.ErrTimeout}, true},
		{`{}`, 0, []error{policy.ErrTrap, policy.ErrTrap}, true},
	}
	for _, tt := range tests {
		t.Run(tt.settings, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			m := load(t, e, policy.Config{Name: "flaky", Path: policy.FlakyWasm, PoolSize: 1, Timeout: timeout, Settings: []byte(tt.settings)})
			for i, want := range tt.want {
				v, err := m.Validate(context.Background(), req(""))
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("call %d: err = %v, want %v", i+1, err, want)
				}
				if want == nil && v != (policy.Verdict{Allow: tt.allow, Reason: map[bool]string{true: "", false: fmt.Sprintf("flaky denies call %d", i+1)}[tt.allow]}) {
					t.Errorf("call %d: verdict %+v", i+1, v)
				}
			}
		})
	}

	t.Run("reconcile", func(t *testing.T) {
		m := load(t, e, policy.Config{Name: "flaky", Hook: policy.HookReconcile, Path: policy.FlakyWasm, PoolSize: 1, Timeout: 10 * time.Second,
			Settings: []byte(`{"every":2,"how":"error","decision":"correct"}`)})
		rq := policy.ReconcileRequest{Case: policy.CaseVanished, Node: "n", Instance: &instance.State{ID: "i"}, Status: instance.StatusActive}
		d, err := m.Reconcile(context.Background(), rq)
		if want := (policy.Decision{Kind: policy.DecisionCorrect, Status: instance.StatusError, Reason: "flaky answers call 1"}); err != nil || d != want {
			t.Errorf("call 1: %+v, %v; want %+v", d, err, want)
		}
		if d, err := m.Reconcile(context.Background(), rq); !errors.Is(err, policy.ErrGuest) || d.Kind != policy.DecisionFlag {
			t.Errorf("call 2: %+v, %v; want ErrGuest and the flag fallback", d, err)
		}
	})

	for settings, want := range map[string]string{
		`{"every":0}`:          `setting "every": want at least 1, got 0`,
		`{"how":"explode"}`:    `setting "how": want trap, error or timeout, got "explode"`,
		`{"decision":"adopt"}`: `setting "decision": want correct, flag or leave, got "adopt"`,
		`{"every":"often"}`:    `setting "every": want int, got string`,
		`{"evry":2}`:           `unknown setting "evry"`,
	} {
		_, err := e.Load(context.Background(), policy.Config{Name: "flaky", Hook: policy.HookValidate, Path: policy.FlakyWasm, Settings: []byte(settings)})
		var se *policy.SettingsError
		if !errors.As(err, &se) || se.Reason != want {
			t.Errorf("settings %s: err = %v, want a SettingsError %q", settings, err, want)
		}
	}
}
