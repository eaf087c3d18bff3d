package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type step = testnode.Step

// watch polls an instance until done, returning every distinct status a
// polling user saw (history is the exact record; this catches what a
// user would see, including statuses that must never appear).
func watch(t *testing.T, n *testnode.Node, id string) []string {
	t.Helper()
	var seen []string
	testenv.Eventually(t, 30*time.Second, func() bool {
		in, err := n.Client.Instance(context.Background(), id)
		st := "404"
		if err == nil {
			st = in.Status
		} else if !client.IsNotFound(err) {
			t.Fatal(err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
		return st == "404" || in.Transition == nil
	}, "instance %s did not settle; saw %v", id, seen)
	return seen
}

func TestCreateActiveDelete(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `boot_delay = "50ms"`})
	id, createReq := n.Create(t, "web-1")

	if seen := fmt.Sprint(watch(t, n, id)); seen != "[BUILD ACTIVE]" && seen != "[ACTIVE]" {
		t.Fatalf("create showed %v, want BUILD then ACTIVE and nothing else", seen)
	}
	r := n.Call(t, "GET", "/v2.1/servers/"+id, "")
	s := r.Body["server"].(map[string]any)
	if s["OS-EXT-STS:vm_state"] != "active" || s["OS-EXT-STS:power_state"] != float64(1) || s["OS-EXT-STS:task_state"] != nil ||
		s["flavor"].(map[string]any)["id"] != "m1.tiny" {
		t.Fatalf("active server: %v", s)
	}
	in, _ := n.Client.Instance(context.Background(), id)
	if in.Flavor != (client.Flavor{ID: "m1.tiny", Name: "m1.tiny", VCPUs: 1, RAMMB: 512, DiskGB: 1}) || in.Image.Source != "fake://cirros" {
		t.Fatalf("instance does not record its flavor and image as built: %+v %+v", in.Flavor, in.Image)
	}

	r = n.Call(t, "DELETE", "/v2.1/servers/"+id, "")
	if r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Raw)
	}
	for _, st := range watch(t, n, id) {
		if st != "DELETING" && st != "404" {
			t.Fatalf("delete showed %s", st)
		}
	}
	testnode.AssertHistory(t, n.History(t, id), []step{
		{"", "BUILD", "create", "api", createReq},
		{"BUILD", "ACTIVE", "create", "driver", createReq},
		{"ACTIVE", "DELETING", "delete", "api", r.RequestID},
		{"DELETING", "DELETED", "delete", "driver", r.RequestID},
	})
}

// While an action is in flight a second one is refused with 409 and the
// instance is untouched; delete is the exception and pre-empts it.
func TestConflictAndPreemptingDelete(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `boot_delay = "1h"`})
	id, createReq := n.Create(t, "slow")
	before := n.History(t, id)
	for _, body := range []string{`{"os-stop": null}`, `{"reboot": {"type": "HARD"}}`, `{"os-start": null}`, `{"resize": {"flavorRef": "m1.small"}}`} {
		r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", body)
		if r.Code != http.StatusConflict || r.Body["conflictingRequest"] == nil {
			t.Fatalf("%s during BUILD: %d %s, want 409 conflictingRequest", body, r.Code, r.Raw)
		}
	}
	if st := n.Status(t, id); st != "BUILD" {
		t.Fatalf("status after refused actions: %s", st)
	}
	if after := n.History(t, id); len(after) != len(before) {
		t.Fatalf("refused actions wrote history: %v", after)
	}
	r := n.Call(t, "DELETE", "/v2.1/servers/"+id, "")
	if r.Code != http.StatusNoContent {
		t.Fatalf("delete during BUILD: %d %s", r.Code, r.Raw)
	}
	n.Settle(t, id)
	testnode.AssertHistory(t, n.History(t, id), []step{
		{"", "BUILD", "create", "api", createReq},
		{"BUILD", "DELETING", "delete", "api", r.RequestID},
		{"DELETING", "DELETED", "delete", "driver", r.RequestID},
	})
}

func TestSpawnFailureIsErrorWithFault(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `fail_spawn = "no capacity on host"`})
	id, req := n.Create(t, "doomed")
	in := n.Settle(t, id)
	if in.Status != "ERROR" || in.VMState != "error" || in.Fault == nil || !strings.Contains(in.Fault.Message, "no capacity on host") || in.Fault.During != "create" {
		t.Fatalf("failed create: %+v fault %+v", in, in.Fault)
	}
	h := n.History(t, id)
	testnode.AssertHistory(t, h, []step{
		{"", "BUILD", "create", "api", req},
		{"BUILD", "ERROR", "create", "driver", req},
	})
	if !strings.Contains(h[1].Message, "no capacity on host") {
		t.Fatalf("history message %q", h[1].Message)
	}
	// The compute API shows the fault too.
	s := n.Call(t, "GET", "/v2.1/servers/"+id, "").Body["server"].(map[string]any)
	if f, _ := s["fault"].(map[string]any); f == nil || !strings.Contains(f["message"].(string), "no capacity") {
		t.Fatalf("v2.1 fault %v", s["fault"])
	}
	// An instance in ERROR can still be deleted.
	n.Call(t, "DELETE", "/v2.1/servers/"+id, "")
	n.Settle(t, id)
	if h := n.History(t, id); h[len(h)-1].To != "DELETED" {
		t.Fatalf("history ends %v", h[len(h)-1])
	}
}

func TestPowerActions(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	id, _ := n.Create(t, "p")
	n.Settle(t, id)
	steps := []struct{ body, shows, ends string }{
		{`{"os-stop": null}`, "STOPPING", "SHUTOFF"},
		{`{"os-start": null}`, "STARTING", "ACTIVE"},
		{`{"reboot": {"type": "SOFT"}}`, "REBOOT", "ACTIVE"},
		{`{"reboot": {"type": "HARD"}}`, "HARD_REBOOT", "ACTIVE"},
	}
	var want []string
	for _, st := range steps {
		n.Action(t, id, st.body, http.StatusAccepted)
		if in := n.Settle(t, id); in.Status != st.ends {
			t.Fatalf("%s ended %s, want %s", st.body, in.Status, st.ends)
		}
		want = append(want, st.shows, st.ends)
	}
	var got []string
	for _, h := range n.History(t, id)[2:] {
		got = append(got, h.To)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history statuses %v, want %v", got, want)
	}
	if r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", `{"os-start": null}`); r.Code != http.StatusConflict {
		t.Fatalf("start while ACTIVE: %d %s", r.Code, r.Raw)
	}
}

// The operator's policy refuses an action: 403, nothing written.
func TestPolicyRefusal(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Validate: `{ forbid_actions = ["hardReboot"] }`})
	id, _ := n.Create(t, "p")
	n.Settle(t, id)
	before := n.History(t, id)
	r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", `{"reboot": {"type": "HARD"}}`)
	if r.Code != http.StatusForbidden || !strings.Contains(r.Raw, "forbid_actions") {
		t.Fatalf("forbidden hard reboot: %d %s", r.Code, r.Raw)
	}
	if after := n.History(t, id); len(after) != len(before) {
		t.Fatalf("refused action wrote history")
	}
	if st := n.Status(t, id); st != "ACTIVE" {
		t.Fatalf("status %s", st)
	}
}

// Bad input gets a 4xx in OpenStack's error shape, pinned by golden
// files, and changes nothing.
func TestBadRequests(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	id, _ := n.Create(t, "ok")
	n.Settle(t, id)
	long := strings.Repeat("x", 256)
	cases := []struct {
		name, method, path, body string
		code                     int
	}{
		{"malformed_json", "POST", "/v2.1/servers", `{"server": {`, 400},
		{"trailing_garbage", "POST", "/v2.1/servers", `{"server": {}} x`, 400},
		{"no_server_key", "POST", "/v2.1/servers", `{"name": "x"}`, 400},
		{"missing_flavor", "POST", "/v2.1/servers", `{"server": {"name": "x", "imageRef": "cirros"}}`, 400},
		{"missing_everything", "POST", "/v2.1/servers", `{"server": {}}`, 400},
		{"flavor_wrong_type", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": [], "imageRef": "cirros"}}`, 400},
		{"unknown_flavor", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m9.huge", "imageRef": "cirros"}}`, 400},
		{"unknown_image", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "windows"}}`, 400},
		{"image_needs_more_ram", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "debian-12"}}`, 400},
		{"name_too_long", "POST", "/v2.1/servers", `{"server": {"name": "` + long + `", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`, 400},
		{"empty_body", "POST", "/v2.1/servers", ``, 400},
		{"unknown_server", "GET", "/v2.1/servers/does-not-exist", ``, 404},
		{"delete_unknown", "DELETE", "/v2.1/servers/does-not-exist", ``, 404},
		{"action_unknown_server", "POST", "/v2.1/servers/does-not-exist/action", `{"os-stop": null}`, 404},
		{"history_unknown", "GET", "/v1/instances/does-not-exist/history", ``, 404},
		{"unknown_action", "POST", "/v2.1/servers/" + id + "/action", `{"os-explode": null}`, 400},
		{"two_actions", "POST", "/v2.1/servers/" + id + "/action", `{"os-stop": null, "os-start": null}`, 400},
		{"bad_reboot_type", "POST", "/v2.1/servers/" + id + "/action", `{"reboot": {"type": "GENTLE"}}`, 400},
		{"resize_same_flavor", "POST", "/v2.1/servers/" + id + "/action", `{"resize": {"flavorRef": "m1.tiny"}}`, 400},
		{"resize_unknown_flavor", "POST", "/v2.1/servers/" + id + "/action", `{"resize": {"flavorRef": "m9.huge"}}`, 400},
		{"resize_no_flavor", "POST", "/v2.1/servers/" + id + "/action", `{"resize": {}}`, 400},
		{"rebuild_no_image", "POST", "/v2.1/servers/" + id + "/action", `{"rebuild": {}}`, 400},
		{"confirm_not_resized", "POST", "/v2.1/servers/" + id + "/action", `{"confirmResize": null}`, 409},
		{"no_route", "GET", "/v2.1/nothing-here", ``, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.Call(t, c.method, c.path, c.body)
			if r.Code != c.code {
				t.Fatalf("%d %s, want %d", r.Code, r.Raw, c.code)
			}
			golden(t, filepath.Join("testdata", "errors", c.name+".json"), normalize(r.Raw, id))
		})
	}
	if h := n.History(t, id); len(h) != 2 {
		t.Fatalf("bad requests changed history: %v", h)
	}
	if all, _ := n.Client.Instances(context.Background()); len(all) != 1 {
		t.Fatalf("bad requests created instances: %v", all)
	}
}

var (
	reqID = regexp.MustCompile(`req-[0-9a-f-]{36}`)
	uuid  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

// normalize replaces what changes from run to run, and indents.
func normalize(raw, id string) string {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err == nil {
		b, _ := json.MarshalIndent(v, "", "  ")
		raw = string(b)
	}
	raw = strings.ReplaceAll(raw, id, "<id>")
	raw = reqID.ReplaceAllString(raw, "req-<uuid>")
	return uuid.ReplaceAllString(raw, "<uuid>") + "\n"
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./core/api -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n got %s\nwant %s", path, got, want)
	}
}

// A transition in flight when its node stops is resumed when the node
// comes back: nothing stays in BUILD forever.
func TestRestartResumesTransition(t *testing.T) {
	dir := t.TempDir()
	first := testnode.Start(t, testnode.Options{Dir: dir, Driver: `boot_delay = "1h"`})
	id, req := first.Create(t, "survivor")
	if st := first.Status(t, id); st != "BUILD" {
		t.Fatalf("status %s", st)
	}
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Same data, a driver that boots at once.
	second := testnode.Start(t, testnode.Options{Dir: dir, Driver: `boot_delay = "0s"`})
	in := second.Settle(t, id)
	if in.Status != "ACTIVE" {
		t.Fatalf("resumed create ended %s", in.Status)
	}
	testnode.AssertHistory(t, second.History(t, id), []step{
		{"", "BUILD", "create", "api", req},
		{"BUILD", "ACTIVE", "create", "driver", req},
	})
}

// A plugin that crashes mid-step fails that step with a fault, is
// restarted, and serves the next action.
func TestPluginCrashDuringSpawn(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `crash_on = "Spawn"`, Extra: `executor { step_timeout = "2s" }`})
	id, _ := n.Create(t, "crashy")
	in := n.Settle(t, id)
	if in.Status != "ERROR" || in.Fault == nil || !strings.Contains(in.Fault.Message, "unavailable") {
		t.Fatalf("after a crash during Spawn: %s fault %+v", in.Status, in.Fault)
	}
	// Destroy does not crash, and a delete issued while the host restarts
	// the plugin waits for it rather than failing.
	n.Call(t, "DELETE", "/v2.1/servers/"+id, "")
	n.Settle(t, id)
	if st := n.Status(t, id); st != "404" {
		t.Fatalf("after delete: %s", st)
	}
}

// Many clients at once: every instance ends where its actions say, and
// every history is a legal sequence with no undeclared status.
func TestConcurrentClients(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `boot_delay = "5ms"`})
	const clients = 16
	ids := make([]string, clients)
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			id, _, err := n.Client.Create(context.Background(), client.CreateRequest{Name: fmt.Sprintf("c%d", i), FlavorRef: "m1.tiny", ImageRef: "cirros"})
			ids[i] = id
			if err == nil && i%2 == 0 {
				// Half delete at once, pre-empting the create.
				_, err = n.Client.Delete(context.Background(), id)
			}
			errs <- err
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range ids {
		n.Settle(t, id)
		var tos []string
		for _, h := range n.History(t, id) {
			tos = append(tos, h.To)
		}
		got := strings.Join(tos, ",")
		if i%2 == 0 {
			if got != "BUILD,DELETING,DELETED" && got != "BUILD,ACTIVE,DELETING,DELETED" {
				t.Fatalf("instance %d (deleted): history %s", i, got)
			}
		} else if got != "BUILD,ACTIVE" {
			t.Fatalf("instance %d: history %s", i, got)
		}
	}
}

// Repeating a delete that is in flight is accepted and changes nothing;
// other actions during DELETING conflict.
func TestDeleteIsIdempotentWhileDeleting(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `destroy_delay = "1h"`})
	id, _ := n.Create(t, "sticky")
	n.Settle(t, id)
	if r := n.Call(t, "DELETE", "/v2.1/servers/"+id, ""); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Raw)
	}
	before := n.History(t, id)
	if r := n.Call(t, "DELETE", "/v2.1/servers/"+id, ""); r.Code != http.StatusNoContent {
		t.Fatalf("second delete: %d %s", r.Code, r.Raw)
	}
	if r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", `{"os-stop": null}`); r.Code != http.StatusConflict {
		t.Fatalf("stop while DELETING: %d %s", r.Code, r.Raw)
	}
	after := n.History(t, id)
	if len(after) != len(before) || after[len(after)-1].To != "DELETING" {
		t.Fatalf("history changed: %v -> %v", before, after)
	}
	in, _ := n.Client.Instance(context.Background(), id)
	if in.Status != "DELETING" || in.TaskState != "deleting" {
		t.Fatalf("instance %+v", in)
	}
}

// A refused outcome ends the transition: the driver already did the
// work, the policy will not let it be recorded as planned, so the
// instance goes to ERROR with a fault naming the policy; that write has
// cause "policy" and is not itself refused.
func TestRefusedOutcomeEndsInError(t *testing.T) {
	n := testnode.Start(t, testnode.Options{
		ValidateModule: "./internal/testenv/testdata/policies/refuse",
		Validate:       `{ deny_to = ["ACTIVE"], deny_cause = "driver" }`,
	})
	id, req := n.Create(t, "refused")
	in := n.Settle(t, id)
	if in.Status != "ERROR" || in.Fault == nil || !strings.Contains(in.Fault.Message, "refuse@0.0.1") ||
		!strings.Contains(in.Fault.Message, "BUILD -> ACTIVE") {
		t.Fatalf("refused outcome: %s fault %+v", in.Status, in.Fault)
	}
	h := n.History(t, id)
	testnode.AssertHistory(t, h, []step{
		{"", "BUILD", "create", "api", req},
		{"BUILD", "ERROR", "create", "policy", req},
	})
	if h[1].Policy != "refuse@0.0.1" || !strings.Contains(h[1].Message, "refused by this test policy") {
		t.Fatalf("imposed record %+v", h[1])
	}
	// Delete still works (DELETING and DELETED are allowed).
	n.Call(t, "DELETE", "/v2.1/servers/"+id, "")
	n.Settle(t, id)
	if st := n.Status(t, id); st != "404" {
		t.Fatalf("after delete: %s", st)
	}
}

// One unreadable record must not take the node down: it is listed as
// ERROR with a fault, everything else keeps working.
func TestUnreadableRecordIsShownNotFatal(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	id, _ := n.Create(t, "fine")
	n.Settle(t, id)
	testenv.PutRaw(t, n.EtcdURL, "/lucid/instances/garbage-1/state", "{this is not json")

	r := n.Call(t, "GET", "/v2.1/servers/detail", "")
	if r.Code != http.StatusOK || len(r.Body["servers"].([]any)) != 2 {
		t.Fatalf("list with a garbage record: %d %s", r.Code, r.Raw)
	}
	bad, err := n.Client.Instance(context.Background(), "garbage-1")
	if err != nil || bad.Status != "ERROR" || bad.Unreadable == "" || bad.Fault == nil {
		t.Fatalf("garbage record shown as %+v, %v", bad, err)
	}
	if r := n.Call(t, "POST", "/v2.1/servers/garbage-1/action", `{"os-stop": null}`); r.Code != http.StatusConflict {
		t.Fatalf("action on an unreadable record: %d %s", r.Code, r.Raw)
	}
	// The node keeps serving: a new create completes.
	id2, _ := n.Create(t, "after")
	if in := n.Settle(t, id2); in.Status != "ACTIVE" {
		t.Fatalf("create after a garbage record: %s", in.Status)
	}
	// And a node started on this data starts (its executor skips the
	// record instead of failing).
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := testnode.StartConfig(t, n.ConfigPath)
	if st := again.Status(t, id2); st != "ACTIVE" {
		t.Fatalf("after restart: %s", st)
	}
}

// A record written by the first Lucid (schema 1: flavor and image as bare
// ids) is read, shown and acted on, not shown as ERROR.
func TestSchema1RecordIsMigrated(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	v1 := `{"id":"old-1","name":"legacy","vm_state":"active","power_state":"running","flavor":"m1.tiny","image":"cirros","node":"test","driver":"fake","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","history_seq":2}`
	testenv.PutRaw(t, n.EtcdURL, "/lucid/instances/old-1/state", v1)
	in, err := n.Client.Instance(context.Background(), "old-1")
	if err != nil || in.Status != "ACTIVE" || in.Flavor.ID != "m1.tiny" || in.Image.ID != "cirros" || in.Unreadable != "" {
		t.Fatalf("schema 1 record: %+v, %v", in, err)
	}
	// Deleting it writes history seq 3 and 4, after the old record's 2.
	n.Call(t, "DELETE", "/v2.1/servers/old-1", "")
	n.Settle(t, "old-1")
	h, _ := n.Client.History(context.Background(), "old-1")
	if len(h) != 2 || h[0].Seq != 3 || h[1].To != "DELETED" {
		t.Fatalf("history %+v", h)
	}
}

// A step whose driver plugin is being restarted waits for it (bounded by
// the step timeout) instead of failing after a few quick tries: with the
// plugin killed again and again while deletes are in flight, and the
// host's restart backoff growing each time, every delete still ends
// DELETED and none in ERROR. (With a 1 s step timeout the same test ends
// them in ERROR: the bound is real.)
func TestStepsOutlastPluginRestarts(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `destroy_delay = "300ms"`})
	const count = 12
	ids := make([]string, count)
	for i := range ids {
		ids[i], _ = n.Create(t, fmt.Sprintf("d%d", i))
	}
	for _, id := range ids {
		n.Settle(t, id)
	}
	fake := testenv.Binary(t, "./plugins/fake")
	for _, id := range ids {
		if _, err := n.Client.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	// Kill the plugin five times, each time as soon as the host has
	// restarted it: its backoff doubles to 1.6 s, far beyond the three
	// tries in 0.75 s the executor once allowed.
	for kill := 0; kill < 5; kill++ {
		var pids []int
		testenv.Eventually(t, 30*time.Second, func() bool {
			pids = testenv.ChildPIDs(t, fake)
			return len(pids) > 0
		}, "no plugin process to kill")
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		testenv.Eventually(t, 10*time.Second, func() bool {
			for _, pid := range pids {
				if testenv.Alive(pid) {
					return false
				}
			}
			return true
		}, "plugin %v still alive after SIGKILL", pids)
	}
	for _, id := range ids {
		n.Settle(t, id)
		h := n.History(t, id)
		if last := h[len(h)-1]; last.To != "DELETED" {
			t.Fatalf("instance %s: history ends %s (%s), want DELETED", id, last.To, last.Message)
		}
	}
}
