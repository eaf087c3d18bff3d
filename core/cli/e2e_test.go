package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/cli"
	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// node is a running Lucid node for a test: real embedded etcd, the real
// fake plugin and the real transitions.wasm.
type node struct {
	*cli.Node
	base    string
	cfgPath string
}

// writeConfig writes a config.hcl into a temp dir, pointing at the
// binaries this test run built.
func writeConfig(t testing.TB, driverConfig, policySettings string) string {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf(`
node = "test"

store {
  embedded { data_dir = %q }
  prefix = "/lucid"
}

api { listen = "127.0.0.1:0" }

driver "fake" {
  plugin = %q
  config {
%s
  }
}

policy "validate" {
  module   = %q
  settings = %s
}
`, filepath.Join(dir, "etcd"), testenv.Binary(t, "./plugins/fake"), driverConfig, testenv.Wasm(t, "./policies/transitions"), policySettings)
	p := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startNode(t testing.TB, driverConfig, policySettings string) *node {
	t.Helper()
	p := writeConfig(t, driverConfig, policySettings)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := cli.Start(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return &node{Node: n, base: "http://" + n.Addr, cfgPath: p}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type response struct {
	code      int
	requestID string
	body      map[string]any
	raw       string
}

func (n *node) call(t testing.TB, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{code: resp.StatusCode, requestID: resp.Header.Get("X-Openstack-Request-Id"), raw: string(b)}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, b)
		}
	}
	return r
}

func (n *node) create(t testing.TB, name string) (id, requestID string) {
	t.Helper()
	r := n.call(t, "POST", "/v2.1/servers", fmt.Sprintf(`{"server":{"name":%q,"flavorRef":"m1.tiny","imageRef":"cirros"}}`, name))
	if r.code != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.code, r.raw)
	}
	return r.body["server"].(map[string]any)["id"].(string), r.requestID
}

func (n *node) server(t testing.TB, id string) (int, map[string]any) {
	t.Helper()
	r := n.call(t, "GET", "/v2.1/servers/"+id, "")
	if r.code != http.StatusOK {
		return r.code, nil
	}
	return r.code, r.body["server"].(map[string]any)
}

// watch polls the server until done says stop, and returns every distinct
// status seen, in order. A status that flashes between two polls can be
// missed; the history assertions are the exact check, this one catches
// what a polling user would see.
func (n *node) watch(t testing.TB, id string, done func(code int, s map[string]any) bool) []string {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, s := n.server(t, id)
		st := "404"
		if code == http.StatusOK {
			st = s["status"].(string)
		}
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
		if done(code, s) {
			return seen
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("server %s: still going after 30s; saw %v", id, seen)
	return nil
}

func settled(code int, s map[string]any) bool {
	return code == http.StatusNotFound || s["lucid:transition"] == nil
}

type hist struct {
	Seq       int64  `json:"seq"`
	At        string `json:"at"`
	From      string `json:"from"`
	To        string `json:"to"`
	Action    string `json:"action"`
	Cause     string `json:"cause"`
	RequestID string `json:"request_id"`
	Message   string `json:"message"`
}

func (n *node) history(t testing.TB, id string) []hist {
	t.Helper()
	resp, err := http.Get(n.base + "/v1/instances/" + id + "/history")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("history: %d", resp.StatusCode)
	}
	var out struct {
		History []hist `json:"history"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for i, h := range out.History {
		if h.Seq != int64(i+1) {
			t.Fatalf("history seq %d at position %d", h.Seq, i)
		}
		if _, err := time.Parse(time.RFC3339, h.At); err != nil {
			t.Fatalf("history at %q: %v", h.At, err)
		}
	}
	return out.History
}

// step is the part of a history record a test states exactly.
type step struct{ from, to, action, cause, requestID string }

func assertHistory(t testing.TB, got []hist, want []step) {
	t.Helper()
	var g []step
	for _, h := range got {
		g = append(g, step{h.From, h.To, h.Action, h.Cause, h.RequestID})
	}
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("history:\n got %v\nwant %v", g, want)
	}
}

func TestCreateActiveDelete(t *testing.T) {
	n := startNode(t, `boot_delay = "50ms"`, `{}`)
	id, createReq := n.create(t, "web-1")

	seen := n.watch(t, id, settled)
	if fmt.Sprint(seen) != "[BUILD ACTIVE]" && fmt.Sprint(seen) != "[ACTIVE]" {
		t.Fatalf("create showed %v, want BUILD then ACTIVE and nothing else", seen)
	}
	_, s := n.server(t, id)
	if s["OS-EXT-STS:vm_state"] != "active" || s["OS-EXT-STS:power_state"] != float64(1) || s["OS-EXT-STS:task_state"] != nil {
		t.Fatalf("active server: %v", s)
	}

	r := n.call(t, "DELETE", "/v2.1/servers/"+id, "")
	if r.code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.code, r.raw)
	}
	seen = n.watch(t, id, settled)
	for _, st := range seen {
		if st != "DELETING" && st != "404" {
			t.Fatalf("delete showed %v", seen)
		}
	}
	if code, _ := n.server(t, id); code != http.StatusNotFound {
		t.Fatalf("deleted server: %d", code)
	}
	assertHistory(t, n.history(t, id), []step{
		{"", "BUILD", "create", "api", createReq},
		{"BUILD", "ACTIVE", "create", "driver", createReq},
		{"ACTIVE", "DELETING", "delete", "api", r.requestID},
		{"DELETING", "DELETED", "delete", "driver", r.requestID},
	})
}

// While an action is in flight a second one is refused with 409 and the
// instance is untouched; delete is the exception and pre-empts it.
func TestConflictAndPreemptingDelete(t *testing.T) {
	n := startNode(t, `boot_delay = "1h"`, `{}`)
	id, createReq := n.create(t, "slow")
	before := n.history(t, id)

	for _, body := range []string{`{"os-stop": null}`, `{"reboot": {"type": "HARD"}}`, `{"os-start": null}`} {
		r := n.call(t, "POST", "/v2.1/servers/"+id+"/action", body)
		if r.code != http.StatusConflict || r.body["conflictingRequest"] == nil {
			t.Fatalf("%s during BUILD: %d %s, want 409 conflictingRequest", body, r.code, r.raw)
		}
	}
	if _, s := n.server(t, id); s["status"] != "BUILD" {
		t.Fatalf("status after refused actions: %v", s["status"])
	}
	if after := n.history(t, id); len(after) != len(before) {
		t.Fatalf("refused actions wrote history: %v", after)
	}

	r := n.call(t, "DELETE", "/v2.1/servers/"+id, "")
	if r.code != http.StatusNoContent {
		t.Fatalf("delete during BUILD: %d %s", r.code, r.raw)
	}
	n.watch(t, id, func(code int, _ map[string]any) bool { return code == http.StatusNotFound })
	assertHistory(t, n.history(t, id), []step{
		{"", "BUILD", "create", "api", createReq},
		{"BUILD", "DELETING", "delete", "api", r.requestID},
		{"DELETING", "DELETED", "delete", "driver", r.requestID},
	})
}

func TestSpawnFailureIsErrorWithFault(t *testing.T) {
	n := startNode(t, `fail_spawn = "no capacity on host"`, `{}`)
	id, req := n.create(t, "doomed")
	n.watch(t, id, settled)
	_, s := n.server(t, id)
	if s["status"] != "ERROR" || s["OS-EXT-STS:vm_state"] != "error" {
		t.Fatalf("failed create: %v", s)
	}
	fault, _ := s["fault"].(map[string]any)
	if fault == nil || !strings.Contains(fault["message"].(string), "no capacity on host") {
		t.Fatalf("fault %v does not explain the failure", s["fault"])
	}
	h := n.history(t, id)
	assertHistory(t, h, []step{
		{"", "BUILD", "create", "api", req},
		{"BUILD", "ERROR", "create", "driver", req},
	})
	if !strings.Contains(h[1].Message, "no capacity on host") {
		t.Fatalf("history message %q", h[1].Message)
	}
	// An instance in ERROR can still be deleted.
	if r := n.call(t, "DELETE", "/v2.1/servers/"+id, ""); r.code != http.StatusNoContent {
		t.Fatalf("delete ERROR instance: %d %s", r.code, r.raw)
	}
	n.watch(t, id, settled)
	if h := n.history(t, id); h[len(h)-1].To != "DELETED" {
		t.Fatalf("history ends %v", h[len(h)-1])
	}
}

func TestPowerActions(t *testing.T) {
	n := startNode(t, ``, `{}`)
	id, _ := n.create(t, "p")
	n.watch(t, id, settled)
	steps := []struct {
		body, shows, ends string
	}{
		{`{"os-stop": null}`, "STOPPING", "SHUTOFF"},
		{`{"os-start": null}`, "STARTING", "ACTIVE"},
		{`{"reboot": {"type": "SOFT"}}`, "REBOOT", "ACTIVE"},
		{`{"reboot": {"type": "HARD"}}`, "HARD_REBOOT", "ACTIVE"},
	}
	var want []string
	for _, st := range steps {
		r := n.call(t, "POST", "/v2.1/servers/"+id+"/action", st.body)
		if r.code != http.StatusAccepted {
			t.Fatalf("%s: %d %s", st.body, r.code, r.raw)
		}
		n.watch(t, id, settled)
		if _, s := n.server(t, id); s["status"] != st.ends {
			t.Fatalf("%s ended %v, want %s", st.body, s["status"], st.ends)
		}
		want = append(want, st.shows, st.ends)
	}
	var got []string
	for _, h := range n.history(t, id)[2:] {
		got = append(got, h.To)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history statuses %v, want %v", got, want)
	}
	// start is not allowed from ACTIVE.
	if r := n.call(t, "POST", "/v2.1/servers/"+id+"/action", `{"os-start": null}`); r.code != http.StatusConflict {
		t.Fatalf("start while ACTIVE: %d %s", r.code, r.raw)
	}
}

// The operator's policy refuses an action: 403, nothing written.
func TestPolicyRefusal(t *testing.T) {
	n := startNode(t, ``, `{ forbid_actions = ["hardReboot"] }`)
	id, _ := n.create(t, "p")
	n.watch(t, id, settled)
	before := n.history(t, id)
	r := n.call(t, "POST", "/v2.1/servers/"+id+"/action", `{"reboot": {"type": "HARD"}}`)
	if r.code != http.StatusForbidden || !strings.Contains(r.raw, "forbid_actions") {
		t.Fatalf("forbidden hard reboot: %d %s", r.code, r.raw)
	}
	if after := n.history(t, id); len(after) != len(before) {
		t.Fatalf("refused action wrote history")
	}
	if _, s := n.server(t, id); s["status"] != "ACTIVE" {
		t.Fatalf("status %v", s["status"])
	}
}

func TestBadRequests(t *testing.T) {
	n := startNode(t, ``, `{}`)
	id, _ := n.create(t, "ok")
	n.watch(t, id, settled)
	cases := []struct {
		name, method, path, body string
		code                     int
		kind, message            string
	}{
		{"malformed json", "POST", "/v2.1/servers", `{"server": {`, 400, "badRequest", "malformed request body"},
		{"trailing garbage", "POST", "/v2.1/servers", `{"server": {}} x`, 400, "badRequest", "data after the JSON value"},
		{"no server key", "POST", "/v2.1/servers", `{"name": "x"}`, 400, "badRequest", `{"server": {...}}`},
		{"missing flavorRef", "POST", "/v2.1/servers", `{"server": {"name": "x", "imageRef": "i"}}`, 400, "badRequest", "missing flavorRef"},
		{"missing everything", "POST", "/v2.1/servers", `{"server": {}}`, 400, "badRequest", "missing name, flavorRef, imageRef"},
		{"flavorRef wrong type", "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": [], "imageRef": "i"}}`, 400, "badRequest", "flavorRef must be"},
		{"empty body", "POST", "/v2.1/servers", ``, 400, "badRequest", "empty request body"},
		{"unknown server", "GET", "/v2.1/servers/does-not-exist", ``, 404, "itemNotFound", "does-not-exist"},
		{"delete unknown", "DELETE", "/v2.1/servers/does-not-exist", ``, 404, "itemNotFound", "does-not-exist"},
		{"action unknown server", "POST", "/v2.1/servers/does-not-exist/action", `{"os-stop": null}`, 404, "itemNotFound", "does-not-exist"},
		{"history unknown", "GET", "/v1/instances/does-not-exist/history", ``, 404, "itemNotFound", "no history"},
		{"unknown action", "POST", "/v2.1/servers/" + id + "/action", `{"os-explode": null}`, 400, "badRequest", `unsupported action "os-explode"`},
		{"two actions", "POST", "/v2.1/servers/" + id + "/action", `{"os-stop": null, "os-start": null}`, 400, "badRequest", "exactly one key"},
		{"bad reboot type", "POST", "/v2.1/servers/" + id + "/action", `{"reboot": {"type": "GENTLE"}}`, 400, "badRequest", "SOFT or HARD"},
		{"no route", "GET", "/v2.1/flavors", ``, 404, "itemNotFound", "no route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.call(t, c.method, c.path, c.body)
			if r.code != c.code {
				t.Fatalf("%d %s, want %d", r.code, r.raw, c.code)
			}
			e, ok := r.body[c.kind].(map[string]any)
			if !ok || e["code"] != float64(c.code) || !strings.Contains(e["message"].(string), c.message) {
				t.Fatalf("body %s, want {%q: {code: %d, message containing %q}}", r.raw, c.kind, c.code, c.message)
			}
		})
	}
	// None of that touched the good instance.
	if h := n.history(t, id); len(h) != 2 {
		t.Fatalf("bad requests changed history: %v", h)
	}
	r := n.call(t, "GET", "/v2.1/servers", "")
	if servers := r.body["servers"].([]any); len(servers) != 1 {
		t.Fatalf("bad requests created servers: %s", r.raw)
	}
}

// A transition in flight when its node stops is resumed when the node
// comes back: nothing stays in BUILD forever.
func TestRestartResumesTransition(t *testing.T) {
	p := writeConfig(t, `boot_delay = "1h"`, `{}`)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n1, err := cli.Start(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	first := &node{Node: n1, base: "http://" + n1.Addr}
	id, req := first.create(t, "survivor")
	if _, s := first.server(t, id); s["status"] != "BUILD" {
		t.Fatalf("status %v", s["status"])
	}
	if err := n1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Same data, a driver that boots at once.
	src, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(src), `boot_delay = "1h"`, `boot_delay = "0s"`, 1)), 0o644)
	cfg, err = config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := cli.Start(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close(ctx)
	second := &node{Node: n2, base: "http://" + n2.Addr}
	second.watch(t, id, settled)
	assertHistory(t, second.history(t, id), []step{
		{"", "BUILD", "create", "api", req},
		{"BUILD", "ACTIVE", "create", "driver", req},
	})
}

// A plugin that crashes mid-step fails that step with a fault, is
// restarted, and serves the next action.
func TestPluginCrashDuringSpawn(t *testing.T) {
	n := startNode(t, `crash_on = "Spawn"`, `{}`)
	id, _ := n.create(t, "crashy")
	n.watch(t, id, settled)
	_, s := n.server(t, id)
	fault, _ := s["fault"].(map[string]any)
	if s["status"] != "ERROR" || fault == nil || !strings.Contains(fault["message"].(string), "exited") {
		t.Fatalf("after a crash during Spawn: status %v fault %v", s["status"], s["fault"])
	}
	h := n.history(t, id)
	if last := h[len(h)-1]; last.To != "ERROR" || !strings.Contains(last.Message, "exited") {
		t.Fatalf("history ends %+v", last)
	}
	// Destroy does not crash, and a delete issued while the host restarts
	// the plugin waits for it rather than failing.
	if r := n.call(t, "DELETE", "/v2.1/servers/"+id, ""); r.code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.code, r.raw)
	}
	n.watch(t, id, settled)
	if code, s := n.server(t, id); code != http.StatusNotFound {
		t.Fatalf("after delete: %d %v", code, s)
	}
}

// Many clients at once: every instance ends where its actions say, and
// every history is a legal sequence with no undeclared status.
func TestConcurrentClients(t *testing.T) {
	n := startNode(t, `boot_delay = "5ms"`, `{}`)
	const clients = 16
	ids := make([]string, clients)
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			id, _ := n.create(t, fmt.Sprintf("c%d", i))
			ids[i] = id
			if i%2 == 0 {
				// Half delete at once, pre-empting the create.
				if r := n.call(t, "DELETE", "/v2.1/servers/"+id, ""); r.code != http.StatusNoContent {
					errs <- fmt.Errorf("delete %s: %d %s", id, r.code, r.raw)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range ids {
		n.watch(t, id, settled)
		var tos []string
		for _, h := range n.history(t, id) {
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
	n := startNode(t, `destroy_delay = "1h"`, `{}`)
	id, _ := n.create(t, "sticky")
	n.watch(t, id, settled)
	if r := n.call(t, "DELETE", "/v2.1/servers/"+id, ""); r.code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.code, r.raw)
	}
	before := n.history(t, id)
	if r := n.call(t, "DELETE", "/v2.1/servers/"+id, ""); r.code != http.StatusNoContent {
		t.Fatalf("second delete: %d %s", r.code, r.raw)
	}
	if r := n.call(t, "POST", "/v2.1/servers/"+id+"/action", `{"os-stop": null}`); r.code != http.StatusConflict {
		t.Fatalf("stop while DELETING: %d %s", r.code, r.raw)
	}
	after := n.history(t, id)
	if len(after) != len(before) || after[len(after)-1].To != "DELETING" {
		t.Fatalf("history changed: %v -> %v", before, after)
	}
	if _, s := n.server(t, id); s["status"] != "DELETING" || s["OS-EXT-STS:task_state"] != "deleting" {
		t.Fatalf("server %v", s)
	}
}
