package driver

import (
	"context"
	"net"
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
func inProcessGRPC(b *testing.B) driver.Driver {
	lis, err := net.Listen("unix", filepath.Join(b.TempDir(), "s"))
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	if err := (&driver.GRPCPlugin{Impl: constant{}}).GRPCServer(nil, srv); err != nil {
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
