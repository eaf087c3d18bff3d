package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/internal/testenv"
	sdk "github.com/lucid-project/lucid/sdk/policy"
	"github.com/lucid-project/lucid/sdk/policy/policytest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// benchRequest is a realistic validate request: a resize advancing a step.
func benchRequest() ValidateRequest {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	p, _ := instance.Lookup(instance.ActionResize)
	tr := p.Begin(instance.StatusActive, instance.State{}, "req-7f3a", "node-1", instance.Request{Flavor: &instance.Flavor{ID: "m1.large", VCPUs: 4, RAMMB: 8192, DiskGB: 80}})
	tr.StartedAt, tr.StepStartedAt = now, now
	return ValidateRequest{
		Now: now, Action: instance.ActionResize, Cause: instance.CauseDriver,
		From: instance.StatusQueueResize, To: instance.StatusPrepResize,
		Instance: instance.State{ID: "5d1c3b1e-0d7e-4d8e-9a53-2a4f1f0c9e11", Name: "web-1", VMState: instance.Active,
			PowerState: instance.Running, Flavor: instance.Flavor{ID: "m1.small", VCPUs: 1, RAMMB: 2048, DiskGB: 20}, Image: instance.Image{ID: "debian-12", Source: "fake://debian-12"}, Node: "node-1",
			CreatedAt: now, UpdatedAt: now, HistorySeq: 12},
		Transition: tr,
	}
}

// BenchmarkValidate measures calls/s of the default Go policy through the
// host, serial and parallel, against two baselines measured in the same
// run: the same JSON work done natively (encode request, decode it as the
// guest does, encode and decode the verdict), and a bare exported call
// into the same module (lucid_abi_version), which is the floor of any call.
func BenchmarkValidate(b *testing.B) {
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: testenv.CacheDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	m, err := e.Load(ctx, Config{Name: "validate", Hook: HookValidate, Path: TransitionsWasm})
	if err != nil {
		b.Fatal(err)
	}
	req := benchRequest()
	if v, err := m.Validate(ctx, req); err != nil || !v.Allow {
		b.Fatalf("Validate = %+v, %v", v, err)
	}
	perSec := func(b *testing.B) float64 { return float64(b.N) / b.Elapsed().Seconds() }
	var native float64

	b.Run("native-json", func(b *testing.B) {
		for b.Loop() {
			body, _ := json.Marshal(req.wire())
			var q sdk.ValidateRequest
			if err := json.Unmarshal(body, &q); err != nil {
				b.Fatal(err)
			}
			out, _ := json.Marshal(sdk.Allow())
			if _, err := parseVerdict(out); err != nil {
				b.Fatal(err)
			}
		}
		native = perSec(b)
		b.ReportMetric(native, "calls/s")
	})
	b.Run("bare-call", func(b *testing.B) {
		g, err := m.acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer m.release(g, nil)
		fn := g.mod.ExportedFunction(exportABIVersion)
		for b.Loop() {
			if _, err := fn.Call(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(perSec(b), "calls/s")
	})
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Validate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(perSec(b), "calls/s")
		if native > 0 {
			b.ReportMetric(perSec(b)/native, "x-native")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Validate(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(perSec(b), "calls/s")
		if native > 0 {
			b.ReportMetric(perSec(b)/native, "x-native")
		}
	})
}

// BenchmarkGuestParts splits the guest side of a validate call into its
// parts, on testdata/benchguest: each sub-benchmark calls one bench_*
// export with the request of BenchmarkValidate on a warm instance of a
// module loaded as the host loads policies ("sdk" is the SDK's whole
// lucid_validate, with a handler that always allows). noop is the cost of a
// call that only takes its buffer; calls and loop are 10,000 function calls
// and loop iterations, the unit costs behind everything else.
func BenchmarkGuestParts(b *testing.B) {
	ctx := context.Background()
	out := buildBenchGuest(b)
	e, err := NewEngine(ctx, EngineConfig{CacheDir: testenv.CacheDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	m, err := e.Load(ctx, Config{Name: "bench", Hook: HookValidate, Path: out})
	if err != nil {
		b.Fatal(err)
	}
	g, err := m.acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer m.release(g, nil)
	benchGuestParts(b, g.mod, "noop", "valid", "map", "struct", "notime", "timeparse", "marshal", "alloc8k", "calls", "loop", "sdk")
}

// BenchmarkCloseOnContextDone runs a few of BenchmarkGuestParts under bare
// wazero runtimes with and without WithCloseOnContextDone, which the host
// needs for timeouts: with it, wazero calls out of the machine code at
// every loop header, and Go's wasm code branches between basic blocks
// through its function's entry loop, so most jumps pay for that check.
func BenchmarkCloseOnContextDone(b *testing.B) {
	ctx := context.Background()
	bin, err := os.ReadFile(buildBenchGuest(b))
	if err != nil {
		b.Fatal(err)
	}
	for _, closeOnDone := range []bool{false, true} {
		b.Run(fmt.Sprintf("close=%v", closeOnDone), func(b *testing.B) {
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
			defer rt.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, rt)
			mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
			if err != nil {
				b.Fatal(err)
			}
			benchGuestParts(b, mod, "noop", "calls", "loop", "struct", "sdk")
		})
	}
}

func buildBenchGuest(b *testing.B) string {
	out := filepath.Join(b.TempDir(), "benchguest.wasm")
	if err := policytest.Build(context.Background(), "", "./testdata/benchguest", out); err != nil {
		b.Fatal(err)
	}
	return out
}

// benchGuestParts calls bench_<part> (lucid_validate for "sdk") of mod
// with the request of BenchmarkValidate.
func benchGuestParts(b *testing.B, mod api.Module, parts ...string) {
	ctx := context.Background()
	body, err := json.Marshal(benchRequest().wire())
	if err != nil {
		b.Fatal(err)
	}
	for _, part := range parts {
		b.Run(part, func(b *testing.B) {
			alloc, fn := mod.ExportedFunction("bench_alloc"), mod.ExportedFunction("bench_"+part)
			if part == "sdk" {
				alloc, fn = mod.ExportedFunction(exportAlloc), mod.ExportedFunction(HookValidate.export())
			}
			for b.Loop() {
				res, err := alloc.Call(ctx, uint64(len(body)))
				if err != nil {
					b.Fatal(err)
				}
				mod.Memory().Write(uint32(res[0]), body)
				if _, err := fn.Call(ctx, res[0], uint64(len(body))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
