package compat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// python is Debian's interpreter, which sees the packaged tempest (a
// python3 earlier in PATH, such as a pyenv one, does not).
const python = "/usr/bin/python3"

// requireClients fails the test, saying how to fix it, when the Debian
// packages the suite drives are missing.
func requireClients(t *testing.T) {
	t.Helper()
	var missing []string
	for _, exe := range []string{"openstack", "nova"} {
		if _, err := exec.LookPath(exe); err != nil {
			missing = append(missing, exe)
		}
	}
	if err := exec.Command(python, "-c", "import tempest.lib.api_schema.response.compute.v2_1.servers").Run(); err != nil {
		missing = append(missing, "tempest (for "+python+")")
	}
	if len(missing) > 0 {
		t.Fatalf("the compatibility suite needs %s: install the Debian packages python3-openstackclient python3-novaclient tempest (`make test` does, through .ci/debian-packages)",
			strings.Join(missing, ", "))
	}
}

// setup is what README.md tells users to configure, pointed at url.
type setup struct {
	cloudsYAML string   // the clouds.yaml
	novaEnv    []string // the variables novaclient reads
	novaArgs   []string // the nova alias, without "nova" (none with auth)
}

// readmeSetup reads the clouds.yaml block, the export line and the nova
// alias (if any) from README.md, so the suite checks what the README
// claims, with the README's placeholder for the generated password
// replaced by the node's (from the clouds.yaml it wrote).
func readmeSetup(t *testing.T, url, password string) setup {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.Root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const readmeURL, readmePassword = "http://127.0.0.1:8774", "<generated>"
	text := strings.ReplaceAll(strings.ReplaceAll(string(src), readmeURL, url), readmePassword, password)
	var s setup
	for _, block := range strings.Split(text, "```yaml\n")[1:] {
		if body, _, ok := strings.Cut(block, "```"); ok && strings.Contains(body, "clouds:") {
			s.cloudsYAML = body
			break
		}
	}
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		switch {
		case strings.HasPrefix(line, "export OS_"):
			s.novaEnv = strings.Fields(strings.TrimPrefix(line, "export "))
		case strings.HasPrefix(line, "alias nova='"):
			s.novaArgs = strings.Fields(strings.Trim(strings.TrimPrefix(line, "alias nova="), "' "))[1:]
		}
	}
	if s.cloudsYAML == "" || s.novaEnv == nil {
		t.Fatalf("README.md lacks the clouds.yaml block or the `export OS_…` line the suite checks")
	}
	return s
}

// clientsRun runs the CLIs with a private HOME and only the environment
// they need, so nothing on the machine changes what they do.
type clientsRun struct {
	dir   string
	setup setup
}

func (c clientsRun) run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir, "LANG=C.UTF-8", "PYTHONWARNINGS=ignore"}, env...)
	cmd.Dir = c.dir
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%5.1fs  %s %s", time.Since(began).Seconds(), name, strings.Join(args, " "))
	return string(out)
}

// openstack runs `openstack ARGS` with the README's clouds.yaml and
// OS_CLOUD=lucid, as the README says.
func (c clientsRun) openstack(t *testing.T, args ...string) string {
	t.Helper()
	return c.run(t, []string{"OS_CLIENT_CONFIG_FILE=" + filepath.Join(c.dir, "clouds.yaml"), "OS_CLOUD=lucid"}, "openstack", args...)
}

// openstackNoCloud runs openstack without a clouds.yaml, every service at
// the compute endpoint, as the README's alternative says.
func (c clientsRun) openstackNoCloud(t *testing.T, base string, args ...string) string {
	t.Helper()
	return c.run(t, nil, "openstack", append([]string{"--os-auth-type", "none", "--os-endpoint", base + "/v2.1"}, args...)...)
}

// nova runs nova as the README's alias and variables do.
func (c clientsRun) nova(t *testing.T, args ...string) string {
	t.Helper()
	return c.run(t, c.setup.novaEnv, "nova", append(slices.Clone(c.setup.novaArgs), args...)...)
}

func jsonOut[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	i := strings.IndexAny(out, "[{")
	if i < 0 || json.Unmarshal([]byte(out[i:]), &v) != nil {
		t.Fatalf("not JSON: %q", out)
	}
	return v
}

// names returns the Name column of `openstack … list -f json`, sorted.
func names(t *testing.T, out string) []string {
	t.Helper()
	var n []string
	for _, row := range jsonOut[[]map[string]any](t, out) {
		n = append(n, fmt.Sprint(row["Name"]))
	}
	slices.Sort(n)
	return n
}

// table parses a novaclient table into rows of cells.
func table(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	return rows
}

// column returns column i of a novaclient table's rows, header excluded.
func column(out string, i int) []string {
	var col []string
	for _, row := range table(out)[1:] {
		col = append(col, row[i])
	}
	return col
}

// property reads `| key | value |` from a novaclient show table.
func property(out, key string) string {
	for _, row := range table(out) {
		if len(row) == 2 && row[0] == key {
			return row[1]
		}
	}
	return ""
}

// assertWait checks the statuses a waiting client saw for action on
// server id: only statuses the action table declares for it, in order,
// ending in end. exact demands every declared status (the driver's
// delays make them long enough to be seen).
func assertWait(t *testing.T, seen []string, action instance.Action, end string, exact bool) {
	t.Helper()
	spec, err := instance.Lookup(action)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, s := range spec.Shows() {
		declared = append(declared, string(s))
	}
	declared = append(declared, end)
	i := 0
	for _, s := range seen {
		for i < len(declared) && declared[i] != s {
			i++
		}
		if i == len(declared) {
			t.Fatalf("%s: a waiting client saw %v; only %v may appear, in that order", action, seen, declared)
		}
	}
	if len(seen) == 0 || seen[len(seen)-1] != end || exact && !slices.Equal(seen, declared) {
		t.Fatalf("%s: a waiting client saw %v, want %v", action, seen, declared)
	}
}

// config is the suite's node: the driver is slow enough (3 s) that a
// waiting client sees BUILD and DELETING, pages hold two servers so that
// listing four takes three requests, and auth is on (the default): the
// clients log in as the admin of the node's clouds.yaml.
func config(t *testing.T) string {
	t.Helper()
	p := testnode.Config(t, testnode.Options{
		Driver: "boot_delay = \"3s\"\n    destroy_delay = \"3s\"",
		Extra: `
flavor "m1.large" {
  vcpus   = 4
  ram_mb  = 8192
  disk_gb = 80
}
`})
	src, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	const listen = `api { listen = "127.0.0.1:0" }`
	if !strings.Contains(string(src), listen) {
		t.Fatalf("testnode's config no longer has %s", listen)
	}
	src = []byte(strings.Replace(string(src), listen, "api {\n  listen    = \"127.0.0.1:0\"\n  max_limit = 2\n}", 1))
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOpenStackClients drives openstack and nova through everything the
// README promises, then validates every exchange they caused.
func TestOpenStackClients(t *testing.T) {
	requireClients(t)
	began := time.Now()
	n := testnode.StartConfig(t, config(t))
	up := time.Since(began)
	rec := newRecorder(t, n.Base)
	c := clientsRun{dir: t.TempDir(), setup: readmeSetup(t, rec.URL, n.Cloud.Auth.Password)}
	if err := os.WriteFile(filepath.Join(c.dir, "clouds.yaml"), []byte(c.setup.cloudsYAML), 0o644); err != nil {
		t.Fatal(err)
	}

	// Three servers to filter and page, made through the native client
	// (not recorded): db-2 is stopped after changesSince.
	ctx := context.Background()
	seed := map[string]string{}
	for _, s := range []client.CreateRequest{
		{Name: "db-1", FlavorRef: "m1.tiny", ImageRef: "cirros"},
		{Name: "db-2", FlavorRef: "m1.tiny", ImageRef: "cirros"},
		{Name: "db-3", FlavorRef: "m1.small", ImageRef: "debian-12"},
	} {
		id, _, err := n.Client.Create(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		seed[s.Name] = id
	}
	for _, id := range seed {
		n.Settle(t, id)
	}
	changesSince := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := n.Client.Action(ctx, seed["db-2"], map[string]any{"os-stop": nil}, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}
	n.Settle(t, seed["db-2"])

	// The flows run at once: most of their time is the clients' 5 s poll
	// while waiting. (Subtests run from goroutines, not with t.Parallel,
	// which -parallel would cap at GOMAXPROCS, two here.)
	// The no-auth case: a second node with auth disabled, on loopback,
	// driven with --os-auth-type none, every service at the compute
	// endpoint, as the README's alternative says.
	open := testnode.Start(t, testnode.Options{Name: "open", Extra: "auth {\n  enabled = false\n}\n"})
	openRec := newRecorder(t, open.Base)

	clientsBegan := time.Now()
	var wg sync.WaitGroup
	for name, flow := range map[string]func(*testing.T){
		"openstack":       func(t *testing.T) { openstackFlow(t, n, rec, c) },
		"openstack-lists": func(t *testing.T) { openstackLists(t, n, rec, c, changesSince) },
		"nova":            func(t *testing.T) { novaFlow(t, n, rec, c) },
		"no-auth":         func(t *testing.T) { noAuthFlow(t, open, openRec, c) },
	} {
		wg.Go(func() { t.Run(name, flow) })
	}
	wg.Wait()
	clients := time.Since(clientsBegan)

	records := filepath.Join(t.TempDir(), "exchanges.jsonl")
	count := rec.write(t, records)
	count += openRec.write(t, records)
	validateBegan := time.Now()
	out, err := exec.Command(python, "validate.py", records).CombinedOutput()
	if err != nil {
		t.Fatalf("validate.py: %v: %d exchanges, failures:\n%s", err, count, out)
	}
	t.Logf("%d exchanges validated; %s in all (node up %s, clients %s, validation %s): %s", count,
		time.Since(began).Round(100*time.Millisecond), up.Round(100*time.Millisecond), clients.Round(100*time.Millisecond),
		time.Since(validateBegan).Round(100*time.Millisecond), strings.TrimSpace(string(out)))
}

func openstackFlow(t *testing.T, n *testnode.Node, rec *recorder, c clientsRun) {
	// The README's create, waiting: BUILD then ACTIVE.
	m := rec.mark()
	created := jsonOut[map[string]any](t, c.openstack(t, "server", "create", "--flavor", "m1.small", "--image", "cirros", "--wait", "-f", "json", "web-1"))
	id, _ := created["id"].(string)
	if created["status"] != "ACTIVE" || id == "" {
		t.Fatalf("create --wait ended with %v", created)
	}
	assertWait(t, statuses(rec.since(m), id), instance.ActionCreate, "ACTIVE", true)

	show := jsonOut[map[string]any](t, c.openstack(t, "server", "show", "web-1", "-f", "json"))
	for k, want := range map[string]any{
		"id": id, "name": "web-1", "status": "ACTIVE", "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:task_state": nil,
		"OS-EXT-STS:power_state": float64(1), "OS-EXT-SRV-ATTR:host": "test", "flavor": "m1.small (m1.small)", "image": "cirros (cirros)",
		"project_id": "admin", "user_id": "admin", "OS-DCF:diskConfig": "MANUAL",
	} {
		if fmt.Sprint(show[k]) != fmt.Sprint(want) {
			t.Errorf("server show: %s is %v, want %v", k, show[k], want)
		}
	}

	// A later microversion: the body grows locked and description, and
	// validate.py checks it against that version's schema.
	show = jsonOut[map[string]any](t, c.openstack(t, "--os-compute-api-version", "2.19", "server", "show", "web-1", "-f", "json"))
	if show["status"] != "ACTIVE" || show["locked"] != false {
		t.Fatalf("server show at 2.19: %v", show)
	}

	settled := func(want string) client.Instance {
		t.Helper()
		in := n.Settle(t, id)
		if in.Status != want {
			t.Fatalf("server %s is %s, want %s", id, in.Status, want)
		}
		return in
	}
	c.openstack(t, "server", "stop", "web-1")
	settled("SHUTOFF")
	c.openstack(t, "server", "start", "web-1")
	settled("ACTIVE")
	waits := []struct {
		args   []string
		action instance.Action
		end    string
	}{
		{[]string{"server", "reboot", "--wait", "web-1"}, instance.ActionReboot, "ACTIVE"},
		{[]string{"server", "resize", "--flavor", "m1.medium", "--wait", "web-1"}, instance.ActionResize, "VERIFY_RESIZE"},
	}
	for _, w := range waits {
		m = rec.mark()
		c.openstack(t, w.args...)
		assertWait(t, statuses(rec.since(m), id), w.action, w.end, false)
	}
	c.openstack(t, "server", "resize", "confirm", "web-1")
	if in := settled("ACTIVE"); in.Flavor.ID != "m1.medium" {
		t.Fatalf("after a confirmed resize: flavor %s", in.Flavor.ID)
	}
	c.openstack(t, "server", "resize", "--flavor", "m1.large", "web-1")
	if in := settled("VERIFY_RESIZE"); in.Flavor.ID != "m1.large" {
		t.Fatalf("resized to flavor %s", in.Flavor.ID)
	}
	c.openstack(t, "server", "resize", "revert", "web-1")
	if in := settled("ACTIVE"); in.Flavor.ID != "m1.medium" {
		t.Fatalf("after a reverted resize: flavor %s", in.Flavor.ID)
	}

	events := jsonOut[[]map[string]any](t, c.openstack(t, "server", "event", "list", "web-1", "-f", "json"))
	var actions []string
	for _, e := range events {
		actions = append(actions, fmt.Sprint(e["Action"]))
	}
	if want := []string{"revertResize", "resize", "confirmResize", "resize", "reboot", "start", "stop", "create"}; !slices.Equal(actions, want) {
		t.Fatalf("server event list: %v, want %v", actions, want)
	}
	resize := jsonOut[map[string]any](t, c.openstack(t, "server", "event", "show", "web-1", fmt.Sprint(events[3]["Request ID"]), "-f", "json"))
	var steps []string
	for _, e := range resize["events"].([]any) {
		ev := e.(map[string]any)
		steps = append(steps, fmt.Sprintf("%v:%v", ev["event"], ev["result"]))
	}
	if want := []string{"resize_queue:Success", "resize_prepare:Success", "resize_finish:Success"}; resize["action"] != "resize" || !slices.Equal(steps, want) {
		t.Fatalf("server event show (resize): %v %v, want %v", resize["action"], steps, want)
	}

	m = rec.mark()
	c.openstack(t, "server", "delete", "--wait", "web-1")
	assertWait(t, statuses(rec.since(m), id), instance.ActionDelete, "404", true)
	// A deleted server's events are still there.
	events = jsonOut[[]map[string]any](t, c.openstack(t, "server", "event", "list", id, "-f", "json"))
	if len(events) != 9 || events[0]["Action"] != "delete" {
		t.Fatalf("server event list of the deleted server: %v", events)
	}
}

// openstackLists lists the seeded servers with filters and every page,
// and the catalogs, and rebuilds a server of its own (in parallel with
// openstackFlow, as a wait costs the client's 5 s poll).
func openstackLists(t *testing.T, n *testnode.Node, rec *recorder, c clientsRun, changesSince string) {
	id, _, err := n.Client.Create(context.Background(), client.CreateRequest{Name: "web-2", FlavorRef: "m1.small", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	n.Settle(t, id)
	m := rec.mark()
	c.openstack(t, "server", "rebuild", "--image", "debian-12", "--wait", "web-2")
	assertWait(t, statuses(rec.since(m), id), instance.ActionRebuild, "ACTIVE", false)
	if in := n.Settle(t, id); in.Image.ID != "debian-12" || in.Status != "ACTIVE" {
		t.Fatalf("after rebuild: %s, image %s", in.Status, in.Image.ID)
	}

	// Filters, each against the seeded servers.
	for _, f := range []struct {
		args []string
		want []string
	}{
		{[]string{"--status", "ACTIVE"}, []string{"db-1", "db-3"}},
		{[]string{"--image", "debian-12"}, []string{"db-3"}},
		{[]string{"--flavor", "m1.tiny"}, []string{"db-1", "db-2"}},
		{[]string{"--changes-since", changesSince}, []string{"db-2"}},
	} {
		got := names(t, c.openstack(t, append(append([]string{"server", "list", "--name", "^db-"}, f.args...), "-f", "json")...))
		if !slices.Equal(got, f.want) {
			t.Fatalf("server list --name ^db- %v: %v, want %v", f.args, got, f.want)
		}
	}
	// --limit -1 walks the pages (two servers each) until an empty one:
	// every server once, in three requests. (The filter is this list's
	// own, to tell its requests from the other clients'.)
	m = rec.mark()
	if got := names(t, c.openstack(t, "server", "list", "--name", "^db-[123]$", "--limit", "-1", "-f", "json")); !slices.Equal(got, []string{"db-1", "db-2", "db-3"}) {
		t.Fatalf("server list --limit -1: %v", got)
	}
	var pages []int
	for _, e := range rec.since(m) {
		if q, _ := url.ParseQuery(e.Query); strings.HasSuffix(e.Path, "/servers/detail") && q.Get("name") == "^db-[123]$" {
			var b struct{ Servers []any }
			json.Unmarshal([]byte(e.Body), &b)
			pages = append(pages, len(b.Servers))
		}
	}
	if !slices.Equal(pages, []int{2, 1, 0}) {
		t.Fatalf("server list --limit -1 fetched pages of %v servers, want [2 1 0]", pages)
	}

	// The README's token for curl; revoked through the client, it is
	// refused.
	token := strings.TrimSpace(c.openstack(t, "token", "issue", "-f", "value", "-c", "id"))
	if r := testnode.Call(t, n.Base, "GET", "/v2.1/servers", "", map[string]string{"X-Auth-Token": token}); r.Code != http.StatusOK {
		t.Fatalf("the token of openstack token issue: %d %s", r.Code, r.Raw)
	}
	c.openstack(t, "token", "revoke", token)
	if r := testnode.Call(t, n.Base, "GET", "/v2.1/servers", "", map[string]string{"X-Auth-Token": token}); r.Code != http.StatusUnauthorized {
		t.Fatalf("a token revoked with openstack token revoke: %d %s", r.Code, r.Raw)
	}

	if got := names(t, c.openstack(t, "flavor", "list", "-f", "json")); !slices.Equal(got, []string{"m1.large", "m1.medium", "m1.small", "m1.tiny"}) {
		t.Fatalf("flavor list: %v", got)
	}
	if got := names(t, c.openstack(t, "image", "list", "-f", "json")); !slices.Equal(got, []string{"cirros", "debian-12"}) {
		t.Fatalf("image list: %v", got)
	}
}

// noAuthFlow drives a node with auth disabled without a clouds.yaml:
// --os-auth-type none, every service at the compute endpoint, so images
// are looked up through Nova's image proxy, whose body has no Glance
// fields (the README says so).
func noAuthFlow(t *testing.T, n *testnode.Node, rec *recorder, c clientsRun) {
	m := rec.mark()
	created := jsonOut[map[string]any](t, c.openstackNoCloud(t, rec.URL, "server", "create", "--flavor", "m1.tiny", "--image", "cirros", "--wait", "-f", "json", "open-1"))
	id, _ := created["id"].(string)
	if created["status"] != "ACTIVE" || id == "" {
		t.Fatalf("create --wait without auth ended with %v", created)
	}
	assertWait(t, statuses(rec.since(m), id), instance.ActionCreate, "ACTIVE", false)
	if got := jsonOut[map[string]any](t, c.openstackNoCloud(t, rec.URL, "server", "show", id, "-f", "json")); got["image"] != "None (cirros)" || got["status"] != "ACTIVE" || got["project_id"] != "lucid" {
		t.Fatalf("server show without auth: image %v status %v project %v", got["image"], got["status"], got["project_id"])
	}
	if got := names(t, c.openstackNoCloud(t, rec.URL, "image", "list", "-f", "json")); !slices.Equal(got, []string{"cirros", "debian-12"}) {
		t.Fatalf("image list through the image proxy: %v", got)
	}
	if got := names(t, c.openstackNoCloud(t, rec.URL, "server", "list", "-f", "json")); !slices.Equal(got, []string{"open-1"}) {
		t.Fatalf("server list without auth: %v", got)
	}
	m = rec.mark()
	c.openstackNoCloud(t, rec.URL, "server", "delete", "--wait", id)
	assertWait(t, statuses(rec.since(m), id), instance.ActionDelete, "404", false)
}

func novaFlow(t *testing.T, n *testnode.Node, rec *recorder, c clientsRun) {
	m := rec.mark()
	if out := c.nova(t, "boot", "--flavor", "m1.small", "--image", "cirros", "--poll", "nova-1"); !strings.Contains(out, "Finished") {
		t.Fatalf("nova boot --poll: %s", out)
	}
	show := c.nova(t, "show", "nova-1")
	id := property(show, "id")
	assertWait(t, statuses(rec.since(m), id), instance.ActionCreate, "ACTIVE", true)
	for k, want := range map[string]string{"status": "ACTIVE", "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:task_state": "-",
		"tenant_id": "admin", "user_id": "admin", "flavor": "m1.small (m1.small)", "image": "cirros (cirros)", "locked": "False"} {
		if got := property(show, k); got != want {
			t.Errorf("nova show: %s is %q, want %q", k, got, want)
		}
	}

	for _, l := range []struct {
		args []string
		want []string
	}{
		{[]string{"--sort", "display_name:asc", "--limit", "-1"}, []string{"db-1", "db-2", "db-3"}},
		{[]string{"--sort", "display_name:desc", "--limit", "-1"}, []string{"db-3", "db-2", "db-1"}},
		{[]string{"--status", "SHUTOFF", "--limit", "-1"}, []string{"db-2"}},
		// Without --limit, one page: the server's max_limit (2 here).
		{[]string{"--sort", "display_name:asc"}, []string{"db-1", "db-2"}},
	} {
		if got := column(c.nova(t, append([]string{"list", "--name", "^db-"}, l.args...)...), 1); !slices.Equal(got, l.want) {
			t.Fatalf("nova list --name ^db- %v: %v, want %v", l.args, got, l.want)
		}
	}

	c.nova(t, "stop", "nova-1")
	if in := n.Settle(t, id); in.Status != "SHUTOFF" {
		t.Fatalf("after nova stop: %s", in.Status)
	}
	c.nova(t, "start", "nova-1")
	if in := n.Settle(t, id); in.Status != "ACTIVE" {
		t.Fatalf("after nova start: %s", in.Status)
	}
	m = rec.mark()
	c.nova(t, "reboot", "--hard", "--poll", "nova-1")
	assertWait(t, statuses(rec.since(m), id), instance.ActionHardReboot, "ACTIVE", false)

	acts := c.nova(t, "instance-action-list", "nova-1")
	if got := column(acts, 0); !slices.Equal(got, []string{"create", "stop", "start", "reboot"}) {
		t.Fatalf("nova instance-action-list: %v", got)
	}
	create := c.nova(t, "instance-action", "nova-1", column(acts, 1)[0])
	if property(create, "action") != "create" || !strings.Contains(create, "'event': 'spawn'") || !strings.Contains(create, "'result': 'Success'") {
		t.Fatalf("nova instance-action (create):\n%s", create)
	}
	// Flavors page like servers: two, then the two after the marker.
	for _, p := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"m1.tiny", "m1.small"}},
		{[]string{"--marker", "m1.small"}, []string{"m1.medium", "m1.large"}},
	} {
		if got := column(c.nova(t, append([]string{"flavor-list"}, p.args...)...), 1); !slices.Equal(got, p.want) {
			t.Fatalf("nova flavor-list %v: %v, want %v", p.args, got, p.want)
		}
	}
	c.nova(t, "delete", "nova-1")
	n.Settle(t, id)
	if st := n.Status(t, id); st != "404" {
		t.Fatalf("after nova delete: %s", st)
	}
	// novaclient negotiated 2.21, so it lists a deleted server's actions.
	if got := column(c.nova(t, "instance-action-list", id), 0); !slices.Equal(got, []string{"create", "stop", "start", "reboot", "delete"}) {
		t.Fatalf("nova instance-action-list of the deleted server: %v", got)
	}
}
