package config_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestValid(t *testing.T) {
	c, err := config.Load("testdata/valid.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("testdata")
	if c.Node != "n1" || c.Store.Prefix != "/lucid" || c.API.Listen != "127.0.0.1:8774" {
		t.Fatalf("decoded %+v", c)
	}
	if c.Store.Embedded.DataDir != filepath.Join(dir, "data/etcd") {
		t.Fatalf("data_dir %q not resolved against the file's directory", c.Store.Embedded.DataDir)
	}
	if len(c.Drivers) != 1 || c.Drivers[0].Plugin != filepath.Join(dir, "bin/plugin") {
		t.Fatalf("drivers %+v", c.Drivers)
	}
	var dc map[string]any
	if err := json.Unmarshal(c.Drivers[0].Config, &dc); err != nil {
		t.Fatal(err)
	}
	if dc["boot_delay"] != "200ms" || dc["fail_spawn"] != false {
		t.Fatalf("driver config %s", c.Drivers[0].Config)
	}
	p := c.Policy(config.HookValidate)
	if p == nil || p.Timeout != 50*time.Millisecond || string(p.Settings) != `{"forbid_actions":["hardReboot"]}` {
		t.Fatalf("policy %+v settings %s", p, p.Settings)
	}
	if p.SettingsRange.Start.Line != 20 {
		t.Fatalf("settings range %v, want line 20", p.SettingsRange)
	}
	if c.ReconcilerEnabled() || c.Reconciler.Interval != 10*time.Second {
		t.Fatalf("reconciler %+v", c.Reconciler)
	}
}

// Each broken file's diagnostics are compared with testdata/<name>.golden:
// what an operator reads on start-up, with file:line:col and a snippet.
func TestDiagnosticsGolden(t *testing.T) {
	dir, _ := filepath.Abs("testdata")
	for _, name := range []string{"syntax", "unknown_attr", "missing_plugin", "bad_values", "wrong_type"} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(filepath.Join("testdata", name+".hcl"))
			if err == nil {
				t.Fatal("Load succeeded, want diagnostics")
			}
			if _, ok := config.AsError(err); !ok {
				t.Fatalf("error %T is not a diagnostics error: %v", err, err)
			}
			got := strings.ReplaceAll(err.Error(), dir, "TESTDATA") + "\n"
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal([]byte(got), want) {
				t.Fatalf("diagnostics differ from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestErrorfPointsAtLine(t *testing.T) {
	c, err := config.Load("testdata/valid.hcl")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Errorf(c.Policy("validate").ModuleRange, "Not a WebAssembly module", "bad magic")
	msg := err.Error()
	if !strings.Contains(msg, "testdata/valid.hcl:19:3") || !strings.Contains(msg, `module   = "bin/module.wasm.txt"`) {
		t.Fatalf("diagnostic lacks position or snippet:\n%s", msg)
	}
}
