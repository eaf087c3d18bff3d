package cli_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lucid-project/lucid/core/cli"
	"github.com/lucid-project/lucid/internal/testnode"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), append([]string{"lucid"}, args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

var (
	uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRe = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`)
	portRe = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// normalize replaces what changes from run to run. The columns stay
// aligned because what is replaced has a fixed width.
func normalize(s string) string {
	s = uuidRe.ReplaceAllString(s, "<uuid>")
	s = timeRe.ReplaceAllString(s, "<time>")
	return portRe.ReplaceAllString(s, "127.0.0.1:<port>")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got = normalize(got)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./core/cli -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// Every client command against a real node, its output pinned.
func TestServerCommands(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	ep := []string{"--endpoint", n.Base, "--token", n.Token}
	step := func(name string, args ...string) string {
		t.Helper()
		out, err := run(t, append(append(args[:2:2], ep...), args[2:]...)...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		golden(t, name, out)
		return out
	}
	out := step("create", "server", "create", "--flavor", "m1.tiny", "--image", "cirros", "--wait", "cli-vm")
	id := strings.Fields(out)[0]
	step("stop", "server", "stop", "--wait", id)
	step("start", "server", "start", "--wait", id)
	step("reboot-hard", "server", "reboot", "--hard", "--wait", id)
	step("show", "server", "show", id)
	step("list", "server", "list")
	step("flavor-list", "flavor", "list")
	step("image-list", "image", "list")
	step("delete", "server", "delete", "--wait", id)
	step("history", "server", "history", id)
	if out, err := run(t, "server", "show", "--endpoint", n.Base, "--token", n.Token, id); err == nil || !strings.Contains(err.Error(), "404 itemNotFound") {
		t.Fatalf("show deleted: %v\n%s", err, out)
	}
}

// A failed action is an error carrying the fault, after the statuses.
func TestWaitReportsFailure(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `fail_spawn = "no capacity"`})
	out, err := run(t, "server", "create", "--endpoint", n.Base, "--token", n.Token, "--flavor", "m1.tiny", "--image", "cirros", "--wait", "doomed")
	if err == nil || !strings.Contains(err.Error(), "no capacity") || !strings.HasSuffix(strings.TrimSpace(out), "BUILD\nERROR") {
		t.Fatalf("create of a doomed instance: %v\n%s", err, out)
	}
}

// The CLI finds the API from the config file, or says how to point it at
// one; it never dials a port it guessed. Through the config it logs in
// with the clouds.yaml of the config's first start; with an endpoint it
// sends only the token it is given.
func TestEndpointDiscovery(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	// The test node listens on port 0; a config naming its real address
	// stands in for the operator's config.hcl.
	cfg := filepath.Join(t.TempDir(), "config.hcl")
	src, _ := os.ReadFile(n.ConfigPath)
	os.WriteFile(cfg, []byte(strings.Replace(string(src), `"127.0.0.1:0"`, `"`+n.Addr+`"`, 1)), 0o644)
	if out, err := run(t, "server", "list", "--config", cfg); err != nil || !strings.HasPrefix(out, "ID") {
		t.Fatalf("list via --config: %v\n%s", err, out)
	}
	t.Setenv("LUCID_ENDPOINT", n.Base)
	if out, err := run(t, "server", "list", "--config", cfg); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("list via LUCID_ENDPOINT without a token: %v\n%s", err, out)
	}
	t.Setenv("LUCID_TOKEN", n.Token)
	if out, err := run(t, "server", "list", "--config", "/nonexistent.hcl"); err != nil {
		t.Fatalf("list via LUCID_ENDPOINT: %v\n%s", err, out)
	}
	t.Setenv("LUCID_TOKEN", "")
	t.Setenv("LUCID_ENDPOINT", "")
	_, err := run(t, "server", "list", "--config", filepath.Join(t.TempDir(), "missing.hcl"))
	if err == nil || !strings.Contains(err.Error(), "no API endpoint") || !strings.Contains(err.Error(), "LUCID_ENDPOINT") {
		t.Fatalf("list without an endpoint: %v", err)
	}
}

// lineCol finds the first occurrence of what in the file at path and
// returns its "path:line:col".
func lineCol(t *testing.T, path, what string) string {
	t.Helper()
	src, _ := os.ReadFile(path)
	for i, l := range strings.Split(string(src), "\n") {
		if c := strings.Index(l, what); c >= 0 {
			return path + ":" + itoa(i+1) + ":" + itoa(c+1)
		}
	}
	t.Fatalf("%s not in %s", what, path)
	return ""
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestConfigValidate(t *testing.T) {
	good := testnode.Config(t, testnode.Options{})
	if out, err := run(t, "config", "validate", "--config", good); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("validate good config: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(bad, []byte("node = \"x\"\napi { listen = 8774 \n"), 0o644)
	_, err := run(t, "config", "validate", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Fatalf("validate bad config: %v, want a diagnostic at %s:2:col", err, bad)
	}
}

// Start-up refuses a module that is not WebAssembly and names the config
// line; nothing is left running.
func TestServeRefusesBadModule(t *testing.T) {
	p := testnode.Config(t, testnode.Options{})
	notWasm := filepath.Join(t.TempDir(), "policy.wasm")
	os.WriteFile(notWasm, []byte("this is not a module"), 0o644)
	src, _ := os.ReadFile(p)
	var module string
	for _, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "module") {
			module = strings.Trim(strings.TrimSpace(strings.SplitN(l, "=", 2)[1]), `"`)
		}
	}
	os.WriteFile(p, []byte(strings.Replace(string(src), module, notWasm, 1)), 0o644)
	_, err := run(t, "serve", "--config", p)
	if err == nil {
		t.Fatal("serve started with a non-wasm policy")
	}
	if want := lineCol(t, p, "module"); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Cannot load policy module") {
		t.Fatalf("error does not point at %s:\n%v", want, err)
	}
}

// A key the driver rejects is reported at its own line, by serve and by
// config validate (which starts the plugin to ask it); --offline only
// checks the file.
func TestBadDriverConfigPointsAtKey(t *testing.T) {
	p := testnode.Config(t, testnode.Options{Driver: `no_such_knob = true`})
	want := lineCol(t, p, "no_such_knob")
	for _, args := range [][]string{{"serve", "--config", p}, {"config", "validate", "--config", p}} {
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "no_such_knob") || !strings.Contains(err.Error(), want) {
			t.Fatalf("%v with a bad driver config: %v, want it at %s", args, err, want)
		}
	}
	if out, err := run(t, "config", "validate", "--offline", "--config", p); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("validate --offline: %v %s", err, out)
	}
}

func TestServeRefusesPolicySettings(t *testing.T) {
	p := testnode.Config(t, testnode.Options{Validate: `{ forbid_actions = ["teleport"] }`})
	want := lineCol(t, p, "{ forbid_actions")
	_, err := run(t, "serve", "--config", p)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "teleport") {
		t.Fatalf("serve with bad policy settings: %v, want it at %s", err, want)
	}
}

// bench throughput refuses bad flags before it starts anything, naming
// the flag.
func TestBenchThroughputRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "10ms"}, "--duration 10ms: want at least 500ms (100ms for each of --rounds 5)"},
		{[]string{"--duration", "1s", "--rounds", "20"}, "--duration 1s: want at least 2s (100ms for each of --rounds 20)"},
		{[]string{"--rounds", "0"}, "--rounds 0: want at least 1"},
		{[]string{"--clients", "0"}, "--clients 0: want at least 1"},
		{[]string{"--instances", "-5"}, "--instances -5: want at least 1"},
		{[]string{"--per-client", "0"}, "--per-client 0: want at least 1"},
		{[]string{"--wait", "poll"}, `--wait "poll": want prefer or long-poll`},
		{[]string{"extra"}, `bench throughput takes no arguments, got "extra"`},
		{[]string{"--duration", "soon"}, `invalid value "soon" for flag -duration`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := run(t, append([]string{"bench", "throughput"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error()+out, tc.want) {
				t.Fatalf("err = %v, output %q; want %q", err, out, tc.want)
			}
		})
	}
}
