package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lucid-project/lucid/core/cli"
)

func run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), append([]string{"lucid"}, args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestCLIServerCommands(t *testing.T) {
	n := startNode(t, ``, `{}`)
	out, err := run(t, "server", "create", "--endpoint", n.base, "--flavor", "m1.tiny", "--image", "cirros", "--wait", "cli-vm")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	lines := strings.Fields(out)
	if len(lines) < 2 || lines[len(lines)-1] != "ACTIVE" {
		t.Fatalf("create --wait printed %q, want the id then statuses ending ACTIVE", out)
	}
	id := lines[0]
	if out, err := run(t, "server", "show", "--endpoint", n.base, id); err != nil || !strings.Contains(out, "ACTIVE") || !strings.Contains(out, "cli-vm") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if out, err := run(t, "server", "list", "--endpoint", n.base); err != nil || !strings.Contains(out, id) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run(t, "server", "delete", "--endpoint", n.base, "--wait", id); err != nil || !strings.HasSuffix(strings.TrimSpace(out), "DELETED") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	out, err = run(t, "server", "history", "--endpoint", n.base, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BUILD", "ACTIVE", "DELETING", "DELETED"} {
		if !strings.Contains(out, want) {
			t.Fatalf("history lacks %s:\n%s", want, out)
		}
	}
	if out, err := run(t, "server", "show", "--endpoint", n.base, id); err == nil || !strings.Contains(err.Error(), "404 itemNotFound") {
		t.Fatalf("show deleted: %v\n%s", err, out)
	}
}

func TestConfigValidate(t *testing.T) {
	good := writeConfig(t, ``, `{}`)
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
	p := writeConfig(t, ``, `{}`)
	notWasm := filepath.Join(t.TempDir(), "policy.wasm")
	os.WriteFile(notWasm, []byte("this is not a module"), 0o644)
	src, _ := os.ReadFile(p)
	wasm := testenvWasmLine(t, string(src))
	os.WriteFile(p, []byte(strings.Replace(string(src), wasm, notWasm, 1)), 0o644)
	_, err := run(t, "serve", "--config", p)
	if err == nil {
		t.Fatal("serve started with a non-wasm policy")
	}
	if !strings.Contains(err.Error(), p+":19:3") || !strings.Contains(err.Error(), "Cannot load policy module") {
		t.Fatalf("error does not point at the module line:\n%v", err)
	}
}

// A key the driver rejects is reported at its own line, by serve and by
// config validate (which starts the plugin to ask it); --offline only
// checks the file.
func TestBadDriverConfigPointsAtKey(t *testing.T) {
	p := writeConfig(t, `no_such_knob = true`, `{}`)
	for _, args := range [][]string{{"serve", "--config", p}, {"config", "validate", "--config", p}} {
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "no_such_knob") || !strings.Contains(err.Error(), p+":14:1") {
			t.Fatalf("%v with a bad driver config: %v", args, err)
		}
	}
	if out, err := run(t, "config", "validate", "--offline", "--config", p); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("validate --offline: %v %s", err, out)
	}
}

func TestServeRefusesPolicySettings(t *testing.T) {
	p := writeConfig(t, ``, `{ forbid_actions = ["teleport"] }`)
	_, err := run(t, "serve", "--config", p)
	if err == nil || !strings.Contains(err.Error(), p+":20:14") || !strings.Contains(err.Error(), "teleport") {
		t.Fatalf("serve with bad policy settings: %v", err)
	}
}

func testenvWasmLine(t testing.TB, src string) string {
	t.Helper()
	for _, l := range strings.Split(src, "\n") {
		if strings.Contains(l, "module") {
			return strings.Trim(strings.TrimSpace(strings.SplitN(l, "=", 2)[1]), `"`)
		}
	}
	t.Fatal("no module line")
	return ""
}
