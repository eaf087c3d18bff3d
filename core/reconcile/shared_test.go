package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// The store shares decoded records among all their readers (store.Record):
// every path that reads a record and writes a changed one (API actions,
// the executor's steps, ends and failures, the reconciler's flags,
// unflagging, resize's old flavor, rebuild's fault) must copy what it
// changes. This runs them all on one node while a reader lists, shows and
// encodes every record in a loop (under -race, a write into a shared
// record may race with it) and asks the store after each round whether a
// record it decoded differs from its bytes (store.CheckDecoded: also the
// records a newer revision replaced since).
func TestActionPathsLeaveSharedRecordsAlone(t *testing.T) {
	n, sock := node(t, `fail_rebuild = "disk gone"`, `{ on_power_mismatch = "flag" }`, true)
	ctx := context.Background()
	n.Store.CheckDecoded()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var found []error
	wg.Go(func() {
		for {
			err := n.Store.CheckShared(ctx)
			recs, _, lerr := n.Store.List(ctx)
			for _, r := range recs {
				if _, e := json.Marshal(r.State); e != nil {
					err = errors.Join(err, e)
				}
				if _, e := json.Marshal(r.Transition); e != nil {
					err = errors.Join(err, e)
				}
			}
			err = errors.Join(err, listDetail(ctx, n))
			if err = errors.Join(err, lerr); err != nil {
				mu.Lock()
				found = append(found, err)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	})

	id, _, err := n.Client.Create(ctx, client.CreateRequest{Name: "shared", FlavorRef: "m1.tiny", ImageRef: "cirros", Metadata: map[string]string{"role": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	n.Settle(t, id)
	for _, a := range []struct {
		body string
		code int
	}{
		{`{"os-stop": null}`, http.StatusAccepted}, {`{"os-start": null}`, http.StatusAccepted}, {`{"reboot": {"type": "SOFT"}}`, http.StatusAccepted},
		{`{"resize": {"flavorRef": "m1.small"}}`, http.StatusAccepted}, {`{"confirmResize": null}`, http.StatusNoContent},
		{`{"resize": {"flavorRef": "m1.medium"}}`, http.StatusAccepted}, {`{"revertResize": null}`, http.StatusAccepted},
		{`{"rebuild": {"imageRef": "cirros"}}`, http.StatusAccepted},
	} {
		n.Action(t, id, a.body, a.code)
		n.Settle(t, id)
	}
	if in := n.Settle(t, id); in.Status != "ERROR" || in.Fault == nil {
		t.Fatalf("after the failing rebuild: %s, fault %+v", in.Status, in.Fault)
	}
	other := active(t, n)
	ctl(t, sock, "power", other, "crashed")
	flagged := func() bool {
		in, err := n.Client.Instance(ctx, other)
		return err == nil && len(in.Flags) == 1
	}
	testenv.Eventually(t, 10*time.Second, flagged, "never flagged")
	if _, err := n.Client.Unflag(ctx, other); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, flagged, "not flagged again")
	n.Action(t, other, `{"os-stop": null}`, http.StatusAccepted)
	n.Settle(t, other)
	if r := n.Call(t, "DELETE", "/v2.1/servers/"+id, ""); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Raw)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := n.Client.Instance(ctx, id)
		return client.IsNotFound(err)
	}, "never deleted")
	sweeps(t, n, 2)

	close(stop)
	wg.Wait()
	if err := n.Store.CheckShared(ctx); err != nil {
		found = append(found, err)
	}
	for _, err := range found {
		t.Error(err)
	}
}

// listDetail gets /v2.1/servers/detail and reads the whole answer.
func listDetail(ctx context.Context, n *testnode.Node) error {
	req, err := http.NewRequestWithContext(ctx, "GET", n.Base+"/v2.1/servers/detail", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", n.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("list: %d %s", resp.StatusCode, b)
	}
	return err
}
