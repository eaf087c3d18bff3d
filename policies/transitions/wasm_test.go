//go:build !wasip1

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	hostpolicy "github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/sdk/policy"
	"github.com/lucid-project/lucid/sdk/policy/policytest"
)

// wasmPath is this policy, built once for the test binary the way the
// Makefile builds it; cacheDir is the test binary's compilation cache,
// removed with it.
var wasmPath, cacheDir string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lucid-transitions-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	wasmPath = filepath.Join(dir, "transitions.wasm")
	cacheDir = filepath.Join(dir, "cache")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := policytest.Build(ctx, "", ".", wasmPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func engine(t *testing.T) *hostpolicy.Engine {
	t.Helper()
	e, err := hostpolicy.NewEngine(context.Background(), hostpolicy.EngineConfig{
		CacheDir: cacheDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// TestWasm runs every case of the rule table through the compiled module
// and the real host, settings and all.
func TestWasm(t *testing.T) {
	e := engine(t)
	modules := map[string]*hostpolicy.Module{}
	for _, c := range changes {
		settings, err := json.Marshal(c.set)
		if err != nil {
			t.Fatal(err)
		}
		m := modules[string(settings)]
		if m == nil {
			m, err = e.Load(context.Background(), hostpolicy.Config{Name: "validate", Hook: hostpolicy.HookValidate, Path: wasmPath, Settings: settings,
				Timeout: 10 * time.Second}) // not a test of time limits: -race on a busy machine is slow
			if err != nil {
				t.Fatal(err)
			}
			modules[string(settings)] = m
		}
		var tr *instance.Transition
		if c.t != nil {
			tr = &instance.Transition{Action: instance.Action(c.t.Action), Origin: instance.Status(c.t.Origin),
				Target: instance.Status(c.t.Target), Attempt: c.t.Attempt}
			for _, s := range c.t.Steps {
				tr.Steps = append(tr.Steps, instance.Status(s))
			}
		}
		v, err := m.Validate(context.Background(), hostpolicy.ValidateRequest{
			Now: time.Now(), Action: instance.Action(c.action), Cause: instance.Cause(c.cause),
			From: instance.Status(c.from), To: instance.Status(c.to),
			Instance: instance.State{ID: "i-1", VMState: instance.Active}, Transition: tr,
		})
		if want := (hostpolicy.Verdict{Allow: c.want == "", Reason: c.want}); err != nil || v != want {
			t.Errorf("%s: Validate = %+v, %v; want %+v", c.name, v, err, want)
		}
	}
}

// knownPlanGaps are actions where core/instance's table and this policy
// disagree. None today; a gap found later is listed here, reported and
// fixed in the model.
var knownPlanGaps = map[policy.Action]bool{}

// TestWasmPlans checks the policy against the executor's own plans in
// core/instance: every change a plan makes on success must be allowed.
func TestWasmPlans(t *testing.T) {
	e := engine(t)
	m, err := e.Load(context.Background(), hostpolicy.Config{Name: "validate", Hook: hostpolicy.HookValidate, Path: wasmPath, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for a := range plans {
		p, err := instance.Lookup(instance.Action(a))
		if err != nil {
			t.Fatal(err)
		}
		origins := p.From
		if len(origins) == 0 {
			origins = []instance.Status{instance.StatusActive}
		}
		if a == "create" {
			origins = []instance.Status{""}
		}
		for _, origin := range origins {
			tr := p.Begin(origin, instance.State{}, "req-1", "local", instance.Request{})
			path := append([]instance.Status{origin}, tr.Steps...)
			path = append(path, tr.Target)
			for i := 1; i < len(path); i++ {
				v, err := m.Validate(context.Background(), hostpolicy.ValidateRequest{
					Action: p.Action, Cause: instance.CauseDriver, From: path[i-1], To: path[i], Transition: tr})
				gap := knownPlanGaps[a]
				switch {
				case err != nil:
					t.Errorf("%s from %q: %s -> %s: %v", a, origin, path[i-1], path[i], err)
				case gap && v.Allow:
					t.Errorf("%s: core/instance now targets %s, which the policy allows: remove it from knownPlanGaps", a, tr.Target)
				case gap:
					t.Logf("known gap: %s from %s -> %s: %s", a, path[i-1], path[i], v.Reason)
				case !v.Allow:
					t.Errorf("%s from %q: %s -> %s refused: %s", a, origin, path[i-1], path[i], v.Reason)
				}
			}
		}
	}
}

func TestWasmSettings(t *testing.T) {
	e := engine(t)
	_, err := e.Load(context.Background(), hostpolicy.Config{Name: "validate", Hook: hostpolicy.HookValidate, Path: wasmPath,
		Settings: []byte(`{"forbid_action":["hardReboot"]}`)})
	var se *hostpolicy.SettingsError
	if !errors.As(err, &se) || se.Reason != `unknown setting "forbid_action"` {
		t.Fatalf("err = %v, want a SettingsError naming the key", err)
	}
	m, err := e.Load(context.Background(), hostpolicy.Config{Name: "validate", Hook: hostpolicy.HookValidate, Path: wasmPath})
	if err != nil {
		t.Fatal(err)
	}
	if info := m.Info(); info.Name != "transitions" || info.Version != version || !json.Valid(info.SettingsSchema) {
		t.Fatalf("Info = %+v", info)
	}
}
