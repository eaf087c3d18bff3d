package reconcile_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// BenchmarkSweep measures one reconciler sweep over N instances on one
// node whose fake driver holds N VMs (N = $LUCID_BENCH_SWEEP_N, default
// 10,000), 1 % of them powered off behind Lucid's back so that the sweep
// has cases to decide, beside a raw ranged read of the same instance keys
// over TCP in the same run. Reported: sweep_ms, raw_range_ms, x_raw and
// policy_calls per sweep (only cases reach the policy).
//
// Every sweep after the first finds the same disagreements flagged
// (on_power_mismatch = flag keeps them), so each sweep decides the same
// number of cases.
func BenchmarkSweep(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("LUCID_BENCH_SWEEP_N")); err == nil && v > 0 {
		n = v
	}
	nd, sock := reconciling(b, "", `{ on_power_mismatch = "flag" }`, "1h", true)
	ctx := context.Background()
	plant(b, nd.Store, n)
	ctlClient := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	parallel(b, n, func(i int) error {
		power := "running"
		if i%100 == 0 {
			power = "shutdown" // behind Lucid's back
		}
		resp, err := ctlClient.Post("http://fake/vms", "application/json", bytes.NewReader([]byte(fmt.Sprintf(`{"id":%q,"power":%q}`, benchID(i), power))))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("add VM: %d", resp.StatusCode)
		}
		return nil
	})
	keys, raw := testenv.RangeRaw(b, nd.EtcdURL, "/lucid/instances/")
	if keys != n {
		b.Fatalf("raw range read %d keys, want %d", keys, n)
	}
	var sweep time.Duration
	calls := 0
	b.ResetTimer()
	for range b.N {
		rep, err := nd.Reconciler.Sweep(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if rep.Checked != n || rep.VMs != n {
			b.Fatalf("sweep checked %d records and %d VMs, want %d", rep.Checked, rep.VMs, n)
		}
		sweep += rep.Took
		calls += rep.Cases
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(sweep)/float64(b.N), "sweep_ms")
	b.ReportMetric(ms(raw), "raw_range_ms")
	b.ReportMetric(float64(sweep)/float64(b.N)/float64(raw), "x_raw")
	b.ReportMetric(float64(calls)/float64(b.N), "policy_calls")
	b.ReportMetric(float64(n), "instances")
}

func benchID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// plant writes n settled ACTIVE records owned by the test node.
func plant(b *testing.B, s *store.Store, n int) {
	now := time.Now().UTC()
	parallel(b, n, func(i int) error {
		st := instance.State{ID: benchID(i), Name: "bench", VMState: instance.Active, PowerState: instance.Running,
			Flavor: instance.Flavor{ID: "m1.tiny", VCPUs: 1, RAMMB: 512, DiskGB: 1}, Image: instance.Image{ID: "cirros"},
			Project: "lucid", User: "lucid", Node: "test", Driver: "fake", CreatedAt: now, UpdatedAt: now}
		_, err := s.Commit(context.Background(), store.Record{}, store.Change{ID: st.ID, State: &st,
			History: &instance.HistoryRecord{At: now, To: instance.StatusActive, Action: instance.ActionCreate, Cause: instance.CauseAPI}})
		return err
	})
}

// parallel runs fn(0..n-1) on 16 goroutines, failing on the first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}
