package policy

import (
	"context"
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
	return m.Run()
}
