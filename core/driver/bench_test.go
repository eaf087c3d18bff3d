package driver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lucid-project/lucid/sdk/driver"
)

// BenchmarkInspect measures Inspect round trips through the hosted fake
// plugin (subprocess, go-plugin, unix socket) against a baseline measured
// in the same run with the same b.N: the same sdk gRPC client and server,
// in this process, over a unix socket, in front of a driver that answers
// from a constant. The difference is the cost of the process boundary and
// the host's bookkeeping.
//
// Metrics: ns/op and calls/s through the plugin; baseline-ns/op; and
// x-baseline, the ratio of the two.
func BenchmarkInspect(b *testing.B) {
	p, _ := startFake(b, `{}`)
	ctx := context.Background()
	if err := p.Spawn(ctx, driver.Spec{ID: "bench"}); err != nil {
		b.Fatal(err)
	}
	base := inProcessGRPC(b)

	b.Run("serial", func(b *testing.B) {
		run := func(d driver.Driver) {
			for range b.N {
				if _, err := d.Inspect(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
			}
		}
		measure(b, base, p, run)
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8) // 16 callers on 2 cores, as in DESIGN.md's figure
		run := func(d driver.Driver) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := d.Inspect(ctx, "bench"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		measure(b, base, p, run)
	})
}

// measure times run against the baseline, then (timed by the benchmark)
// against the plugin, and reports both.
func measure(b *testing.B, base, target driver.Driver, run func(driver.Driver)) {
	b.StopTimer()
	start := time.Now()
	run(base)
	baseNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ResetTimer()
	b.StartTimer()
	run(target)
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(1e9/ns, "calls/s")
	b.ReportMetric(baseNs, "baseline-ns/op")
	b.ReportMetric(ns/baseNs, "x-baseline")
}

// inProcessGRPC serves a constant driver over gRPC on a unix socket in this
// process and returns the sdk client for it.
func inProcessGRPC(b *testing.B) driver.Driver { return inProcessGRPCWith(b, constant{}) }

// inProcessGRPCWith serves d the same way.
func inProcessGRPCWith(b *testing.B, d driver.Driver) driver.Driver {
	lis, err := net.Listen("unix", filepath.Join(b.TempDir(), "s"))
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	if err := (&driver.GRPCPlugin{Impl: d}).GRPCServer(nil, srv); err != nil {
		b.Fatal(err)
	}
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return driver.NewClient(cc)
}

// constant is a driver with one running instance that never changes; only
// Inspect is meaningful.
type constant struct{}

func (constant) Info(context.Context) (driver.Info, error) {
	return driver.Info{Name: "constant", Version: "0"}, nil
}
func (constant) Configure(context.Context, []byte) error  { return nil }
func (constant) Spawn(context.Context, driver.Spec) error { return driver.ErrUnsupported }
func (constant) Destroy(context.Context, string) error    { return driver.ErrUnsupported }
func (constant) Inspect(_ context.Context, id string) (driver.Instance, error) {
	return driver.Instance{ID: id, Power: driver.PowerRunning}, nil
}
func (constant) List(context.Context) ([]driver.Instance, error) { return nil, nil }
func (constant) PowerOff(context.Context, string) error          { return driver.ErrUnsupported }
func (constant) PowerOn(context.Context, string) error           { return driver.ErrUnsupported }
func (constant) Reboot(context.Context, string, bool) error      { return driver.ErrUnsupported }

// BenchmarkList10k measures one List of 10,000 instances through the
// hosted fake (its journal prefilled) against a baseline in the same run:
// the same sdk gRPC client and server in this process, in front of a
// driver that returns the same 10,000 instances from a slice. The
// reconciler lists once per sweep.
func BenchmarkList10k(b *testing.B) {
	const n = 10000
	journal := filepath.Join(b.TempDir(), "fake.journal")
	var lines []byte
	all := make([]driver.Instance, n)
	for i := range n {
		id := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		all[i] = driver.Instance{ID: id, Power: driver.PowerRunning}
		lines = fmt.Appendf(lines, `{"put":{"id":%q,"power":"running"}}`+"\n", id)
	}
	if err := os.WriteFile(journal, lines, 0o644); err != nil {
		b.Fatal(err)
	}
	p, _ := startFake(b, `{"state_file": "`+journal+`"}`)
	base := inProcessGRPCWith(b, listing(all))
	ctx := context.Background()
	if got, err := p.List(ctx); err != nil || len(got) != n || got[0] != all[0] || got[n-1] != all[n-1] {
		b.Fatalf("List through the host: %d instances, %v; want the %d journaled", len(got), err, n)
	}
	measure(b, base, p, func(d driver.Driver) {
		for range b.N {
			if _, err := d.List(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// listing is a constant driver whose List returns its instances.
type listing []driver.Instance

func (l listing) Info(context.Context) (driver.Info, error) {
	return constant{}.Info(context.Background())
}
func (listing) Configure(context.Context, []byte) error  { return nil }
func (listing) Spawn(context.Context, driver.Spec) error { return driver.ErrUnsupported }
func (listing) Destroy(context.Context, string) error    { return driver.ErrUnsupported }
func (listing) Inspect(context.Context, string) (driver.Instance, error) {
	return driver.Instance{}, driver.ErrNotFound
}
func (l listing) List(context.Context) ([]driver.Instance, error) { return l, nil }
func (listing) PowerOff(context.Context, string) error            { return driver.ErrUnsupported }
func (listing) PowerOn(context.Context, string) error             { return driver.ErrUnsupported }
func (listing) Reboot(context.Context, string, bool) error        { return driver.ErrUnsupported }

// BenchmarkStart measures launching the fake plugin (exec, handshake with
// AutoMTLS, Info, Configure) and closing it again.
func BenchmarkStart(b *testing.B) {
	sockDir := b.TempDir()
	ctx := context.Background()
	for b.Loop() {
		p, err := Start(ctx, Config{Name: "fake", Path: fakePath, SocketDir: sockDir})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
