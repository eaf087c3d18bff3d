package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lucid-project/lucid/internal/testnode"
)

// A validate policy that fails on every Nth call, however it fails, never
// makes a record lie: after many stops and starts on several instances at
// once, every instance's record says what its VM is (ACTIVE with the VM
// running, SHUTOFF with it shut down), or ERROR with a fault naming the
// policy, never the opposite of what the driver did. Every history is a
// chain of the action table's own pairs, and the policy did fail (the
// node's metrics count it), so the test exercised what it claims.
func TestFailingPolicyNeverLies(t *testing.T) {
	for _, how := range []string{"trap", "error"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "fake.sock")
			n := testnode.Start(t, testnode.Options{
				Dir:            dir,
				Driver:         fmt.Sprintf("control_socket = %q", sock),
				ValidateModule: "./core/policy/testdata/flaky",
				Validate:       fmt.Sprintf(`{ every = 3, how = %q }`, how),
			})
			const instances, cycles = 4, 6
			var ids []string
			for i := range instances {
				id, _ := n.Create(t, fmt.Sprintf("vm-%d", i))
				ids = append(ids, id)
			}
			for _, id := range ids {
				n.Settle(t, id)
			}

			var wg sync.WaitGroup
			errs := make(chan error, instances)
			for _, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- cycle(t, n, id, cycles)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}

			vms := vmPower(t, sock)
			legal := map[[2]string]bool{
				{"", "BUILD"}: true, {"BUILD", "ACTIVE"}: true,
				{"ACTIVE", "STOPPING"}: true, {"STOPPING", "SHUTOFF"}: true,
				{"SHUTOFF", "STARTING"}: true, {"STARTING", "ACTIVE"}: true,
			}
			for _, id := range ids {
				in := n.Settle(t, id)
				switch {
				case in.Status == "ACTIVE" && vms[id] == "running", in.Status == "SHUTOFF" && vms[id] == "shutdown":
				case in.Status == "ERROR" && in.Fault != nil && strings.Contains(in.Fault.Message, "policy"):
				default:
					t.Errorf("%s: record %s (fault %+v), VM %q", id, in.Status, in.Fault, vms[id])
				}
				for _, h := range n.History(t, id) {
					if !legal[[2]string{h.From, h.To}] && !(h.To == "ERROR" && h.Cause == "policy") {
						t.Errorf("%s: history record %d %s → %s (%s, %s) is not in the action table", id, h.Seq, h.From, h.To, h.Action, h.Cause)
					}
				}
			}
			if f := scrape(t, n, `lucid_policy_failures_total{hook="validate"}`); f == 0 {
				t.Error("the validate policy never failed: the test proved nothing")
			} else {
				t.Logf("%v validate calls failed", f)
			}
		})
	}
}

// cycle stops and starts id cycles times, waiting for each action to
// settle. An action the policy refused (its failure persisted through the
// recorder's retries, and the fallback denies) must leave the instance
// where it was.
func cycle(t *testing.T, n *testnode.Node, id string, cycles int) error {
	for c := 0; c < 2*cycles; c++ {
		body := `{"os-stop": null}`
		if n.Status(t, id) == "SHUTOFF" {
			body = `{"os-start": null}`
		}
		before := n.Status(t, id)
		r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", body)
		switch r.Code {
		case http.StatusAccepted:
		case http.StatusForbidden:
			if now := n.Status(t, id); now != before {
				return fmt.Errorf("%s: %s refused (%s) but the status went %s → %s", id, body, r.Raw, before, now)
			}
			continue
		default:
			return fmt.Errorf("%s: %s: %d %s", id, body, r.Code, r.Raw)
		}
		n.Settle(t, id)
	}
	return nil
}

// vmPower asks the fake driver's control socket what power state each of
// its VMs is in.
func vmPower(t *testing.T, sock string) map[string]string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://fake/vms")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var vms []struct {
		ID    string `json:"id"`
		Power string `json:"power"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vms); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, vm := range vms {
		out[vm.ID] = vm.Power
	}
	return out
}

// scrape reads one sample of the node's /metrics.
func scrape(t *testing.T, n *testnode.Node, name string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", n.Base+"/metrics", nil)
	req.Header.Set("X-Auth-Token", n.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
