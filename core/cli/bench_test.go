package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
)

// BenchmarkCreateToActive measures create→ACTIVE with a zero-delay fake
// driver on one node: the API's transition write, the executor's watch
// wake-up, the plugin Spawn over gRPC, two policy calls and the final
// guarded write. Reported per create:
//   - server_ms: ACTIVE history time minus BUILD history time (server-side),
//   - client_ms: POST to the first GET that shows ACTIVE (polled),
//   - raw_txn_ms: one raw 2-key etcd commit on the same member, the
//     baseline measured in the same run (a create needs two commits).
func BenchmarkCreateToActive(b *testing.B) {
	n := startNode(b, `boot_delay = "0s"`, `{}`)
	ctx := context.Background()
	// Baseline: a guarded commit of a fresh instance on the same store.
	var rawTotal time.Duration
	for i := range 200 {
		id := fmt.Sprintf("baseline-%d", i)
		st := instance.State{ID: id, VMState: instance.Active}
		t0 := time.Now()
		if _, err := n.Store.Commit(ctx, store.Record{}, store.Change{ID: id, State: &st}); err != nil {
			b.Fatal(err)
		}
		rawTotal += time.Since(t0)
	}
	var server, client time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		id, _ := n.create(b, "bench")
		for {
			code, s := n.server(b, id)
			if code == http.StatusOK && s["status"] == "ACTIVE" {
				break
			}
			if code != http.StatusOK || s["status"] != "BUILD" {
				b.Fatalf("unexpected %d %v", code, s)
			}
		}
		client += time.Since(t0)
		h := n.history(b, id)
		a, _ := time.Parse(time.RFC3339Nano, h[0].At)
		z, _ := time.Parse(time.RFC3339Nano, h[1].At)
		server += z.Sub(a)
	}
	b.StopTimer()
	ms := func(d time.Duration, n int) float64 { return float64(d) / float64(n) / 1e6 }
	b.ReportMetric(ms(server, b.N), "server_ms")
	b.ReportMetric(ms(client, b.N), "client_ms")
	b.ReportMetric(ms(rawTotal, 200), "commit_ms")
}
