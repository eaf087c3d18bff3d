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
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/sdk/policy"
	"github.com/lucid-project/lucid/sdk/policy/policytest"
)

// wasmPath is this policy, built once for the test binary the way the
// Makefile builds it.
var wasmPath string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lucid-reconcile-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	wasmPath = filepath.Join(dir, "reconcile.wasm")
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
	// The cache is shared by the run's test processes, never the user's.
	e, err := hostpolicy.NewEngine(context.Background(), hostpolicy.EngineConfig{CacheDir: testenv.CacheDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// convert moves a value between the SDK's types and the host's through
// JSON, the way it crosses the ABI (core/policy's TestWireMatchesSDK keeps
// the two in step).
func convert[T any](t *testing.T, v any) T {
	t.Helper()
	var out T
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hostRequest is the host's form of an SDK request.
func hostRequest(t *testing.T, r policy.ReconcileRequest) hostpolicy.ReconcileRequest {
	return hostpolicy.ReconcileRequest{
		Now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Case: hostpolicy.ReconcileCase(r.Case), Node: r.Node,
		Instance: convert[*instance.State](t, r.Instance), Transition: convert[*instance.Transition](t, r.Transition),
		Status: instance.Status(r.Status), Observed: convert[hostpolicy.Observation](t, r.Observed),
		Disagreeing: time.Duration(r.DisagreeingMS) * time.Millisecond, LostNode: r.LostNode, CanAdopt: r.CanAdopt,
	}
}

// TestWasm runs every rule case through the compiled module and the real
// host, settings and all: the host must accept each decision as it is.
func TestWasm(t *testing.T) {
	e := engine(t)
	modules := map[string]*hostpolicy.Module{}
	for _, c := range decisions {
		m := modules[c.settings]
		if m == nil {
			var err error
			m, err = e.Load(context.Background(), hostpolicy.Config{Name: "reconcile", Hook: hostpolicy.HookReconcile, Path: wasmPath, Settings: []byte(c.settings),
				Timeout: 10 * time.Second}) // not a test of time limits: -race on a busy machine is slow
			if err != nil {
				t.Fatal(err)
			}
			modules[c.settings] = m
		}
		got, err := m.Reconcile(context.Background(), hostRequest(t, c.req))
		want := hostpolicy.Decision{Kind: hostpolicy.DecisionKind(c.want.Decision), Status: instance.Status(c.want.Status), Reason: c.want.Reason}
		if err != nil || got != want {
			t.Errorf("%s: Reconcile =\n%+v, %v; want\n%+v", c.name, got, err, want)
		}
	}
}

func TestWasmSettings(t *testing.T) {
	e := engine(t)
	for _, tt := range settingErrors {
		_, err := e.Load(context.Background(), hostpolicy.Config{Name: "reconcile", Hook: hostpolicy.HookReconcile, Path: wasmPath, Settings: []byte(tt.raw)})
		var se *hostpolicy.SettingsError
		if !errors.As(err, &se) || se.Reason != tt.want {
			t.Errorf("settings %s: err = %v, want a SettingsError %q", tt.raw, err, tt.want)
		}
	}
	m, err := e.Load(context.Background(), hostpolicy.Config{Name: "reconcile", Hook: hostpolicy.HookReconcile, Path: wasmPath})
	if err != nil {
		t.Fatal(err)
	}
	if info := m.Info(); info.Name != "reconcile" || info.Version != version || !json.Valid(info.SettingsSchema) ||
		len(info.Hooks) != 1 || info.Hooks[0] != hostpolicy.HookReconcile {
		t.Fatalf("Info = %+v", info)
	}
	if _, err := e.Load(context.Background(), hostpolicy.Config{Name: "validate", Hook: hostpolicy.HookValidate, Path: wasmPath}); !errors.Is(err, hostpolicy.ErrMissingExport) {
		t.Errorf("loaded as a validate policy: err = %v, want ErrMissingExport", err)
	}
}
