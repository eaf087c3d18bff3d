package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// node starts a node whose fake driver has a control socket, with the
// reconciler sweeping every 50ms under the default reconcile policy with
// the given settings.
func node(t *testing.T, driver, settings string, enabled bool) (*testnode.Node, string) {
	t.Helper()
	return reconciling(t, driver, settings, "50ms", enabled)
}

// reconciling starts a node whose fake driver has a control socket (its
// path is returned) and extra driver settings, with the reconciler
// (enabled or not) sweeping every interval under the default reconcile
// policy with the given settings.
func reconciling(tb testing.TB, driver, settings, interval string, enabled bool) (*testnode.Node, string) {
	tb.Helper()
	dir := tb.TempDir()
	sock := filepath.Join(dir, "fake.sock")
	n := testnode.Start(tb, testnode.Options{
		Dir:    dir,
		Driver: fmt.Sprintf("control_socket = %q\n%s", sock, driver),
		Extra: fmt.Sprintf(`
policy "reconcile" {
  module   = %q
  settings = %s
  timeout  = "5s"
}
reconciler {
  enabled  = %v
  interval = %q
}
`, testenv.Wasm(tb, "./policies/reconcile"), settings, enabled, interval),
	})
	return n, sock
}

// ctl changes a VM behind Lucid's back through the fake's control socket.
func ctl(t *testing.T, sock string, args ...string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, "./plugins/fake"), append([]string{"ctl", "--socket", sock}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ctl %v: %v\n%s", args, err, out)
	}
}

// sweeps waits until the node's reconciler has swept n more times.
func sweeps(t *testing.T, nd *testnode.Node, n int64) {
	t.Helper()
	start := nd.Reconciler.Sweeps()
	testenv.Eventually(t, 30*time.Second, func() bool { return nd.Reconciler.Sweeps() >= start+n },
		"the reconciler did not sweep %d times", n)
}

func active(t *testing.T, n *testnode.Node) string {
	t.Helper()
	id, _ := n.Create(t, "vm")
	if in := n.Settle(t, id); in.Status != "ACTIVE" {
		t.Fatalf("create ended %s", in.Status)
	}
	return id
}

func last(t *testing.T, n *testnode.Node, id string) client.HistoryRecord {
	h := n.History(t, id)
	return h[len(h)-1]
}

// The write-up's scenario: an instance in ERROR whose VM is shut down
// stays ERROR, with its fault, however many sweeps pass, under the default
// policy. With on_error = "correct" it becomes SHUTOFF with a reconciler
// history record, and the fault stays in history.
func TestErrorIsLeftAlone(t *testing.T) {
	for _, tt := range []struct {
		settings, want string
	}{{`{}`, "ERROR"}, {`{ on_error = "correct" }`, "SHUTOFF"}} {
		t.Run(tt.settings, func(t *testing.T) {
			n, sock := node(t, `fail_spawn = "no capacity"`, tt.settings, true)
			id, _ := n.Create(t, "doomed")
			if in := n.Settle(t, id); in.Status != "ERROR" {
				t.Fatalf("create ended %s", in.Status)
			}
			// The VM exists after all, shut down.
			ctl(t, sock, "add", id, "--power", "shutdown")
			if tt.want == "ERROR" {
				sweeps(t, n, 10)
			} else {
				testenv.Eventually(t, 10*time.Second, func() bool { return n.Status(t, id) == tt.want }, "never %s", tt.want)
			}
			in, _ := n.Client.Instance(context.Background(), id)
			if in.Status != tt.want {
				t.Fatalf("after sweeps: %s", in.Status)
			}
			h := n.History(t, id)
			if tt.want == "ERROR" {
				if len(h) != 2 || in.Fault == nil || !strings.Contains(in.Fault.Message, "no capacity") {
					t.Fatalf("ERROR was touched: history %+v, fault %+v", h, in.Fault)
				}
				return
			}
			l := h[len(h)-1]
			if l.From != "ERROR" || l.To != "SHUTOFF" || l.Cause != "reconciler" || !strings.Contains(l.Message, "no capacity") ||
				!strings.HasPrefix(l.Policy, "reconcile@") || in.PowerState != "shutdown" {
				t.Fatalf("correction %+v (power %s)", l, in.PowerState)
			}
			if !strings.Contains(h[1].Message, "no capacity") {
				t.Fatalf("the original fault left history: %+v", h[1])
			}
		})
	}
}

// A VM powered off behind Lucid's back: SHUTOFF under correct (the
// default), ACTIVE with a flag under flag (cleared when the VM runs
// again), started again under enforce.
func TestPowerMismatch(t *testing.T) {
	t.Run("correct", func(t *testing.T) {
		n, sock := node(t, "", `{}`, true)
		id := active(t, n)
		ctl(t, sock, "power", id, "shutdown")
		testenv.Eventually(t, 10*time.Second, func() bool { return n.Status(t, id) == "SHUTOFF" }, "never SHUTOFF")
		if l := last(t, n, id); l.From != "ACTIVE" || l.Cause != "reconciler" || !strings.Contains(l.Message, "power_mismatch") {
			t.Fatalf("correction %+v", l)
		}
	})
	t.Run("flag", func(t *testing.T) {
		n, sock := node(t, "", `{ on_power_mismatch = "flag" }`, true)
		id := active(t, n)
		ctl(t, sock, "power", id, "crashed")
		var in client.Instance
		testenv.Eventually(t, 10*time.Second, func() bool {
			in, _ = n.Client.Instance(context.Background(), id)
			return len(in.Flags) == 1
		}, "never flagged")
		if f := in.Flags[0]; in.Status != "ACTIVE" || f.Kind != "power_mismatch" || f.Recorded != "ACTIVE" || f.Observed != "crashed" {
			t.Fatalf("flagged %s %+v", in.Status, in.Flags)
		}
		if h := n.History(t, id); len(h) != 2 {
			t.Fatalf("a flag wrote history: %+v", h)
		}
		// Operators see it in /v1/flags; unflagging clears it, and the
		// next sweep flags again while the disagreement lasts.
		ctx := context.Background()
		if fl, err := n.Client.Flags(ctx); err != nil || len(fl.Instances) != 1 || fl.Instances[0].ID != id {
			t.Fatalf("GET /v1/flags: %+v, %v", fl, err)
		}
		if in, err := n.Client.Unflag(ctx, id); err != nil || len(in.Flags) != 0 {
			t.Fatalf("unflag: %+v, %v", in.Flags, err)
		}
		testenv.Eventually(t, 10*time.Second, func() bool {
			in, _ = n.Client.Instance(ctx, id)
			return len(in.Flags) == 1
		}, "not flagged again while the VM is still off")
		ctl(t, sock, "power", id, "running")
		testenv.Eventually(t, 10*time.Second, func() bool {
			in, _ = n.Client.Instance(context.Background(), id)
			return len(in.Flags) == 0
		}, "flag not cleared when the VM ran again")
	})
	t.Run("enforce", func(t *testing.T) {
		n, sock := node(t, "", `{ on_power_mismatch = "enforce" }`, true)
		id := active(t, n)
		ctl(t, sock, "power", id, "shutdown")
		testenv.Eventually(t, 10*time.Second, func() bool {
			h := n.History(t, id)
			return len(h) >= 4 && h[len(h)-1].To == "ACTIVE"
		}, "never enforced")
		h := n.History(t, id)
		if s := h[2]; s.From != "ACTIVE" || s.To != "STARTING" || s.Action != "start" || s.Cause != "reconciler" {
			t.Fatalf("enforcing start %+v", s)
		}
		if s := h[3]; s.From != "STARTING" || s.To != "ACTIVE" || s.Cause != "driver" {
			t.Fatalf("enforced end %+v", s)
		}
	})
}

// Killing the fake plugin (which forgets its VMs without a state file)
// makes its instances ERROR (vanished) right after the restart sweep, and
// they stay ERROR.
func TestVanishedAfterPluginRestart(t *testing.T) {
	n, _ := node(t, "", `{}`, true)
	ids := []string{active(t, n), active(t, n)}
	for _, pid := range testenv.ChildPIDs(t, testenv.Binary(t, "./plugins/fake")) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, id := range ids {
		testenv.Eventually(t, 10*time.Second, func() bool { return n.Status(t, id) == "ERROR" }, "%s never ERROR", id)
		in, _ := n.Client.Instance(context.Background(), id)
		if in.Fault == nil || !strings.Contains(in.Fault.Message, "vanished") {
			t.Fatalf("fault %+v", in.Fault)
		}
	}
	sweeps(t, n, 5)
	for _, id := range ids {
		if st := n.Status(t, id); st != "ERROR" {
			t.Fatalf("%s became %s", id, st)
		}
		if h := n.History(t, id); len(h) != 3 {
			t.Fatalf("history %+v", h)
		}
	}
}

// enabled = false changes and flags nothing; enabled = true, side by side
// on the same kind of change, does.
func TestDisabledChangesNothing(t *testing.T) {
	off, offSock := node(t, "", `{}`, false)
	on, onSock := node(t, "", `{}`, true)
	idOff, idOn := active(t, off), active(t, on)
	ctl(t, offSock, "power", idOff, "shutdown")
	ctl(t, onSock, "power", idOn, "shutdown")
	testenv.Eventually(t, 10*time.Second, func() bool { return on.Status(t, idOn) == "SHUTOFF" }, "the enabled one never corrected")
	sweeps(t, on, 5) // several intervals pass for both
	in, _ := off.Client.Instance(context.Background(), idOff)
	if in.Status != "ACTIVE" || len(in.Flags) != 0 || len(off.History(t, idOff)) != 2 {
		t.Fatalf("the disabled reconciler touched the instance: %+v", in)
	}
	if off.Reconciler != nil {
		t.Fatal("a disabled reconciler runs")
	}
}

// An unmanaged VM is flagged (not recorded as an instance) and listed
// until it goes away.
func TestUnmanagedIsFlagged(t *testing.T) {
	n, sock := node(t, "", `{}`, true)
	ctl(t, sock, "add", "stray-vm", "--power", "running")
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, func() bool {
		us, _ := n.Store.UnmanagedVMs(ctx)
		return len(us) == 1 && us[0].ID == "stray-vm" && us[0].Node == "test"
	}, "the stray VM was not flagged")
	if all, _ := n.Client.Instances(ctx); len(all) != 0 {
		t.Fatalf("an unmanaged VM became an instance: %+v", all)
	}
	ctl(t, sock, "vanish", "stray-vm")
	testenv.Eventually(t, 10*time.Second, func() bool {
		us, _ := n.Store.UnmanagedVMs(ctx)
		return len(us) == 0
	}, "the flag outlived the VM")
}

// A VM that vanished from a live driver is ERROR (on_vanished = correct),
// or only flagged under on_vanished = "flag".
func TestVanished(t *testing.T) {
	for _, tt := range []struct{ settings, status string }{{`{}`, "ERROR"}, {`{ on_vanished = "flag" }`, "ACTIVE"}} {
		t.Run(tt.settings, func(t *testing.T) {
			n, sock := node(t, "", tt.settings, true)
			id := active(t, n)
			ctl(t, sock, "vanish", id)
			var in client.Instance
			testenv.Eventually(t, 10*time.Second, func() bool {
				in, _ = n.Client.Instance(context.Background(), id)
				return in.Status == "ERROR" || len(in.Flags) > 0
			}, "the vanished VM was not noticed")
			if in.Status != tt.status {
				t.Fatalf("status %s, want %s (flags %+v)", in.Status, tt.status, in.Flags)
			}
		})
	}
}

// A step whose record says it started long ago, beyond its step timeout,
// is stuck: under on_stuck = "correct" (the default) it ends in ERROR
// with a fault saying so, and the executor's own step is cancelled.
func TestStuckStepEndsInError(t *testing.T) {
	n, _ := node(t, `boot_delay = "1h"`, `{}`, true)
	id, req := n.Create(t, "stuck")
	key := "/lucid/instances/" + id + "/transition"
	raw := testenv.GetRaw(t, n.EtcdURL, key)
	var tr map[string]any
	if err := json.Unmarshal([]byte(raw), &tr); err != nil {
		t.Fatalf("transition %q: %v", raw, err)
	}
	tr["step_started_at"] = time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(tr)
	testenv.PutRaw(t, n.EtcdURL, key, string(b))
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Status(t, id) == "ERROR" }, "the stuck step never ended")
	in, _ := n.Client.Instance(context.Background(), id)
	if in.Transition != nil || in.Fault == nil || !strings.Contains(in.Fault.Message, "outlived its timeout") || in.Fault.During != "create" {
		t.Fatalf("after the stuck step: %+v fault %+v", in.Transition, in.Fault)
	}
	testnode.AssertHistory(t, n.History(t, id), []testnode.Step{
		{"", "BUILD", "create", "api", req},
		{"BUILD", "ERROR", "create", "reconciler", req},
	})
}

// A reconcile policy that fails on every call never changes a state: its
// fallback (flag) applies.
func TestFailingPolicyOnlyFlags(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "fake.sock")
	n := testnode.Start(t, testnode.Options{Dir: dir, Driver: fmt.Sprintf("control_socket = %q", sock), Extra: fmt.Sprintf(`
policy "reconcile" {
  module   = %q
  settings = { every = 1, how = "trap" }
}
reconciler {
  enabled  = true
  interval = "50ms"
}
`, testenv.Wasm(t, "./core/policy/testdata/flaky"))})
	id := active(t, n)
	ctl(t, sock, "power", id, "shutdown")
	var in client.Instance
	testenv.Eventually(t, 10*time.Second, func() bool {
		in, _ = n.Client.Instance(context.Background(), id)
		return len(in.Flags) == 1
	}, "never flagged")
	sweeps(t, n, 5)
	in, _ = n.Client.Instance(context.Background(), id)
	if in.Status != "ACTIVE" || len(n.History(t, id)) != 2 || !strings.Contains(in.Flags[0].Message, "failed") {
		t.Fatalf("a failing policy changed the state: %s %+v", in.Status, in.Flags)
	}
}

// A driver event is handled at once, not at the next sweep: with sweeps
// an hour apart, a VM powered off behind Lucid's back is SHUTOFF within a
// second, with a reconciler history record.
func TestEventCorrectsWithinASecond(t *testing.T) {
	n, sock := hourly(t)
	id := active(t, n)
	// The first sweep runs at start; the next is an hour away.
	testenv.Eventually(t, 30*time.Second, func() bool { return n.Reconciler.Sweeps() >= 1 }, "no first sweep")
	before := n.Reconciler.Sweeps()
	ctl(t, sock, "power", id, "shutdown")
	start := time.Now()
	testenv.Eventually(t, 5*time.Second, func() bool { return n.Status(t, id) == "SHUTOFF" }, "the event was not handled")
	if took := time.Since(start); took > time.Second {
		t.Logf("corrected after %v (over the 1 s goal; the machine may be loaded)", took)
	}
	if n.Reconciler.Sweeps() != before {
		t.Fatal("a sweep ran: the correction did not come from the event")
	}
	if l := last(t, n, id); l.Cause != "reconciler" || l.To != "SHUTOFF" {
		t.Fatalf("correction %+v", l)
	}
}

// What the reconciler and the rest of the node did is visible at
// /metrics, in Prometheus' text format.
func TestMetrics(t *testing.T) {
	n, sock := node(t, "", `{}`, true)
	id := active(t, n)
	ctl(t, sock, "power", id, "shutdown")
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Status(t, id) == "SHUTOFF" }, "never corrected")
	for _, pid := range testenv.ChildPIDs(t, testenv.Binary(t, "./plugins/fake")) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Status(t, id) == "ERROR" }, "the vanished VM was not noticed")

	text := scrape(t, n)
	metric := func(name string) float64 {
		t.Helper()
		return value(t, text, name)
	}
	for name, atLeast := range map[string]float64{
		`lucid_reconcile_sweeps_total`:                                              1,
		`lucid_reconcile_cases_total{case="power_mismatch"}`:                        1,
		`lucid_reconcile_decisions_total{case="power_mismatch",decision="correct"}`: 1,
		`lucid_reconcile_decisions_total{case="vanished",decision="correct"}`:       1,
		`lucid_status_changes_total{cause="api"}`:                                   1,
		`lucid_status_changes_total{cause="driver"}`:                                1,
		`lucid_status_changes_total{cause="reconciler"}`:                            2,
		`lucid_api_requests_total{code="202",route="POST /v2.1/servers"}`:           1,
		`lucid_driver_calls_total{driver="fake",op="spawn",result="ok"}`:            1,
		`lucid_driver_calls_total{driver="fake",op="list",result="ok"}`:             1,
		`lucid_driver_restarts_total{driver="fake"}`:                                1,
		`lucid_policy_call_seconds_count{hook="validate"}`:                          2,
		`lucid_policy_call_seconds_count{hook="reconcile"}`:                         2,
		`lucid_reconcile_instances_checked_total`:                                   1,
		`lucid_store_commit_requests_total`:                                         3,
		`lucid_store_commits_sent_total`:                                            3,
	} {
		if v := metric(name); v < atLeast {
			t.Errorf("%s = %v, want at least %v", name, v, atLeast)
		}
	}
	if r, c := metric(`lucid_store_commit_requests_total`), metric(`lucid_store_commits_sent_total`); c < r {
		t.Errorf("%v commits sent in %v requests: a request carries at least one", c, r)
	}
	if !strings.Contains(text, "etcd_mvcc_put_total") {
		t.Error("the embedded etcd's own metrics are not served")
	}
}

// scrape reads the node's /metrics.
func scrape(t *testing.T, n *testnode.Node) string {
	t.Helper()
	req, _ := http.NewRequest("GET", n.Base+"/metrics", nil)
	req.Header.Set("X-Auth-Token", n.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(raw)
}

// value is the sample called name (with its labels) in a scrape; 0 when
// absent (a counter not yet incremented is not exported).
func value(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// hourly starts a node whose reconciler sweeps once at start and then an
// hour later, so what it does in a test comes from driver events.
func hourly(t *testing.T) (*testnode.Node, string) {
	t.Helper()
	return reconciling(t, "", `{ grace = "0s" }`, "1h", true)
}

// The driver's echo of Lucid's own stop and start (a power event) is
// settled from the record, which the action already made agree with it:
// no Inspect per action. A power change behind Lucid's back still gets
// the fresh Inspect and the correction (TestEventCorrectsWithinASecond).
func TestOwnActionEventsNeedNoInspect(t *testing.T) {
	n, _ := hourly(t)
	id := active(t, n)
	testenv.Eventually(t, 30*time.Second, func() bool { return n.Reconciler.Sweeps() >= 1 }, "no first sweep")
	inspect := `lucid_driver_calls_total{driver="fake",op="inspect",result="ok"}`
	missing := `lucid_driver_calls_total{driver="fake",op="inspect",result="not_found"}`
	settled := n.Reconciler.EventsSettledByRecord()
	before := scrape(t, n)
	for i, action := range []struct{ body, want string }{
		{`{"os-stop": null}`, "SHUTOFF"}, {`{"os-start": null}`, "ACTIVE"},
		{`{"os-stop": null}`, "SHUTOFF"}, {`{"os-start": null}`, "ACTIVE"},
	} {
		n.Action(t, id, action.body, http.StatusAccepted)
		if in := n.Settle(t, id); in.Status != action.want {
			t.Fatalf("%s ended %s", action.body, in.Status)
		}
		// Each event is handled before the next action: the reconciler
		// keeps only a VM's newest pending event, so on a loaded machine
		// two actions' events could otherwise be handled as one.
		want := settled + int64(i) + 1
		testenv.Eventually(t, 10*time.Second, func() bool { return n.Reconciler.EventsSettledByRecord() >= want },
			"the power event of action %d (%s) was not settled from the record (%d of %d were)", i+1, action.body, n.Reconciler.EventsSettledByRecord()-settled, i+1)
	}
	after := scrape(t, n)
	for _, m := range []string{inspect, missing} {
		if d := value(t, after, m) - value(t, before, m); d != 0 {
			t.Errorf("%s went up by %v during Lucid's own actions", m, d)
		}
	}
	for _, r := range n.History(t, id) {
		if r.Cause == "reconciler" {
			t.Fatalf("the reconciler changed the instance: %+v", r)
		}
	}
}
