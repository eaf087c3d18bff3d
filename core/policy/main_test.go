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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for pkg, out := range map[string]string{"./testdata/rawguest": RawGuestWasm, "../../policies/transitions": TransitionsWasm} {
		if err := policytest.Build(ctx, "", pkg, out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}
