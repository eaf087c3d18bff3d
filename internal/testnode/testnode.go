// Package testnode starts real Lucid nodes for tests: real embedded etcd,
// the real fake driver plugin and the real default policies, built from
// this tree by internal/testenv. It also has the small HTTP helpers the
// end-to-end tests share. Everything is stopped with t.Cleanup.
package testnode

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
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/identity"
	"github.com/lucid-project/lucid/core/node"
	"github.com/lucid-project/lucid/internal/testenv"
)

// Options shape a test node's config.hcl. Zero values give a node with
// the fake driver (no delays), the default transitions policy and no
// reconciler.
type Options struct {
	// Name is the node's name; default "test".
	Name string
	// Driver is the body of the fake driver's config block, e.g.
	// `boot_delay = "50ms"`.
	Driver string
	// Plugin replaces the fake driver's executable (for example the
	// minimal example driver); a package path built by testenv.
	Plugin string
	// Validate is the validate policy's settings object, e.g.
	// `{ forbid_actions = ["hardReboot"] }`; "" means {}.
	Validate string
	// ValidateModule replaces the validate policy (a package path built
	// by testenv.Wasm); ValidateFallback sets its fallback.
	ValidateModule   string
	ValidateFallback string
	// Extra is appended to the config verbatim (reconciler blocks,
	// executor timeouts...).
	Extra string
	// Store, if set, replaces the embedded store block (e.g. endpoints of
	// an etcd started by testenv.Etcd).
	Store string
	// API is added to the api block, after its listen line (timeouts,
	// max_connections, a tls block...).
	API string
	// Dir is the directory for the config and data; default t.TempDir().
	Dir string
}

// Config writes the config.hcl for opts and returns its path.
func Config(t testing.TB, opts Options) string {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	name := opts.Name
	if name == "" {
		name = "test"
	}
	plugin := opts.Plugin
	if plugin == "" {
		plugin = "./plugins/fake"
	}
	validate := opts.Validate
	if validate == "" {
		validate = "{}"
	}
	module := opts.ValidateModule
	extra := opts.Extra
	if !strings.Contains(extra, "reconciler {") {
		// A test gets a reconciler only when it asks for one, so that
		// nothing else changes its instances behind its back.
		extra += "\nreconciler { enabled = false }\n"
	}
	if module == "" {
		module = "./policies/transitions"
	}
	fallback := ""
	if opts.ValidateFallback != "" {
		fallback = fmt.Sprintf("  fallback = %q\n", opts.ValidateFallback)
	}
	storeBlock := opts.Store
	if storeBlock == "" {
		storeBlock = fmt.Sprintf("embedded { data_dir = %q }", filepath.Join(dir, "etcd"))
	}
	// One line unless opts.API adds to it: tests that edit the config
	// (core/api/compat) look for this line.
	apiBlock := `api { listen = "127.0.0.1:0" }`
	if opts.API != "" {
		apiBlock = "api {\n  listen = \"127.0.0.1:0\"\n" + opts.API + "\n}"
	}
	src := fmt.Sprintf(`
node      = %q
cache_dir = %q

store {
  %s
  prefix = "/lucid"
}

%s

flavor "m1.tiny" {
  vcpus   = 1
  ram_mb  = 512
  disk_gb = 1
}
flavor "m1.small" {
  vcpus   = 1
  ram_mb  = 2048
  disk_gb = 20
}
flavor "m1.medium" {
  vcpus   = 2
  ram_mb  = 4096
  disk_gb = 40
}
image "cirros" { source = "fake://cirros" }
image "debian-12" {
  source     = "fake://debian-12"
  min_ram_mb = 1024
}

driver "fake" {
  plugin = %q
  config {
%s
  }
}

policy "validate" {
  module   = %q
  settings = %s
  # Production's 100ms budget is not meant for a loaded CI machine
  # running the race detector; tests of the limit set their own.
  timeout  = "5s"
%s}
%s
`, name, testenv.CacheDir(t), storeBlock, apiBlock, testenv.Binary(t, plugin), opts.Driver, testenv.Wasm(t, module), validate, fallback, extra)
	p := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Node is a running node and a client for its API.
type Node struct {
	*node.Node
	// Base is the API's URL; Client talks to it.
	Base   string
	Client *client.Client
	// ConfigPath is the config.hcl it was started from.
	ConfigPath string
	// Cloud is the admin's entry of the clouds.yaml the node wrote on its
	// first start (zero with auth disabled), and Token a token it got
	// with it, which Client and Call send. AuthURL is the identity
	// endpoint.
	Cloud   identity.Cloud
	Token   string
	AuthURL string
	// Logs holds the node's log output (warnings and above).
	Logs *Logs
}

// Start writes a config for opts and starts a node from it, stopped when
// the test ends.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	return StartConfig(t, Config(t, opts))
}

// StartConfig starts a node from an existing config file, stopped when
// the test ends (Close may be called earlier).
func StartConfig(t testing.TB, path string) *Node {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logs := &Logs{t: t}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := node.Start(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("close node: %v", err)
		}
		logs.stop()
	})
	base := n.URL
	tn := &Node{Node: n, Base: base, Client: client.New(base), ConfigPath: path, Logs: logs, AuthURL: base + "/identity/v3"}
	if cfg.AuthEnabled() {
		tn.Cloud = AdminCloud(t, cfg)
		tn.Token = tn.Login(t, tn.Cloud.Auth.Username, tn.Cloud.Auth.Password, tn.Cloud.Auth.ProjectName).Token
		tn.Client.Token = tn.Token
	}
	return tn
}

// AdminCloud reads the admin's entry of the clouds.yaml a node of cfg
// wrote on its first start, as an operator's client would.
func AdminCloud(t testing.TB, cfg *config.Config) identity.Cloud {
	t.Helper()
	c, err := identity.ReadCloud(cfg.CloudsYAMLPath(), identity.CloudName)
	if err != nil {
		t.Fatalf("the node's clouds.yaml: %v", err)
	}
	return c
}

// AdminClient is a client for the API at base that logged in as the
// admin of the clouds.yaml written by the first start of a node of the
// config at configPath (a `lucid serve` subprocess, say); with auth
// disabled it sends no token.
func AdminClient(t testing.TB, configPath, base string) *client.Client {
	t.Helper()
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(base)
	if !cfg.AuthEnabled() {
		return c
	}
	a := AdminCloud(t, cfg).Auth
	if _, err := c.Authenticate(context.Background(), a.Username, a.Password, a.ProjectName); err != nil {
		t.Fatalf("log in as %s: %v", a.Username, err)
	}
	return c
}

// Login authenticates user in project by password and returns a client
// that sends the token.
func (n *Node) Login(t testing.TB, user, password, project string) *client.Client {
	t.Helper()
	c := client.New(n.Base)
	if _, err := c.Authenticate(context.Background(), user, password, project); err != nil {
		t.Fatalf("log in as %s in %s: %v", user, project, err)
	}
	return c
}

// Logs collects a node's log lines and echoes them to the test log while
// the test runs.
type Logs struct {
	t    testing.TB
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *Logs) stop() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
}

// Response is a raw HTTP answer, for tests of status codes and bodies.
type Response struct {
	Code      int
	RequestID string
	Header    http.Header
	Body      map[string]any
	Raw       string
}

// Call sends method path with body (JSON, "" for none) with the admin's
// token and returns the answer; a body that is not JSON fails the test.
func (n *Node) Call(t testing.TB, method, path, body string) Response {
	t.Helper()
	return n.CallHeader(t, method, path, body, nil)
}

// CallHeader is Call with extra headers, which win over the admin's token
// (an X-Auth-Token of "" sends none).
func (n *Node) CallHeader(t testing.TB, method, path, body string, header map[string]string) Response {
	t.Helper()
	h := map[string]string{}
	if n.Token != "" {
		h["X-Auth-Token"] = n.Token
	}
	for k, v := range header {
		h[k] = v
	}
	return Call(t, n.Base, method, path, body, h)
}

// Call sends a request to base with optional extra headers.
func Call(t testing.TB, base, method, path, body string, header map[string]string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := Response{Code: resp.StatusCode, RequestID: resp.Header.Get("X-Openstack-Request-Id"), Header: resp.Header, Raw: string(b)}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &r.Body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, b)
		}
	}
	return r
}

// Create creates an instance (m1.tiny, cirros) and returns its id and the
// request id.
func (n *Node) Create(t testing.TB, name string) (id, requestID string) {
	t.Helper()
	id, r, err := n.Client.Create(context.Background(), client.CreateRequest{Name: name, FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return id, r.RequestID
}

// Action posts an action body and fails the test unless the answer is
// want; it returns the request id.
func (n *Node) Action(t testing.TB, id, body string, want int) string {
	t.Helper()
	r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", body)
	if r.Code != want {
		t.Fatalf("%s on %s: %d %s, want %d", body, id, r.Code, r.Raw, want)
	}
	return r.RequestID
}

// Settle waits until id has no action in flight (or is gone) and returns
// it (zero after a delete).
func (n *Node) Settle(t testing.TB, id string) client.Instance {
	t.Helper()
	var in client.Instance
	testenv.Eventually(t, 30*time.Second, func() bool {
		var err error
		in, err = n.Client.Instance(context.Background(), id)
		if client.IsNotFound(err) {
			in = client.Instance{}
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		return in.Transition == nil
	}, "instance %s still in flight", id)
	return in
}

// Status reads an instance's status ("404" when it is gone).
func (n *Node) Status(t testing.TB, id string) string {
	t.Helper()
	in, err := n.Client.Instance(context.Background(), id)
	if client.IsNotFound(err) {
		return "404"
	}
	if err != nil {
		t.Fatal(err)
	}
	return in.Status
}

// History reads an instance's history and checks the sequence numbers.
func (n *Node) History(t testing.TB, id string) []client.HistoryRecord {
	t.Helper()
	h, err := n.Client.History(context.Background(), id)
	if err != nil {
		t.Fatalf("history %s: %v", id, err)
	}
	for i, r := range h {
		if r.Seq != int64(i+1) {
			t.Fatalf("history of %s: seq %d at position %d", id, r.Seq, i)
		}
	}
	return h
}

// Step is the part of a history record a test states exactly: from, to,
// action, cause, request id.
type Step [5]string

// AssertHistory fails the test unless got is exactly want (a RequestID of
// "" in want matches any).
func AssertHistory(t testing.TB, got []client.HistoryRecord, want []Step) {
	t.Helper()
	var g []Step
	for i, h := range got {
		s := Step{h.From, h.To, h.Action, h.Cause, h.RequestID}
		if i < len(want) && want[i][4] == "" {
			s[4] = ""
		}
		g = append(g, s)
	}
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("history:\n got %v\nwant %v", g, want)
	}
}
