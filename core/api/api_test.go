package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
	tooMany := map[string]string{}
	for i := range 129 {
		tooMany[fmt.Sprintf("k%03d", i)] = "v"
	}
	manyJSON, _ := json.Marshal(tooMany)
	huge := `{"server": {"name": "` + strings.Repeat("x", 1<<20) + `"}}`
	cases := []struct {
		name, method, path, body string
		code                     int
		header                   map[string]string
	}{
		{"malformed_json", "POST", "/v2.1/servers", `{"server": {`, 400, nil},
		{"trailing_garbage", "POST", "/v2.1/servers", `{"server": {}} x`, 400, nil},
		{"no_server_key", "POST", "/v2.1/servers", `{"name": "x"}`, 400, nil},
		{"missing_flavor", "POST", "/v2.1/servers", `{"server": {"name": "x", "imageRef": "cirros"}}`, 400, nil},
		{"missing_everything", "POST", "/v2.1/servers", `{"server": {}}`, 400, nil},
		{"flavor_wrong_type", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": [], "imageRef": "cirros"}}`, 400, nil},
		{"unknown_flavor", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m9.huge", "imageRef": "cirros"}}`, 400, nil},
		{"unknown_image", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "windows"}}`, 400, nil},
		{"image_needs_more_ram", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "debian-12"}}`, 400, nil},
		{"name_too_long", "POST", "/v2.1/servers", `{"server": {"name": "` + long + `", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`, 400, nil},
		{"empty_body", "POST", "/v2.1/servers", ``, 400, nil},
		{"unknown_server", "GET", "/v2.1/servers/does-not-exist", ``, 404, nil},
		{"delete_unknown", "DELETE", "/v2.1/servers/does-not-exist", ``, 404, nil},
		{"action_unknown_server", "POST", "/v2.1/servers/does-not-exist/action", `{"os-stop": null}`, 404, nil},
		{"history_unknown", "GET", "/v1/instances/does-not-exist/history", ``, 404, nil},
		{"unknown_action", "POST", "/v2.1/servers/" + id + "/action", `{"os-explode": null}`, 400, nil},
		{"two_actions", "POST", "/v2.1/servers/" + id + "/action", `{"os-stop": null, "os-start": null}`, 400, nil},
		{"bad_reboot_type", "POST", "/v2.1/servers/" + id + "/action", `{"reboot": {"type": "GENTLE"}}`, 400, nil},
		{"resize_same_flavor", "POST", "/v2.1/servers/" + id + "/action", `{"resize": {"flavorRef": "m1.tiny"}}`, 400, nil},
		{"resize_unknown_flavor", "POST", "/v2.1/servers/" + id + "/action", `{"resize": {"flavorRef": "m9.huge"}}`, 400, nil},
		{"resize_no_flavor", "POST", "/v2.1/servers/" + id + "/action", `{"resize": {}}`, 400, nil},
		{"rebuild_no_image", "POST", "/v2.1/servers/" + id + "/action", `{"rebuild": {}}`, 400, nil},
		{"confirm_not_resized", "POST", "/v2.1/servers/" + id + "/action", `{"confirmResize": null}`, 409, nil},
		{"no_route", "GET", "/v2.1/nothing-here", ``, 404, nil},
		{"unsupported_fields", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros", "block_device_mapping_v2": [], "key_name": "k"}}`, 400, nil},
		{"unsupported_top_level", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros"}, "os:scheduler_hints": {}}`, 400, nil},
		{"max_count_3", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros", "min_count": 1, "max_count": 3}}`, 400, nil},
		{"min_count_zero", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros", "min_count": "0"}}`, 400, nil},
		{"networks_list", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros", "networks": [{"uuid": "n"}]}}`, 400, nil},
		{"metadata_too_many", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros", "metadata": ` + string(manyJSON) + `}}`, 400, nil},
		{"metadata_long_value", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros", "metadata": {"k": "` + long + `"}}}`, 400, nil},
		{"metadata_not_string", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros", "metadata": {"k": 1}}}`, 400, nil},
		{"name_not_string", "POST", "/v2.1/servers", `{"server": {"name": 7, "flavorRef": "m1.tiny", "imageRef": "cirros"}}`, 400, nil},
		{"body_too_large", "POST", "/v2.1/servers", huge, 413, nil},
		{"not_json_media", "POST", "/v2.1/servers", `{}`, 415, map[string]string{"Content-Type": "text/plain"}},
		{"rebuild_admin_pass", "POST", "/v2.1/servers/" + id + "/action", `{"rebuild": {"imageRef": "cirros", "adminPass": "x"}}`, 400, nil},
		{"stop_with_value", "POST", "/v2.1/servers/" + id + "/action", `{"os-stop": {"force": true}}`, 400, nil},
		{"list_bad_limit", "GET", "/v2.1/servers?limit=-1", ``, 400, nil},
		{"list_unknown_marker", "GET", "/v2.1/servers/detail?marker=nobody", ``, 400, nil},
		{"list_unknown_sort_key", "GET", "/v2.1/servers?sort_key=launched_at", ``, 400, nil},
		{"list_bad_regex", "GET", "/v2.1/servers?name=web(", ``, 400, nil},
		{"list_unknown_param", "GET", "/v2.1/servers?ip=10.0.0.1", ``, 400, nil},
		{"flavor_unknown", "GET", "/v2.1/flavors/m9.huge", ``, 404, nil},
		{"image_unknown", "GET", "/v2.1/images/windows", ``, 404, nil},
		{"glance_image_unknown", "GET", "/image/v2/images/windows", ``, 404, nil},
		{"actions_unknown_server", "GET", "/v2.1/servers/does-not-exist/os-instance-actions", ``, 404, nil},
		{"action_unknown_request", "GET", "/v2.1/servers/" + id + "/os-instance-actions/req-nope", ``, 404, nil},
		{"method_not_allowed", "PUT", "/v2.1/servers/" + id, `{}`, 405, nil},
		{"method_not_allowed_list", "POST", "/v2.1/flavors", `{}`, 405, nil},
		{"version_too_new", "GET", "/v2.1/servers", ``, 406, map[string]string{"X-OpenStack-Nova-API-Version": "2.22"}},
		{"version_too_new_header", "GET", "/v2.1/servers", ``, 406, map[string]string{"OpenStack-API-Version": "compute 3.0"}},
		{"version_malformed", "GET", "/v2.1/servers", ``, 400, map[string]string{"OpenStack-API-Version": "compute two"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.CallHeader(t, c.method, c.path, c.body, c.header)
			if r.Code != c.code {
				t.Fatalf("%d %.300s, want %d", r.Code, r.Raw, c.code)
			}
			if c.code == http.StatusMethodNotAllowed && r.Header.Get("Allow") == "" {
				t.Fatalf("405 without Allow")
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
	n := testnode.Start(t, testnode.Options{Driver: `crash_on = "Spawn"`, Extra: `executor { step_timeouts = { create = "2s" } }`})
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
	if !strings.HasPrefix(h[1].Policy, "refuse@0.0.1 sha256:") || !strings.Contains(h[1].Message, "refused by this test policy") {
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

	// The garbage has no project an admin could see it in without
	// all_tenants.
	r := n.Call(t, "GET", "/v2.1/servers/detail?all_tenants=1", "")
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

// Walking the list by its next links returns every server once, in
// order, and ends: the last page has no link.
func TestListPaging(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	var want []string
	for i := range 7 {
		id, _ := n.Create(t, fmt.Sprintf("p-%d", i))
		want = append(want, id)
	}
	for _, id := range want {
		n.Settle(t, id)
	}
	// The default order is created_at desc; ids break ties the same way.
	all := n.Call(t, "GET", "/v2.1/servers/detail", "")
	var order []string
	for _, s := range all.Body["servers"].([]any) {
		order = append(order, s.(map[string]any)["id"].(string))
	}
	if len(order) != 7 || all.Body["servers_links"] != nil {
		t.Fatalf("unpaged list: %d servers, links %v", len(order), all.Body["servers_links"])
	}
	for _, path := range []string{"/v2.1/servers?limit=3", "/v2.1/servers/detail?limit=3&sort_key=created_at"} {
		var got []string
		var pages []int
		for next := n.Base + path; next != ""; {
			r := testnode.Call(t, next, "GET", "", "", map[string]string{"X-Auth-Token": n.Token})
			if r.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", next, r.Code, r.Raw)
			}
			servers := r.Body["servers"].([]any)
			pages = append(pages, len(servers))
			for _, s := range servers {
				got = append(got, s.(map[string]any)["id"].(string))
			}
			next = ""
			if l, ok := r.Body["servers_links"].([]any); ok {
				link := l[0].(map[string]any)
				if link["rel"] != "next" || !strings.HasPrefix(link["href"].(string), n.Base+"/v2.1/servers") {
					t.Fatalf("next link %v", link)
				}
				next = link["href"].(string)
			}
			if len(pages) > 10 {
				t.Fatalf("paging does not end: %v", pages)
			}
		}
		if fmt.Sprint(pages) != "[3 3 1]" || fmt.Sprint(got) != fmt.Sprint(order) {
			t.Fatalf("%s: pages %v, ids %v, want [3 3 1] and %v", path, pages, got, order)
		}
	}
	// A page that ends exactly at the last server has no next link, and
	// the page after the last server is empty.
	if r := n.Call(t, "GET", "/v2.1/servers?limit=7", ""); r.Body["servers_links"] != nil {
		t.Fatalf("a full last page has a next link: %v", r.Body["servers_links"])
	}
	if r := n.Call(t, "GET", "/v2.1/servers?marker="+order[6], ""); len(r.Body["servers"].([]any)) != 0 {
		t.Fatalf("after the last server: %s", r.Raw)
	}
	// The native list pages the same way, and the client follows it.
	r := n.Call(t, "GET", "/v1/instances?limit=4", "")
	if len(r.Body["instances"].([]any)) != 4 || !strings.Contains(fmt.Sprint(r.Body["next"]), "marker="+order[3]) {
		t.Fatalf("native page: %s", r.Raw)
	}
	ins, err := n.Client.ListInstances(context.Background(), url.Values{"limit": {"2"}, "name": {"^p-[0-5]$"}, "sort_key": {"display_name"}, "sort_dir": {"asc"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ins {
		names = append(names, in.Name)
	}
	if fmt.Sprint(names) != "[p-0 p-1 p-2 p-3 p-4 p-5]" {
		t.Fatalf("client.ListInstances: %v", names)
	}
}

// Every /v2.1 answer states the microversion it served; the version
// document states the range, 2.1 to 2.21; a server's body follows the
// version (locked from 2.9, description from 2.19).
func TestMicroversion(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	id, _ := n.Create(t, "mv")
	n.Settle(t, id)
	for _, c := range []struct {
		header map[string]string
		served string
		extra  string
	}{
		{nil, "2.1", "[]"},
		{map[string]string{"X-OpenStack-Nova-API-Version": "2.8"}, "2.8", "[]"},
		{map[string]string{"X-OpenStack-Nova-API-Version": "2.9"}, "2.9", "[locked:false]"},
		{map[string]string{"OpenStack-API-Version": "compute 2.19"}, "2.19", "[description:<nil> locked:false]"},
		{map[string]string{"X-OpenStack-Nova-API-Version": "latest"}, "2.21", "[description:<nil> locked:false]"},
	} {
		r := n.CallHeader(t, "GET", "/v2.1/servers/"+id, "", c.header)
		if r.Code != http.StatusOK || r.Header.Get("X-OpenStack-Nova-API-Version") != c.served || r.Header.Get("OpenStack-API-Version") != "compute "+c.served {
			t.Fatalf("%v: %d, headers %v", c.header, r.Code, r.Header)
		}
		s := r.Body["server"].(map[string]any)
		var extra []string
		for _, k := range []string{"description", "locked"} {
			if v, ok := s[k]; ok {
				extra = append(extra, fmt.Sprintf("%s:%v", k, v))
			}
		}
		if fmt.Sprint(extra) != c.extra {
			t.Fatalf("at %s: %v, want %s", c.served, extra, c.extra)
		}
	}
	v := n.Call(t, "GET", "/v2.1/", "").Body["version"].(map[string]any)
	if v["version"] != "2.21" || v["min_version"] != "2.1" || v["status"] != "CURRENT" {
		t.Fatalf("version document %v", v)
	}
	// A description is refused, not dropped.
	r := n.CallHeader(t, "POST", "/v2.1/servers", `{"server": {"name": "d", "flavorRef": "m1.tiny", "imageRef": "cirros", "description": "x"}}`,
		map[string]string{"X-OpenStack-Nova-API-Version": "2.19", "Content-Type": "application/json"})
	if r.Code != http.StatusBadRequest || !strings.Contains(r.Raw, "server.description not supported") {
		t.Fatalf("create with a description: %d %s", r.Code, r.Raw)
	}
	if r := n.Call(t, "GET", "/v1/instances", ""); r.Header.Get("X-OpenStack-Nova-API-Version") != "" {
		t.Fatalf("the native API answered with a compute microversion")
	}
}

// The catalogs as Nova's flavors, Nova's image proxy and Glance.
func TestCatalogs(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	cases := []struct {
		path string
		want string
	}{
		{"/v2.1/flavors", `{"flavors":[{"id":"m1.tiny","links":[{"href":"<base>/v2.1/flavors/m1.tiny","rel":"self"},{"href":"<base>/flavors/m1.tiny","rel":"bookmark"}],"name":"m1.tiny"},` +
			`{"id":"m1.small","links":[{"href":"<base>/v2.1/flavors/m1.small","rel":"self"},{"href":"<base>/flavors/m1.small","rel":"bookmark"}],"name":"m1.small"},` +
			`{"id":"m1.medium","links":[{"href":"<base>/v2.1/flavors/m1.medium","rel":"self"},{"href":"<base>/flavors/m1.medium","rel":"bookmark"}],"name":"m1.medium"}]}`},
		{"/v2.1/flavors/m1.small", `{"flavor":{"OS-FLV-DISABLED:disabled":false,"OS-FLV-EXT-DATA:ephemeral":0,"disk":20,"id":"m1.small","links":[{"href":"<base>/v2.1/flavors/m1.small","rel":"self"},{"href":"<base>/flavors/m1.small","rel":"bookmark"}],"name":"m1.small","os-flavor-access:is_public":true,"ram":2048,"rxtx_factor":1,"swap":"","vcpus":1}}`},
		{"/v2.1/flavors/detail?minRam=4096", `{"flavors":[{"OS-FLV-DISABLED:disabled":false,"OS-FLV-EXT-DATA:ephemeral":0,"disk":40,"id":"m1.medium","links":[{"href":"<base>/v2.1/flavors/m1.medium","rel":"self"},{"href":"<base>/flavors/m1.medium","rel":"bookmark"}],"name":"m1.medium","os-flavor-access:is_public":true,"ram":4096,"rxtx_factor":1,"swap":"","vcpus":2}]}`},
		{"/v2.1/flavors?limit=1&marker=m1.tiny", `{"flavors":[{"id":"m1.small","links":[{"href":"<base>/v2.1/flavors/m1.small","rel":"self"},{"href":"<base>/flavors/m1.small","rel":"bookmark"}],"name":"m1.small"}],"flavors_links":[{"href":"<base>/v2.1/flavors?limit=1\u0026marker=m1.small","rel":"next"}]}`},
		{"/v2.1/flavors?is_public=false", `{"flavors":[]}`},
		{"/v2.1/flavors/m1.tiny/os-extra_specs", `{"extra_specs":{}}`},
		{"/v2.1/images?name=debian-12", `{"images":[{"id":"debian-12","links":[{"href":"<base>/v2.1/images/debian-12","rel":"self"},{"href":"<base>/images/debian-12","rel":"bookmark"},{"href":"<base>/image/v2/images/debian-12","rel":"alternate","type":"application/vnd.openstack.image"}],"name":"debian-12"}]}`},
		{"/v2.1/images/detail?minRam=1", `{"images":[{"created":"<time>","id":"debian-12","links":[{"href":"<base>/v2.1/images/debian-12","rel":"self"},{"href":"<base>/images/debian-12","rel":"bookmark"},{"href":"<base>/image/v2/images/debian-12","rel":"alternate","type":"application/vnd.openstack.image"}],"metadata":{},"minDisk":0,"minRam":1024,"name":"debian-12","progress":100,"status":"ACTIVE","updated":"<time>"}]}`},
		{"/v2.1/images?os_hidden=true", `{"images":[]}`},
		{"/image/v2/images/cirros", `{"checksum":null,"container_format":"bare","created_at":"<time>","disk_format":"raw","file":"/v2/images/cirros/file","id":"cirros","min_disk":0,"min_ram":0,"name":"cirros","os_hash_algo":null,"os_hash_value":null,"os_hidden":false,"owner":"lucid","protected":false,"schema":"/v2/schemas/image","self":"/v2/images/cirros","size":null,"status":"active","tags":[],"updated_at":"<time>","virtual_size":null,"visibility":"public"}`},
		{"/image/v2/images?limit=1", `{"first":"/v2/images","images":[{"checksum":null,"container_format":"bare","created_at":"<time>","disk_format":"raw","file":"/v2/images/cirros/file","id":"cirros","min_disk":0,"min_ram":0,"name":"cirros","os_hash_algo":null,"os_hash_value":null,"os_hidden":false,"owner":"lucid","protected":false,"schema":"/v2/schemas/image","self":"/v2/images/cirros","size":null,"status":"active","tags":[],"updated_at":"<time>","virtual_size":null,"visibility":"public"}],"next":"/v2/images?limit=1\u0026marker=cirros","schema":"/v2/schemas/images"}`},
		{"/image/v2/images?visibility=private", `{"first":"/v2/images","images":[],"schema":"/v2/schemas/images"}`},
	}
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			r := n.Call(t, "GET", c.path, "")
			got := stamp.ReplaceAllString(strings.ReplaceAll(strings.TrimSpace(r.Raw), n.Base, "<base>"), "<time>")
			if r.Code != http.StatusOK || got != c.want {
				t.Fatalf("%d\n got %s\nwant %s", r.Code, got, c.want)
			}
		})
	}
}

// Create stores metadata and the owner: with auth disabled, the config's
// defaults. The body of a server has Nova's keys only.
func TestServerBody(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: `defaults {
  project_id = "proj-1"
  user_id    = "user-1"
}
auth { enabled = false }`})
	r := n.Call(t, "POST", "/v2.1/servers", `{"server": {"name": "m", "flavorRef": "m1.tiny", "imageRef": "cirros", "metadata": {"role": "db", "empty": ""}, "min_count": "1", "max_count": 1, "networks": "none"}}`)
	if r.Code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Code, r.Raw)
	}
	created := r.Body["server"].(map[string]any)
	id := created["id"].(string)
	if pw, _ := created["adminPass"].(string); len(pw) != 12 || created["OS-DCF:diskConfig"] != "MANUAL" || r.Header.Get("Location") != n.Base+"/v2.1/servers/"+id {
		t.Fatalf("create answer %s, Location %s", r.Raw, r.Header.Get("Location"))
	}
	n.Settle(t, id)
	s := n.Call(t, "GET", "/v2.1/servers/"+id, "").Body["server"].(map[string]any)
	var keys []string
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := "[OS-DCF:diskConfig OS-EXT-SRV-ATTR:host OS-EXT-STS:power_state OS-EXT-STS:task_state OS-EXT-STS:vm_state accessIPv4 accessIPv6 addresses created flavor hostId id image key_name links metadata name os-extended-volumes:volumes_attached status tenant_id updated user_id]"
	if fmt.Sprint(keys) != want {
		t.Fatalf("server keys\n got %v\nwant %s", keys, want)
	}
	if fmt.Sprint(s["metadata"]) != "map[empty: role:db]" || s["tenant_id"] != "proj-1" || s["user_id"] != "user-1" || s["OS-EXT-STS:task_state"] != nil {
		t.Fatalf("server %v", s)
	}
	in, _ := n.Client.Instance(context.Background(), id)
	if in.Project != "proj-1" || in.User != "user-1" || in.Metadata["role"] != "db" {
		t.Fatalf("native view %+v", in)
	}
}

// Instance actions outlive the server: after a delete, both actions are
// listed, newest first, with their steps.
func TestInstanceActionsAfterDelete(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	id, createReq := n.Create(t, "gone")
	n.Settle(t, id)
	del := n.Call(t, "DELETE", "/v2.1/servers/"+id, "")
	n.Settle(t, id)
	r := n.Call(t, "GET", "/v2.1/servers/"+id+"/os-instance-actions", "")
	var got []string
	for _, a := range r.Body["instanceActions"].([]any) {
		a := a.(map[string]any)
		got = append(got, fmt.Sprint(a["action"], " ", a["request_id"], " ", a["message"], " ", a["instance_uuid"] == id))
	}
	want := []string{"delete " + del.RequestID + " <nil> true", "create " + createReq + " <nil> true"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("actions of a deleted server\n got %v\nwant %v", got, want)
	}
	a := n.Call(t, "GET", "/v2.1/servers/"+id+"/os-instance-actions/"+del.RequestID, "").Body["instanceAction"].(map[string]any)
	evs := a["events"].([]any)
	if len(evs) != 1 || evs[0].(map[string]any)["event"] != "destroy" || evs[0].(map[string]any)["result"] != "Success" {
		t.Fatalf("delete events %v", evs)
	}
}
