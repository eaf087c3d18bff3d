package policy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/policy/policytest"
)

// The real modules the tests load, built once per test binary. They are
// exported (in the test build only) for the policy_test package.
var (
	// RawGuestWasm is testdata/rawguest: ABI v1 by hand, misbehaving on
	// request.
	RawGuestWasm string
	// TransitionsWasm is policies/transitions, the default validate policy.
	TransitionsWasm string
	// SDKGuestWasm is testdata/sdkguest: built with sdk/policy, trivial
	// unless asked to make garbage, leak or flood.
	SDKGuestWasm string
	// FlakyWasm is testdata/flaky, which fails every Nth call.
	FlakyWasm string
	// TestCacheDir is a compilation cache for this test binary, removed at
	// its end: tests that do not test the cache itself share it, so each
	// module is compiled once per run, and nothing is written to the
	// user's cache.
	TestCacheDir string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lucid-policy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	RawGuestWasm = filepath.Join(dir, "rawguest.wasm")
	TransitionsWasm = filepath.Join(dir, "transitions.wasm")
	SDKGuestWasm = filepath.Join(dir, "sdkguest.wasm")
	FlakyWasm = filepath.Join(dir, "flaky.wasm")
	TestCacheDir = filepath.Join(dir, "cache")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	builds := map[string]string{
		"./testdata/rawguest":        RawGuestWasm,
		"./testdata/sdkguest":        SDKGuestWasm,
		"./testdata/flaky":           FlakyWasm,
		"../../policies/transitions": TransitionsWasm,
	}
	errs := make(chan error, len(builds))
	for pkg, out := range builds {
		go func() { errs <- policytest.Build(ctx, "", pkg, out) }()
	}
	failed := false
	for range builds {
		if err := <-errs; err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	// No deadline of its own: on a busy machine it can take minutes, and
	// go test's -timeout still bounds it.
	if err := precompile(context.Background(), RawGuestWasm, SDKGuestWasm, FlakyWasm); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// precompile compiles the modules the tests load into TestCacheDir, all at
// once: under -race a cold compile of a Go policy takes 20-50 s on two
// cores, about 40 times longer than loading it from the cache, and running
// them side by side shortens the wait.
func precompile(ctx context.Context, paths ...string) error {
	e, err := NewEngine(ctx, EngineConfig{CacheDir: TestCacheDir})
	if err != nil {
		return err
	}
	defer e.Close(ctx)
	errs := make(chan error, len(paths))
	for _, p := range paths {
		go func() {
			m, err := e.Load(ctx, Config{Name: filepath.Base(p), Hook: HookValidate, Path: p})
			if err == nil {
				err = m.Close(ctx)
			}
			errs <- err
		}()
	}
	var all []error
	for range paths {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
