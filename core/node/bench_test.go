package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// etcdOps reads the in-process etcd member's operation counters (etcd
// registers them with the default Prometheus registry).
func etcdOps(b *testing.B) map[string]float64 {
	b.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "etcd_mvcc_") || !strings.HasSuffix(name, "_total") {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[name] += m.GetCounter().GetValue()
		}
	}
	return out
}

// BenchmarkCreateToActive measures create→ACTIVE on one node with a
// zero-delay fake driver: the API's guarded write (with a policy call),
// the executor's watch wake-up and read, Spawn over gRPC to the plugin,
// and the final guarded write (another policy call). The node talks to an
// etcd member over TCP, and the baseline is a raw two-key CAS Txn over TCP
// on the same member, measured in the same run.
//
// Reported per create: server_ms (ACTIVE's history time minus BUILD's),
// client_ms (POST to a client seeing ACTIVE), raw_txn_ms, x_raw_txn
// (server_ms over raw_txn_ms; a create is two status changes), and the
// etcd operations one create cost (txn, put, range, delete).
func BenchmarkCreateToActive(b *testing.B) {
	m := testenv.Etcd(b)
	n := testnode.Start(b, testnode.Options{Store: fmt.Sprintf("endpoints = [%q]", m.ClientURL())})
	ctx := context.Background()
	rawPer, _ := testenv.RawTxn(b, m.ClientURL(), 500, 1)

	before := etcdOps(b)
	var server, cl time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		id, r, err := n.Client.Create(ctx, client.CreateRequest{Name: "bench", FlavorRef: "m1.tiny", ImageRef: "cirros"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.Client.Wait(ctx, id, r.RequestID, nil); err != nil {
			b.Fatal(err)
		}
		cl += time.Since(t0)
		h, err := n.Client.History(ctx, id)
		if err != nil || len(h) != 2 || h[1].To != "ACTIVE" {
			b.Fatalf("history %+v, %v", h, err)
		}
		server += h[1].At.Sub(h[0].At)
	}
	b.StopTimer()
	after := etcdOps(b)
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
	b.ReportMetric(ms(server), "server_ms")
	b.ReportMetric(ms(cl), "client_ms")
	b.ReportMetric(float64(rawPer)/1e6, "raw_txn_ms")
	b.ReportMetric(ms(server)/(float64(rawPer)/1e6), "x_raw_txn")
	// The client's polling (Instance and History reads) is in the range
	// count; the server's own ranges are reported separately by the
	// writes-per-action test below.
	for _, k := range []string{"txn", "put", "range", "delete"} {
		b.ReportMetric((after["etcd_mvcc_"+k+"_total"]-before["etcd_mvcc_"+k+"_total"])/float64(b.N), k+"/create")
	}
}

// BenchmarkStopStart alternates stop and start on one instance (each two
// status changes) and reports the time per action against a raw two-key
// CAS Txn on the same member, measured in the same run, and the etcd
// writes one action costs (puts and deletes, and etcd's count of
// multi-operation transactions). Ranges are left out: the benchmark's own
// polling would dominate them.
func BenchmarkStopStart(b *testing.B) {
	m := testenv.Etcd(b)
	n := testnode.Start(b, testnode.Options{Store: fmt.Sprintf("endpoints = [%q]", m.ClientURL())})
	ctx := context.Background()
	id, r, err := n.Client.Create(ctx, client.CreateRequest{Name: "bench", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		b.Fatal(err)
	}
	n.Client.Wait(ctx, id, r.RequestID, nil)
	rawPer, _ := testenv.RawTxn(b, m.ClientURL(), 500, 1)
	bodies := []any{map[string]any{"os-stop": nil}, map[string]any{"os-start": nil}}
	before := etcdOps(b)
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		r, err := n.Client.Action(ctx, id, bodies[i%2], 202)
		if err != nil {
			b.Fatal(err)
		}
		// Wait on the instance's status only (one range per poll).
		for {
			in, err := n.Client.Instance(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if in.Transition == nil || in.Transition.RequestID != r.RequestID {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	b.StopTimer()
	took := time.Since(start)
	after := etcdOps(b)
	per := took / time.Duration(b.N)
	b.ReportMetric(float64(per)/1e6, "action_ms")
	b.ReportMetric(float64(rawPer)/1e6, "raw_txn_ms")
	b.ReportMetric(float64(per)/float64(rawPer), "x_raw_txn")
	for _, k := range []string{"txn", "put", "delete"} {
		b.ReportMetric((after["etcd_mvcc_"+k+"_total"]-before["etcd_mvcc_"+k+"_total"])/float64(b.N), k+"/action")
	}
}

// BenchmarkResizeBesideCreate reports the server-side latency of a resize
// (four visible status changes: QUEUE_RESIZE, PREP_RESIZE, RESIZE,
// VERIFY_RESIZE, three driver calls) beside create→ACTIVE (two changes,
// one driver call) and a raw two-key CAS Txn, all measured in the same
// run on the same member, with a zero-delay fake driver.
func BenchmarkResizeBesideCreate(b *testing.B) {
	m := testenv.Etcd(b)
	n := testnode.Start(b, testnode.Options{Store: fmt.Sprintf("endpoints = [%q]", m.ClientURL())})
	ctx := context.Background()
	rawPer, _ := testenv.RawTxn(b, m.ClientURL(), 500, 1)
	var create, resize time.Duration
	b.ResetTimer()
	for range b.N {
		id, r, err := n.Client.Create(ctx, client.CreateRequest{Name: "bench", FlavorRef: "m1.tiny", ImageRef: "cirros"})
		if err != nil {
			b.Fatal(err)
		}
		n.Client.Wait(ctx, id, r.RequestID, nil)
		rr, err := n.Client.Action(ctx, id, map[string]any{"resize": map[string]string{"flavorRef": "m1.small"}}, 202)
		if err != nil {
			b.Fatal(err)
		}
		if in, err := n.Client.Wait(ctx, id, rr.RequestID, nil); err != nil || in.Status != "VERIFY_RESIZE" {
			b.Fatalf("resize ended %s, %v", in.Status, err)
		}
		h, err := n.Client.History(ctx, id)
		if err != nil || len(h) != 6 {
			b.Fatalf("history %d records, %v", len(h), err)
		}
		create += h[1].At.Sub(h[0].At)
		resize += h[5].At.Sub(h[2].At)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
	b.ReportMetric(ms(create), "create_ms")
	b.ReportMetric(ms(resize), "resize_ms")
	b.ReportMetric(float64(rawPer)/1e6, "raw_txn_ms")
	b.ReportMetric(ms(resize)/ms(create), "resize_x_create")
}

// BenchmarkCreateAuthOnOff measures create→ACTIVE as a client sees it
// (POST to seeing ACTIVE, every poll carrying the token) on a node with
// auth on beside one with auth off, alternating, in the same run and on
// the same etcd member: the difference is what checking tokens costs
// (each request's validation; issuing is not in the loop). Reported:
// on_ms, off_ms and overhead_pct, (on - off) / off.
func BenchmarkCreateAuthOnOff(b *testing.B) {
	m := testenv.Etcd(b)
	store := fmt.Sprintf("endpoints = [%q]", m.ClientURL())
	on := testnode.Start(b, testnode.Options{Name: "on", Store: store})
	off := testnode.Start(b, testnode.Options{Name: "off", Store: store, Extra: "auth {\n  enabled = false\n}\n"})
	ctx := context.Background()
	create := func(n *testnode.Node) time.Duration {
		t0 := time.Now()
		id, r, err := n.Client.Create(ctx, client.CreateRequest{Name: "bench", FlavorRef: "m1.tiny", ImageRef: "cirros"})
		if err != nil {
			b.Fatal(err)
		}
		in, err := n.Client.Wait(ctx, id, r.RequestID, nil)
		if err != nil || in.Status != "ACTIVE" {
			b.Fatalf("create ended %s, %v", in.Status, err)
		}
		return time.Since(t0)
	}
	// Warm both up (connections, policy instances) before measuring.
	for range 5 {
		create(on)
		create(off)
	}
	var tOn, tOff time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			tOn += create(on)
			tOff += create(off)
		} else {
			tOff += create(off)
			tOn += create(on)
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
	b.ReportMetric(ms(tOn), "on_ms")
	b.ReportMetric(ms(tOff), "off_ms")
	b.ReportMetric((ms(tOn)-ms(tOff))/ms(tOff)*100, "overhead_pct")
}
