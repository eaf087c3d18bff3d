package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// BenchmarkSpawn measures Spawn with a journaled state_file that already
// holds 10,000 instances, against a baseline measured in the same run
// with the same b.N: the same fake without a state file. x-baseline is
// what persistence costs per change.
func BenchmarkSpawn(b *testing.B) {
	ctx := context.Background()
	prefill := func(f *fake) {
		for i := range 10000 {
			if err := f.Spawn(ctx, driver.Spec{ID: fmt.Sprintf("pre-%05d", i)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	base := newFake(io.Discard)
	prefill(base)
	journaled := newFake(io.Discard)
	if err := journaled.Configure(ctx, []byte(stateConfig(filepath.Join(b.TempDir(), "fake.journal")))); err != nil {
		b.Fatal(err)
	}
	defer journaled.Close()
	prefill(journaled)

	run := func(f *fake, prefix string) {
		for i := range b.N {
			if err := f.Spawn(ctx, driver.Spec{ID: fmt.Sprintf("%s-%d", prefix, i)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	start := time.Now()
	run(base, "base")
	baseNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ResetTimer()
	b.StartTimer()
	run(journaled, "bench")
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(baseNs, "baseline-ns/op")
	b.ReportMetric(ns/baseNs, "x-baseline")
}

// BenchmarkList10k measures List of 10,000 instances in process against a
// baseline in the same run: copying a 10,000-element slice of the same
// type, the least any List must do.
func BenchmarkList10k(b *testing.B) {
	ctx := context.Background()
	f := newFake(io.Discard)
	for i := range 10000 {
		if err := f.Spawn(ctx, driver.Spec{ID: fmt.Sprintf("vm-%05d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	src, err := f.List(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	start := time.Now()
	for range b.N {
		dst := make([]driver.Instance, len(src))
		copy(dst, src)
	}
	baseNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ResetTimer()
	b.StartTimer()
	for range b.N {
		if _, err := f.List(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(baseNs, "baseline-ns/op")
	b.ReportMetric(ns/baseNs, "x-baseline")
}
