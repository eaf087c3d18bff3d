//go:build wasip1

// Command flaky is a test policy that fails on purpose: every Nth call it
// traps, reports an error or runs past its time limit, and otherwise it
// answers normally. It serves both hooks, so end-to-end tests can check
// that a failing policy never makes a record lie. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o flaky.wasm ./core/policy/testdata/flaky
//
// Settings (all optional):
//
//	every    = 3        # fail calls 3, 6, 9, ... (default 1: every call); at least 1
//	how      = "trap"   # "trap" (default): a wasm trap, out-of-bounds memory (ErrTrap)
//	                    # "error": the SDK's {"error": ...} answer (ErrGuest)
//	                    # "timeout": loop until the host's time limit (ErrTimeout)
//	allow    = true     # the validate verdict of the other calls (default true)
//	decision = "leave"  # the reconcile decision of the other calls: correct, flag
//	                    # or leave (default "leave"; correct names no status)
//
// Calls are counted per instance. The host replaces an instance after a
// trap or a timeout, and the count starts again, so with one instance in
// the pool (PoolSize 1) every Nth call of the module fails.
package main

import (
	"fmt"
	"unsafe"

	"github.com/lucid-project/lucid/sdk/policy"
)

type settings struct {
	Every    *int                 `json:"every"`
	How      string               `json:"how"`
	Allow    *bool                `json:"allow"`
	Decision *policy.DecisionKind `json:"decision"`
}

var (
	every    = 1
	how      = "trap"
	allow    = true
	decision = policy.DecisionLeave
	calls    int
)

func init() {
	policy.SetInfo(policy.Info{Name: "flaky", Version: "1.0.0"})
	policy.HandleInit(configure)
	policy.HandleValidate(func(policy.ValidateRequest) policy.Verdict {
		fail()
		if allow {
			return policy.Allow()
		}
		return policy.Deny(fmt.Sprintf("flaky denies call %d", calls))
	})
	policy.HandleReconcile(func(policy.ReconcileRequest) policy.Decision {
		fail()
		return policy.Decision{Decision: decision, Reason: fmt.Sprintf("flaky answers call %d", calls)}
	})
}

func configure(raw []byte) error {
	var s settings
	if err := policy.DecodeSettings(raw, &s); err != nil {
		return err
	}
	if s.Every != nil {
		if *s.Every < 1 {
			return fmt.Errorf("setting \"every\": want at least 1, got %d", *s.Every)
		}
		every = *s.Every
	}
	switch s.How {
	case "":
	case "trap", "error", "timeout":
		how = s.How
	default:
		return fmt.Errorf("setting \"how\": want trap, error or timeout, got %q", s.How)
	}
	if s.Allow != nil {
		allow = *s.Allow
	}
	if s.Decision != nil {
		switch *s.Decision {
		case policy.DecisionCorrect, policy.DecisionFlag, policy.DecisionLeave:
			decision = *s.Decision
		default:
			return fmt.Errorf("setting \"decision\": want correct, flag or leave, got %q", *s.Decision)
		}
	}
	return nil
}

// sink keeps the out-of-bounds read from being optimized away.
var sink byte

// fail counts the call and fails it the configured way if it is an Nth.
func fail() {
	calls++
	if calls%every != 0 {
		return
	}
	switch how {
	case "trap":
		// Read the last byte of the 4 GiB address space, beyond any
		// linear memory the host allows below its 4096 MiB maximum: the
		// wasm load traps, which Go cannot recover.
		var b byte
		p := unsafe.Pointer(&b)
		sink = *(*byte)(unsafe.Add(p, 0xffffffff-int(uintptr(p))))
	case "error":
		panic(fmt.Sprintf("flaky fails call %d (every %d)", calls, every))
	case "timeout":
		for {
			sink++
		}
	}
}

func main() {}
