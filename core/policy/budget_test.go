package policy_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/policy"
)

// gcCycles asks sdkguest how many garbage collections it has completed.
func gcCycles(t *testing.T, m *policy.Module) int {
	t.Helper()
	out, err := m.CallRaw(context.Background(), []byte(`{"instance":{"name":"memstats"}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	i := strings.Index(s, "numgc=")
	if i < 0 {
		t.Fatalf("memstats answered %s", s)
	}
	n, err := strconv.Atoi(strings.Fields(s[i+len("numgc="):])[0])
	if err != nil {
		t.Fatalf("memstats answered %s: %v", s, err)
	}
	return n
}

// TestPooledInstanceDoesNotWearOut calls one pooled instance of a policy
// built with the SDK until its garbage collector has completed hundreds of
// cycles, and checks that its linear memory stays flat after warm-up.
//
// What wore a pooled instance out was collection cycles, not calls: with
// SDK exports that never yielded, the collector's background workers never
// ran, and the cycle after the 129th-131st (the same with GOGC 1, 10 and
// 100, and 1 to 16 KiB of garbage per call) never finished; the heap then
// grew until the instance ran out of memory. So the guest collects often
// (gc_percent 1) and each call drops 20 KiB of garbage: 16,000 calls give
// ~315 cycles, and the test asserts at least twice the stall point. Against
// the SDK without the yield it fails at call ~8,300 (out of memory).
func TestPooledInstanceDoesNotWearOut(t *testing.T) {
	const (
		calls       = 16_000
		warmUp      = 2_000
		checkEvery  = 1_000
		stallCycles = 131 // where the SDK without the yield stalled
	)
	e, _ := newEngine(t)
	// A generous timeout: a call may run a whole collection, slow under
	// -race on a busy machine, and this test is not about time limits.
	m := load(t, e, policy.Config{Path: policy.SDKGuestWasm, PoolSize: 1, Timeout: 10 * time.Second,
		Settings: []byte(`{"gc_percent":1}`)})
	ctx := context.Background()
	body := []byte(`{"instance":{"name":"garbage 20480"}}`)
	start := time.Now()
	var flat uint32
	for i := 1; i <= calls; i++ {
		out, err := m.CallRaw(ctx, body)
		if err != nil || string(out) != `{"allow":true}` {
			t.Fatalf("call %d: %s, %v (memory %v pages)", i, out, err, m.IdlePages())
		}
		if i%checkEvery != 0 {
			continue
		}
		pages := m.IdlePages()
		if len(pages) != 1 {
			t.Fatalf("call %d: %d instances in the pool, want 1", i, len(pages))
		}
		switch {
		case i == warmUp:
			flat = pages[0]
			t.Logf("memory after %d calls (warm): %d pages", i, flat)
		case i > warmUp && pages[0] != flat:
			t.Fatalf("call %d: memory is %d pages, was %d after warm-up", i, pages[0], flat)
		}
	}
	cycles := gcCycles(t, m)
	t.Logf("%d calls, %d collections, %v", calls, cycles, time.Since(start))
	if cycles < 2*stallCycles {
		t.Errorf("only %d collections, want at least %d to show the instance survives the stall", cycles, 2*stallCycles)
	}
	if s := m.Stats(); s.Instances != 1 || s.Recycled != (policy.Recycled{}) || s.Failures != (policy.Failures{}) {
		t.Errorf("Stats() = %+v, want one instance, never recycled, no failures", s)
	}
}

// TestRecycleAfterMaxCalls checks that an instance is retired after
// MaxCalls calls, between calls, without failing any.
func TestRecycleAfterMaxCalls(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{Path: policy.SDKGuestWasm, PoolSize: 1, MaxCalls: 3, Timeout: 10 * time.Second})
	for i := 1; i <= 7; i++ {
		if v, err := m.Validate(context.Background(), req("")); err != nil || !v.Allow {
			t.Fatalf("call %d: %+v, %v", i, v, err)
		}
	}
	want := policy.Stats{Name: "test", Hook: policy.HookValidate, Calls: 7, Instances: 3, Recycled: policy.Recycled{Calls: 2}}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() =\n%+v, want\n%+v", got, want)
	}
}

// TestRecycleConcurrent retires instances after every second call while
// eight callers share a pool of two: no call may fail.
func TestRecycleConcurrent(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{Path: policy.SDKGuestWasm, PoolSize: 2, MaxCalls: 2, Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if v, err := m.Validate(context.Background(), req("")); err != nil || !v.Allow {
					errs <- fmt.Errorf("%+v, %v", v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// 200 calls, two per instance: 100 instances, of which the last one
	// or two may still be in the pool with one call served.
	s := m.Stats()
	if s.Calls != 200 || s.Failures != (policy.Failures{}) || s.Recycled.Calls < 99 || s.Recycled.Calls > 100 || s.Instances != s.Recycled.Calls+uint64(len(m.IdlePages())) {
		t.Errorf("Stats() = %+v with %d idle, want 200 calls, no failures, 99-100 recycled", s, len(m.IdlePages()))
	}
}

// TestRecycleOnMemory runs a guest that leaks 64 KiB per call. Without a
// memory budget below its limit it dies of memory; with MaxMemoryMiB it is
// recycled first and no call fails.
func TestRecycleOnMemory(t *testing.T) {
	const calls = 300 // 18.75 MiB of leak, more than the limit
	e, _ := newEngine(t)

	unbudgeted := load(t, e, policy.Config{Path: policy.SDKGuestWasm, PoolSize: 1, MemoryLimitMiB: 16, MaxMemoryMiB: 16, Timeout: 10 * time.Second})
	var err error
	for i := 0; i < calls && err == nil; i++ {
		_, err = unbudgeted.Validate(context.Background(), req("leak"))
	}
	if !errors.Is(err, policy.ErrMemory) {
		t.Fatalf("leaking without a memory budget: err = %v, want ErrMemory", err)
	}

	m := load(t, e, policy.Config{Path: policy.SDKGuestWasm, PoolSize: 1, MemoryLimitMiB: 16, MaxMemoryMiB: 8, Timeout: 10 * time.Second})
	for i := 1; i <= calls; i++ {
		if v, err := m.Validate(context.Background(), req("leak")); err != nil || !v.Allow {
			t.Fatalf("call %d: %+v, %v", i, v, err)
		}
		if pages := m.IdlePages(); len(pages) == 1 && pages[0] > 8*16 {
			t.Fatalf("call %d: an instance of %d pages went back to the pool, above max memory (128)", i, pages[0])
		}
	}
	s := m.Stats()
	t.Logf("%+v", s)
	if s.Failures != (policy.Failures{}) || s.Recycled.Calls != 0 || s.Recycled.Memory < 2 || s.Instances != 1+s.Recycled.Memory {
		t.Errorf("Stats() = %+v, want no failures and several instances recycled for memory", s)
	}
}
