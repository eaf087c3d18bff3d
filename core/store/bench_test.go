package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store/embedded"
)

// BenchmarkCommit measures Lucid's status change (2-key CAS + history
// record, JSON encoded) against the baseline of a raw etcd transaction
// with the same two compares and two puts, measured in the same run on
// the same embedded member. Reported: commits/s, raw_txn/s and the ratio.
func BenchmarkCommit(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", par), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			// Baseline: raw two-key CAS transactions, after a warm-up so
			// neither side pays for the fresh member's first writes.
			rawTxn := func(i int64) {
				k := fmt.Sprintf("/raw/%d", i)
				_, err := s.cli.Txn(ctx).If(
					clientv3.Compare(clientv3.ModRevision(k+"/state"), "=", 0),
					clientv3.Compare(clientv3.ModRevision(k+"/transition"), "=", 0),
				).Then(clientv3.OpPut(k+"/state", "x"), clientv3.OpPut(k+"/transition", "y")).Commit()
				if err != nil {
					b.Fatal(err)
				}
			}
			measure(500, par, func(i int64) { rawTxn(-i) })
			raw := measure(b.N, par, rawTxn)
			b.ResetTimer()
			now := time.Now()
			lucid := measure(b.N, par, func(i int64) {
				id := fmt.Sprintf("bench-%d", i)
				st := instance.State{ID: id, Name: id, VMState: instance.Building, Node: "n", CreatedAt: now, UpdatedAt: now}
				tr := instance.Transition{Action: instance.ActionCreate, RequestID: "req-" + id, Steps: []instance.Status{instance.StatusBuild}, Target: instance.StatusActive}
				if _, err := s.Commit(ctx, Record{}, Change{ID: id, State: &st, Transition: &tr, History: &instance.HistoryRecord{At: now, To: instance.StatusBuild}}); err != nil {
					b.Fatal(err)
				}
			})
			b.StopTimer()
			b.ReportMetric(lucid, "commits/s")
			b.ReportMetric(raw, "raw_txn/s")
			b.ReportMetric(lucid/raw, "x_baseline")
		})
	}
}

// measure runs fn n times on par goroutines and returns calls per second.
func measure(n, par int, fn func(i int64)) float64 {
	var next atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	for range par {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				fn(i)
			}
		}()
	}
	for range par {
		<-done
	}
	return float64(n) / time.Since(start).Seconds()
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	m, err := embedded.Start(context.Background(), embedded.Config{DataDir: filepath.Join(b.TempDir(), "etcd"), FastElection: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	s := New(m.Client(), "/bench")
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkPruneNothingDue measures a retention pass that finds nothing
// to remove, against the baseline of one List of the same instances (the
// ranged read the executor makes at start), in the same run: with 1,000
// instances that are young and short ("fresh": the pass reads nothing
// but the instances) and with 1,000 that are over the count cap but
// already trimmed ("trimmed": one key read per instance, the steady
// state of a busy store). Reported: passes/s, lists/s and the ratio.
func BenchmarkPruneNothingDue(b *testing.B) {
	for _, c := range []struct {
		name    string
		records int
		max     int
	}{{"fresh", 3, 1000}, {"trimmed", 3, 2}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			now := time.Now()
			r := Retention{MaxRecords: c.max}
			measure(1000, 16, func(i int64) {
				id := fmt.Sprintf("inst-%04d", i)
				st := instance.State{ID: id, Name: id, VMState: instance.Active, Node: "n", CreatedAt: now, UpdatedAt: now}
				rec := Record{}
				for range c.records {
					next, err := s.Commit(ctx, rec, Change{ID: id, State: &st, History: &instance.HistoryRecord{At: now, To: instance.StatusActive}})
					if err != nil {
						b.Fatal(err)
					}
					rec = next
				}
			})
			if _, err := s.PruneHistory(ctx, r, now); err != nil { // the trimming, once
				b.Fatal(err)
			}
			list := measure(20, 1, func(int64) {
				if _, _, err := s.List(ctx); err != nil {
					b.Fatal(err)
				}
			})
			b.ResetTimer()
			pass := measure(b.N, 1, func(int64) {
				p, err := s.PruneHistory(ctx, r, now)
				if err != nil || p != (Pruned{}) {
					b.Fatalf("pass removed %+v, %v; want nothing", p, err)
				}
			})
			b.StopTimer()
			b.ReportMetric(pass, "passes/s")
			b.ReportMetric(list, "lists/s")
			b.ReportMetric(pass/list, "x_baseline")
		})
	}
}
