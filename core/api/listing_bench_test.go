package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testnode"
)

// BenchmarkListServers lists 1,000 settled servers with their details in
// one page (GET /v2.1/servers/detail?limit=1000) from a real node on an
// embedded etcd: the listing `lucid bench throughput` times in phase 6,
// without the load generator's decoding. Run it with -cpuprofile to see
// where a listing's CPU goes.
func BenchmarkListServers(b *testing.B) {
	const instances = 1000
	n := testnode.Start(b, testnode.Options{Extra: "auth { enabled = false }"})
	var next atomic.Int64
	var wg sync.WaitGroup
	ids := make([]string, instances)
	errs := make([]error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < instances && errs[w] == nil; i = int(next.Add(1)) - 1 {
				ids[i], _, errs[w] = n.Client.Create(context.Background(), client.CreateRequest{Name: fmt.Sprintf("list-%d", i), FlavorRef: "m1.tiny", ImageRef: "cirros"})
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	for _, id := range ids {
		n.Settle(b, id)
	}
	url := n.Base + "/v2.1/servers/detail?limit=1000"
	get := func() int {
		req, err := http.NewRequestWithContext(context.Background(), "GET", url, nil)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		nb, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("list: %d, %v", resp.StatusCode, err)
		}
		return int(nb)
	}
	size := get()
	for b.Loop() {
		get()
	}
	b.ReportMetric(float64(size), "body_bytes")
}
