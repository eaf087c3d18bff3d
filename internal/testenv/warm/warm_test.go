// Package warm compiles the test suite's policy modules into the shared
// test compile cache (internal/testenv.CacheDir) before the suite runs.
//
// Why: wazero compiles a Go policy in about a second, but under the race
// detector its compiler (Go code in the test process) is many times
// slower, and several test processes starting at once would each compile
// the same modules. `make test` runs this package without -race first;
// the machine code it caches is the same whatever the host was built
// with, so the race-enabled tests that follow load it in milliseconds.
package warm

import (
	"context"
	"testing"

	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/internal/testenv"
)

// modules are every policy module a test loads through the shared cache.
var modules = map[string]policy.Hook{
	"./policies/transitions":                      policy.HookValidate,
	"./policies/reconcile":                        policy.HookReconcile,
	"./core/policy/testdata/flaky":                policy.HookValidate,
	"./internal/testenv/testdata/policies/refuse": policy.HookValidate,
}

func TestWarmCompileCache(t *testing.T) {
	ctx := context.Background()
	eng, err := policy.NewEngine(ctx, policy.EngineConfig{CacheDir: testenv.CacheDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	for pkg, hook := range modules {
		m, err := eng.Load(ctx, policy.Config{Name: pkg, Hook: hook, Path: testenv.Wasm(t, pkg)})
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		m.Close(ctx)
	}
}
