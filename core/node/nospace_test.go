package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// A node whose store fills up answers writes with 503 and a message that
// says why, keeps answering reads, and logs it; once the operator lets
// retention free space (here: a shorter deleted_ttl) the node reclaims it
// before it registers, disarms etcd's alarm, and every action accepted
// before finishes.
func TestStoreFullIs503ThenRecovers(t *testing.T) {
	dir := t.TempDir()
	storeBlock := fmt.Sprintf("embedded {\n    data_dir  = %q\n    quota_mib = 16\n  }", filepath.Join(dir, "etcd"))
	path := testnode.Config(t, testnode.Options{Dir: dir, Store: storeBlock})
	n := testnode.StartConfig(t, path)
	ctx := context.Background()

	// Fill most of the quota with the history of an instance deleted a
	// minute ago, as a big deployment would: not due for a week. Stop at
	// 14.5 MiB of file or 13.2 MiB of records, whichever comes first.
	// The file is 5-40 % bigger than the records, more on a busy machine
	// (where readers hold freed pages longer); and etcd's size lags by up
	// to its 100 ms commit interval, so on a fast machine a loop that
	// watched the size alone overshot the quota.
	seq := 0
	for range 270 {
		sp, err := n.Store.Space(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if sp.Size >= 29<<19 {
			break
		}
		seq++
		rec, _ := json.Marshal(map[string]any{"schema": 1, "seq": seq, "at": time.Now().UTC(), "to": "ACTIVE", "message": strings.Repeat("x", 50<<10)})
		testenv.PutRaw(t, n.EtcdURL, fmt.Sprintf("/lucid/history/junk/%020d", seq), string(rec))
	}
	testenv.PutRaw(t, n.EtcdURL, "/lucid/deleted/junk", fmt.Sprintf(`{"at":%q,"seq":%d}`, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano), seq))

	// Clients create instances until the store is full. A 202 means the
	// instance exists, a 503 that it does not: etcd applies the write
	// that crosses the quota and answers NOSPACE, and the store tells
	// which it was.
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		full     testnode.Response
		wg       sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				id, r, err := n.Client.Create(ctx, client.CreateRequest{Name: fmt.Sprintf("vm-%d-%d", w, i), FlavorRef: "m1.tiny", ImageRef: "cirros"})
				mu.Lock()
				switch {
				case err == nil:
					accepted[id] = true
				case r.Status == http.StatusServiceUnavailable:
					if full.Code == 0 {
						full = testnode.Response{Code: r.Status, Raw: err.Error()}
					}
					mu.Unlock()
					return
				default:
					// Under -race on a busy machine the policy may time
					// out (403, nothing created): not what this test is
					// about.
					t.Logf("create: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if full.Code != http.StatusServiceUnavailable || !strings.Contains(full.Raw, "503 serviceUnavailable: store: commit ") ||
		!strings.Contains(full.Raw, "store full: etcd's space quota is used up and it refuses writes until space is reclaimed; retry later") {
		t.Fatalf("create on a full store: %d %s; want 503 serviceUnavailable saying the store is full", full.Code, full.Raw)
	}
	var someID string
	for id := range accepted {
		someID = id
		break
	}
	r := n.Call(t, "POST", "/v2.1/servers", `{"server":{"name":"one-more","flavorRef":"m1.tiny","imageRef":"cirros"}}`)
	if body, _ := r.Body["serviceUnavailable"].(map[string]any); r.Code != http.StatusServiceUnavailable || body == nil || body["code"] != float64(503) {
		t.Fatalf("create on a full store: %d %s; want OpenStack's 503 body", r.Code, r.Raw)
	}
	if r := n.Call(t, "GET", "/v2.1/servers", ""); r.Code != http.StatusOK {
		t.Fatalf("list on a full store: %d %s", r.Code, r.Raw)
	}
	if r := n.Call(t, "POST", "/v2.1/servers/"+someID+"/action", `{"os-stop": null}`); r.Code != http.StatusServiceUnavailable && r.Code != http.StatusConflict {
		t.Fatalf("stop on a full store: %d %s; want 503 (or 409 while its create is still in flight)", r.Code, r.Raw)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		l := n.Logs.String()
		return strings.Contains(l, "api: store full; write refused") && strings.Contains(l, "store full: etcd raised its NOSPACE alarm") &&
			strings.Contains(l, "reclaimed too little to accept writes again")
	}, "the node did not log the full store and its failed recovery:\n%s", n.Logs.String())
	t.Logf("%d creates accepted before the store was full", len(accepted))

	// The operator keeps deleted histories for a second only and restarts.
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(src, "\nhistory { deleted_ttl = \"1s\" }\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	n = testnode.StartConfig(t, path)
	if l := n.Logs.String(); !strings.Contains(l, "store writable again") {
		t.Fatalf("restarted node did not reclaim the store:\n%s", l)
	}
	var all []client.Instance
	testenv.Eventually(t, 30*time.Second, func() bool {
		var err error
		if all, err = n.Client.Instances(ctx); err != nil {
			t.Fatal(err)
		}
		for _, in := range all {
			if in.Transition != nil {
				return false
			}
		}
		return true
	}, "actions accepted before the store was full are still in flight")
	if len(all) != len(accepted) {
		t.Fatalf("%d instances after recovery, want the %d accepted", len(all), len(accepted))
	}
	for _, in := range all {
		if !accepted[in.ID] {
			t.Fatalf("instance %s (%s) exists, but its create was answered 503", in.ID, in.Name)
		}
		if in.Status != "ACTIVE" {
			t.Fatalf("instance %s accepted before the store was full ended %s, want ACTIVE", in.ID, in.Status)
		}
	}
	id, _ := n.Create(t, "after")
	if in := n.Settle(t, id); in.Status != "ACTIVE" {
		t.Fatalf("create after recovery ended %s", in.Status)
	}
	if h, err := n.Client.History(ctx, "junk"); !client.IsNotFound(err) {
		t.Fatalf("junk history after recovery: %d records, %v; want none (404)", len(h), err)
	}
}
