package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// users declares projects p1 and p2 and their users, each with the
// password "pw-<name>": alice (member of p1), bob (member of p2), carol
// (reader in p1) and dave (admin in p2).
func users(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("project \"p1\" {}\nproject \"p2\" {}\n")
	for _, u := range []struct{ name, project, role string }{
		{"alice", "p1", "member"}, {"bob", "p2", "member"}, {"carol", "p1", "reader"}, {"dave", "p2", "admin"},
	} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+u.name), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "user %q {\n  password_hash = %q\n  roles = { %q = %q }\n}\n", u.name, h, u.project, u.role)
	}
	return b.String()
}

// as sends a request with token (none if "").
func as(t *testing.T, n *testnode.Node, token, method, path, body string) testnode.Response {
	t.Helper()
	return n.CallHeader(t, method, path, body, map[string]string{"X-Auth-Token": token})
}

// login gets a token for user (password pw-<user>) in project.
func login(t *testing.T, n *testnode.Node, user, project string) string {
	t.Helper()
	return n.Login(t, user, "pw-"+user, project).Token
}

// The Keystone subset: discovery without a token, a password token with
// its catalog, validation, a rescoped token by the token method, and
// revocation, after which the token is 401 with WWW-Authenticate.
func TestTokenLifecycle(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: users(t)})

	for path, code := range map[string]int{"/identity": 300, "/identity/v3": 200, "/identity/v3/": 200, "/": 200, "/v2.1/": 200, "/image/": 200} {
		if r := as(t, n, "", "GET", path, ""); r.Code != code {
			t.Fatalf("GET %s without a token: %d %s", path, r.Code, r.Raw)
		}
	}
	if v := as(t, n, "", "GET", "/identity/v3", "").Body["version"].(map[string]any); v["id"] != "v3.14" || v["status"] != "stable" {
		t.Fatalf("identity version %v", v)
	}

	body := func(user, password, project string) string {
		return fmt.Sprintf(`{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": %q, "domain": {"name": "Default"}, "password": %q}}},
			"scope": {"project": {"name": %q, "domain": {"id": "default"}}}}}`, user, password, project)
	}
	r := as(t, n, "", "POST", "/identity/v3/auth/tokens", body("alice", "pw-alice", "p1"))
	token := r.Header.Get("X-Subject-Token")
	if r.Code != http.StatusCreated || len(token) < 43 {
		t.Fatalf("password token: %d %s (token %q)", r.Code, r.Raw, token)
	}
	tok := r.Body["token"].(map[string]any)
	var endpoints []string
	for _, svc := range tok["catalog"].([]any) {
		s := svc.(map[string]any)
		ep := s["endpoints"].([]any)[0].(map[string]any)
		endpoints = append(endpoints, fmt.Sprintf("%s=%s %s", s["type"], strings.TrimPrefix(ep["url"].(string), n.Base), ep["interface"]))
	}
	if want := []string{"compute=/v2.1 public", "image=/image public", "identity=/identity/v3 public"}; !slices.Equal(endpoints, want) {
		t.Fatalf("catalog %v, want %v", endpoints, want)
	}
	if p := tok["project"].(map[string]any); p["id"] != "p1" || tok["user"].(map[string]any)["name"] != "alice" || fmt.Sprint(tok["roles"]) != "[map[id:member name:member] map[id:reader name:reader]]" {
		t.Fatalf("token body %s", r.Raw)
	}
	exp, err := time.Parse(time.RFC3339Nano, tok["expires_at"].(string))
	if err != nil || time.Until(exp) < 59*time.Minute || time.Until(exp) > time.Hour {
		t.Fatalf("expires_at %v (%v): want an hour from now, the default token_ttl", tok["expires_at"], err)
	}

	for _, c := range []struct{ name, body string }{
		{"wrong password", body("alice", "nope", "p1")},
		{"unknown user", body("mallory", "pw-mallory", "p1")},
		{"project without a role", body("alice", "pw-alice", "p2")},
		{"other domain", strings.Replace(body("alice", "pw-alice", "p1"), `"Default"`, `"Other"`, 1)},
	} {
		if r := as(t, n, "", "POST", "/identity/v3/auth/tokens", c.body); r.Code != http.StatusUnauthorized || r.Header.Get("X-Subject-Token") != "" {
			t.Fatalf("%s: %d %s", c.name, r.Code, r.Raw)
		}
	}

	// Validation: one's own token, or any for an admin; an unknown
	// subject is 404.
	check := func(caller, subject string) int {
		return n.CallHeader(t, "GET", "/identity/v3/auth/tokens", "", map[string]string{"X-Auth-Token": caller, "X-Subject-Token": subject}).Code
	}
	if c := check(token, token); c != 200 {
		t.Fatalf("validate own token: %d", c)
	}
	if c := check(n.Token, token); c != 200 {
		t.Fatalf("admin validates alice's token: %d", c)
	}
	if c := check(login(t, n, "bob", "p2"), token); c != 403 {
		t.Fatalf("bob validates alice's token: %d", c)
	}
	if c := check(n.Token, "not-a-token"); c != 404 {
		t.Fatalf("validate garbage: %d", c)
	}

	// The token method: a new token for the same user and project.
	r = as(t, n, "", "POST", "/identity/v3/auth/tokens", fmt.Sprintf(`{"auth": {"identity": {"methods": ["token"], "token": {"id": %q}}}}`, token))
	second := r.Header.Get("X-Subject-Token")
	if r.Code != http.StatusCreated || second == "" || second == token || r.Body["token"].(map[string]any)["expires_at"] != tok["expires_at"] {
		t.Fatalf("token method: %d %s", r.Code, r.Raw)
	}

	if c := as(t, n, token, "GET", "/v2.1/servers", "").Code; c != 200 {
		t.Fatalf("list with alice's token: %d", c)
	}
	if r := n.CallHeader(t, "DELETE", "/identity/v3/auth/tokens", "", map[string]string{"X-Auth-Token": token, "X-Subject-Token": token}); r.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Code, r.Raw)
	}
	for _, tk := range []string{token, "", "garbage"} {
		r := as(t, n, tk, "GET", "/v2.1/servers", "")
		if r.Code != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != fmt.Sprintf("Keystone uri=%q", n.Base+"/identity/v3") {
			t.Fatalf("token %q: %d %s, WWW-Authenticate %q", tk, r.Code, r.Raw, r.Header.Get("WWW-Authenticate"))
		}
	}
	if c := as(t, n, second, "GET", "/v2.1/servers", "").Code; c != 200 {
		t.Fatalf("the rescoped token after the first was revoked: %d", c)
	}
}

// A token expires with its lease: token_ttl 1s.
func TestTokenExpires(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: users(t) + "auth {\n  token_ttl = \"1s\"\n}\n"})
	issued := time.Now() // before the token's own issued_at
	token := login(t, n, "alice", "p1")
	if c := as(t, n, token, "GET", "/v2.1/servers", "").Code; c != 200 && time.Since(issued) < time.Second {
		t.Fatalf("a fresh token: %d", c)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return as(t, n, token, "GET", "/v2.1/servers", "").Code == http.StatusUnauthorized
	}, "the token never expired")
	if time.Since(issued) < time.Second {
		t.Fatalf("the token expired %v after it was issued, before its token_ttl of 1s", time.Since(issued))
	}
}

// Tokens live in etcd: a restarted node accepts the tokens issued before,
// and its clouds.yaml follows the API to its new port.
func TestTokenSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	first := testnode.Start(t, testnode.Options{Dir: dir, Extra: users(t)})
	token := login(t, first, "alice", "p1")
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := testnode.StartConfig(t, first.ConfigPath)
	if c := as(t, second, token, "GET", "/v2.1/servers", "").Code; c != 200 {
		t.Fatalf("a token of the first run after the restart: %d", c)
	}
	if second.Cloud.Auth.Password != first.Cloud.Auth.Password || second.Cloud.Auth.AuthURL != second.AuthURL {
		t.Fatalf("clouds.yaml after the restart: %+v, want the same password and auth_url %s", second.Cloud.Auth, second.AuthURL)
	}
}

// The first start writes clouds.yaml (0600) beside the store's data, for
// the admin it created; nothing of the password is in the config.
func TestFirstStartWritesCloudsYAML(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	cfg, err := config.Load(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	path := cfg.CloudsYAMLPath()
	if path != filepath.Join(filepath.Dir(n.ConfigPath), "clouds.yaml") {
		t.Fatalf("clouds.yaml at %s; want it beside the data dir", path)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("clouds.yaml: %v, mode %v", err, fi.Mode())
	}
	c := n.Cloud
	if c.AuthType != "password" || c.Auth.Username != "admin" || c.Auth.ProjectName != "admin" || len(c.Auth.Password) != 24 || c.Auth.AuthURL != n.AuthURL {
		t.Fatalf("clouds.yaml entry %+v", c)
	}
	src, _ := os.ReadFile(n.ConfigPath)
	if strings.Contains(string(src), c.Auth.Password) {
		t.Fatal("the config holds the admin's password")
	}
	if _, err := n.Client.Instances(context.Background()); err != nil {
		t.Fatalf("the admin's token on /v1: %v", err)
	}
}

// Members see and act only on their project's instances: another
// project's id is 404 on every route and nothing changes; readers only
// read; /v1 and all_tenants are an admin's; the /v2.1/{project_id}/ form
// must name the token's project.
func TestProjectIsolation(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: users(t)})
	alice, bob, carol, dave := login(t, n, "alice", "p1"), login(t, n, "bob", "p2"), login(t, n, "carol", "p1"), login(t, n, "dave", "p2")

	r := as(t, n, alice, "POST", "/v2.1/servers", `{"server": {"name": "a-1", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`)
	if r.Code != http.StatusAccepted {
		t.Fatalf("alice creates: %d %s", r.Code, r.Raw)
	}
	id := r.Body["server"].(map[string]any)["id"].(string)
	n.Settle(t, id)
	show := as(t, n, alice, "GET", "/v2.1/servers/"+id, "").Body["server"].(map[string]any)
	if show["tenant_id"] != "p1" || show["user_id"] != "alice" {
		t.Fatalf("alice's server: tenant_id %v user_id %v", show["tenant_id"], show["user_id"])
	}
	before := n.History(t, id)

	// bob, of p2, on every route with alice's instance id.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v2.1/servers/" + id, ""},
		{"GET", "/v2.1/p2/servers/" + id, ""},
		{"DELETE", "/v2.1/servers/" + id, ""},
		{"POST", "/v2.1/servers/" + id + "/action", `{"os-stop": null}`},
		{"POST", "/v2.1/servers/" + id + "/action", `{"reboot": {"type": "HARD"}}`},
		{"POST", "/v2.1/servers/" + id + "/action", `{"rebuild": {"imageRef": "cirros"}}`},
		{"POST", "/v2.1/servers/" + id + "/action", `{"resize": {"flavorRef": "m1.small"}}`},
		{"POST", "/v2.1/servers/" + id + "/action", `{"confirmResize": null}`},
		{"GET", "/v2.1/servers/" + id + "/os-instance-actions", ""},
		{"GET", "/v2.1/servers/" + id + "/os-instance-actions/" + before[0].RequestID, ""},
	} {
		if r := as(t, n, bob, c.method, c.path, c.body); r.Code != http.StatusNotFound || !strings.Contains(r.Raw, "itemNotFound") {
			t.Errorf("bob %s %s %s: %d %s, want 404", c.method, c.path, c.body, r.Code, r.Raw)
		}
	}
	// Listing: bob sees none of it, also with a marker or a project_id
	// filter; all_tenants is refused.
	for _, path := range []string{"/v2.1/servers", "/v2.1/servers/detail", "/v2.1/servers?project_id=p1", "/v2.1/p2/servers/detail?tenant_id=p1"} {
		if r := as(t, n, bob, "GET", path, ""); r.Code != 200 || len(r.Body["servers"].([]any)) != 0 {
			t.Errorf("bob lists %s: %d %s", path, r.Code, r.Raw)
		}
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/v2.1/servers?marker=" + id, 400},
		{"/v2.1/servers?all_tenants=1", 403},
		{"/v2.1/servers?all_tenants=maybe", 400},
		{"/v1/instances", 403},
		{"/v1/instances/" + id, 403},
		{"/v1/instances/" + id + "/history", 403},
		{"/v2.1/p1/servers", 400}, // Nova: the URL's project_id must be the token's
		{"/v2.1/os-quota-sets/p1", 403},
		{"/v2.1/os-quota-sets/p2", 200},
	} {
		if r := as(t, n, bob, "GET", c.path, ""); r.Code != c.code {
			t.Errorf("bob GET %s: %d %s, want %d", c.path, r.Code, r.Raw, c.code)
		}
	}
	// carol reads p1 and may not change it.
	if r := as(t, n, carol, "GET", "/v2.1/servers/"+id, ""); r.Code != 200 {
		t.Errorf("carol reads alice's server: %d", r.Code)
	}
	if r := as(t, n, carol, "GET", "/v2.1/servers/detail", ""); r.Code != 200 || len(r.Body["servers"].([]any)) != 1 {
		t.Errorf("carol lists p1: %d %s", r.Code, r.Raw)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v2.1/servers", `{"server": {"name": "c-1", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`},
		{"DELETE", "/v2.1/servers/" + id, ""},
		{"POST", "/v2.1/servers/" + id + "/action", `{"os-stop": null}`},
	} {
		if r := as(t, n, carol, c.method, c.path, c.body); r.Code != http.StatusForbidden || !strings.Contains(r.Raw, "reader") {
			t.Errorf("carol %s %s: %d %s, want 403", c.method, c.path, r.Code, r.Raw)
		}
	}
	// Nothing changed.
	if after := n.History(t, id); len(after) != len(before) || n.Status(t, id) != "ACTIVE" {
		t.Fatalf("alice's server changed: %d records (was %d), %s", len(after), len(before), n.Status(t, id))
	}

	// dave is an admin scoped to p2: all_tenants shows p1's too, and he
	// may act on it.
	if r := as(t, n, dave, "GET", "/v2.1/servers", ""); len(r.Body["servers"].([]any)) != 0 {
		t.Errorf("dave without all_tenants: %s", r.Raw)
	}
	if r := as(t, n, dave, "GET", "/v2.1/servers/detail?all_tenants=True&project_id=p1", ""); r.Code != 200 || len(r.Body["servers"].([]any)) != 1 {
		t.Errorf("dave with all_tenants: %d %s", r.Code, r.Raw)
	}
	if r := as(t, n, dave, "GET", "/v1/instances/"+id, ""); r.Code != 200 {
		t.Errorf("dave on /v1: %d", r.Code)
	}
	// alice deletes her own; history says who asked for each change
	// (the driver's own records name no user).
	if r := as(t, n, alice, "DELETE", "/v2.1/servers/"+id, ""); r.Code != http.StatusNoContent {
		t.Fatalf("alice deletes: %d %s", r.Code, r.Raw)
	}
	n.Settle(t, id)
	h := n.History(t, id)
	var who []string
	for _, rec := range h {
		who = append(who, rec.To+":"+rec.User)
	}
	if want := []string{"BUILD:alice", "ACTIVE:", "DELETING:alice", "DELETED:"}; !slices.Equal(who, want) {
		t.Fatalf("history users %v, want %v", who, want)
	}
	// The deleted server's actions are still alice's, not bob's.
	if r := as(t, n, bob, "GET", "/v2.1/servers/"+id+"/os-instance-actions", ""); r.Code != 404 {
		t.Errorf("bob lists the deleted server's actions: %d", r.Code)
	}
	if r := as(t, n, alice, "GET", "/v2.1/servers/"+id+"/os-instance-actions", ""); r.Code != 200 {
		t.Errorf("alice lists her deleted server's actions: %d %s", r.Code, r.Raw)
	}
}

// 32 concurrent creates against an instance quota of 10: exactly 10
// succeed and 22 are 403 with Nova's message; os-quota-sets shows the
// usage, and deletes give it back.
func TestQuotaRace(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: users(t) + "quota {\n  instances = 10\n}\n"})
	alice := login(t, n, "alice", "p1")
	var mu sync.Mutex
	codes := map[int]int{}
	var ids []string
	var msgs []string
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			r := as(t, n, alice, "POST", "/v2.1/servers", fmt.Sprintf(`{"server": {"name": "q-%d", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`, i))
			mu.Lock()
			defer mu.Unlock()
			codes[r.Code]++
			switch r.Code {
			case http.StatusAccepted:
				ids = append(ids, r.Body["server"].(map[string]any)["id"].(string))
			case http.StatusForbidden:
				msgs = append(msgs, r.Body["forbidden"].(map[string]any)["message"].(string))
			}
		})
	}
	wg.Wait()
	if codes[202] != 10 || codes[403] != 22 || len(codes) != 2 {
		t.Fatalf("32 creates against a quota of 10: %v", codes)
	}
	const msg = "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
	for _, m := range msgs {
		if m != msg {
			t.Fatalf("quota message %q, want %q", m, msg)
		}
	}
	quota := func() map[string]any {
		r := as(t, n, alice, "GET", "/v2.1/os-quota-sets/p1/detail", "")
		if r.Code != 200 {
			t.Fatalf("quota detail: %d %s", r.Code, r.Raw)
		}
		return r.Body["quota_set"].(map[string]any)
	}
	q := quota()
	if fmt.Sprint(q["instances"], q["cores"], q["ram"]) != "map[in_use:10 limit:10 reserved:0] map[in_use:10 limit:-1 reserved:0] map[in_use:5120 limit:-1 reserved:0]" {
		t.Fatalf("quota detail after the race: %v", q)
	}
	if r := as(t, n, alice, "GET", "/v2.1/os-quota-sets/p1", ""); fmt.Sprint(r.Body["quota_set"].(map[string]any)["instances"]) != "10" {
		t.Fatalf("quota set: %s", r.Raw)
	}
	// Another project has its own usage.
	if r := as(t, n, login(t, n, "bob", "p2"), "POST", "/v2.1/servers", `{"server": {"name": "b", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`); r.Code != 202 {
		t.Fatalf("bob in p2 while p1 is full: %d %s", r.Code, r.Raw)
	}
	for _, id := range ids {
		n.Settle(t, id)
		if r := as(t, n, alice, "DELETE", "/v2.1/servers/"+id, ""); r.Code != 204 {
			t.Fatalf("delete: %d %s", r.Code, r.Raw)
		}
	}
	for _, id := range ids {
		n.Settle(t, id)
	}
	if q := quota(); fmt.Sprint(q["instances"], q["cores"], q["ram"]) != "map[in_use:0 limit:10 reserved:0] map[in_use:0 limit:-1 reserved:0] map[in_use:0 limit:-1 reserved:0]" {
		t.Fatalf("quota detail after the deletes: %v", q)
	}
}

// Cores and RAM: a resize holds the larger flavor until it is confirmed
// or reverted, and a resize past the quota is refused with nothing
// written.
func TestQuotaResize(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: users(t) + "project \"p3\" {\n  quota {\n    cores = 3\n  }\n}\n" +
		"flavor \"c1.one\" {\n  vcpus   = 1\n  ram_mb  = 512\n  disk_gb = 40\n}\n" +
		"user \"erin\" {\n  password_file = \"erin.pw\"\n  roles = { \"p3\" = \"member\" }\n}\n",
		Dir: passwordDir(t, "erin.pw", "pw-erin\n")})
	erin := login(t, n, "erin", "p3")
	create := func(name, flavor string) testnode.Response {
		return as(t, n, erin, "POST", "/v2.1/servers", fmt.Sprintf(`{"server": {"name": %q, "flavorRef": %q, "imageRef": "cirros"}}`, name, flavor))
	}
	r := create("big", "m1.medium") // 2 cores
	if r.Code != 202 {
		t.Fatalf("create m1.medium: %d %s", r.Code, r.Raw)
	}
	big := r.Body["server"].(map[string]any)["id"].(string)
	n.Settle(t, big)
	r = create("small", "m1.tiny") // 1 core: 3 of 3
	small := r.Body["server"].(map[string]any)["id"].(string)
	n.Settle(t, small)
	if r := create("more", "m1.tiny"); r.Code != 403 || !strings.Contains(r.Raw, "Quota exceeded for cores: Requested 1, but already used 3 of 3 cores") {
		t.Fatalf("a fourth core: %d %s", r.Code, r.Raw)
	}
	cores := func() string {
		q := as(t, n, erin, "GET", "/v2.1/os-quota-sets/p3/detail", "").Body["quota_set"].(map[string]any)
		return fmt.Sprint(q["cores"].(map[string]any)["in_use"])
	}
	// Growing small to 2 cores would need a fourth: refused, nothing
	// written.
	if r := as(t, n, erin, "POST", "/v2.1/servers/"+small+"/action", `{"resize": {"flavorRef": "m1.medium"}}`); r.Code != 403 {
		t.Fatalf("resize past the quota: %d %s", r.Code, r.Raw)
	}
	if got := n.Status(t, small); got != "ACTIVE" || cores() != "3" {
		t.Fatalf("after a refused resize: %s, %s cores in use", got, cores())
	}
	// Shrinking big to 1 core: it holds 2 until confirmed.
	if r := as(t, n, erin, "POST", "/v2.1/servers/"+big+"/action", `{"resize": {"flavorRef": "c1.one"}}`); r.Code != 202 {
		t.Fatalf("resize down: %d %s", r.Code, r.Raw)
	}
	n.Settle(t, big)
	if c := cores(); c != "3" {
		t.Fatalf("in VERIFY_RESIZE: %s cores in use, want 3 (the old flavor's 2 are held)", c)
	}
	if r := as(t, n, erin, "POST", "/v2.1/servers/"+big+"/action", `{"confirmResize": null}`); r.Code != 204 {
		t.Fatalf("confirm: %d %s", r.Code, r.Raw)
	}
	n.Settle(t, big)
	if c := cores(); c != "2" {
		t.Fatalf("after confirm: %s cores in use, want 2", c)
	}
}

// passwordDir is a directory holding a password file, for a node's
// config to name.
func passwordDir(t *testing.T, name, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// With auth disabled (on loopback), requests need no token and act as an
// admin of the defaults' project.
func TestAuthDisabled(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: "auth {\n  enabled = false\n}\n"})
	if n.Token != "" {
		t.Fatalf("a token with auth disabled: %q", n.Token)
	}
	r := n.Call(t, "POST", "/v2.1/servers", `{"server": {"name": "x", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`)
	if r.Code != 202 {
		t.Fatalf("create without a token: %d %s", r.Code, r.Raw)
	}
	id := r.Body["server"].(map[string]any)["id"].(string)
	n.Settle(t, id)
	if s := n.Call(t, "GET", "/v2.1/servers/"+id, "").Body["server"].(map[string]any); s["tenant_id"] != "lucid" || s["user_id"] != "lucid" {
		t.Fatalf("owner with auth disabled: %v %v", s["tenant_id"], s["user_id"])
	}
	if r := n.Call(t, "GET", "/v1/instances/"+id, ""); r.Code != 200 {
		t.Fatalf("/v1 with auth disabled: %d", r.Code)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(n.ConfigPath), "clouds.yaml")); err == nil {
		t.Fatal("a clouds.yaml was written with auth disabled")
	}
}
