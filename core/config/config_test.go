package config_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
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
	if p.Fallback != "allow" || p.MemoryMiB != 64 || p.MaxMemoryMiB != 32 || p.MaxCalls != 1000 || p.LogLinesPerSecond != 5 {
		t.Fatalf("validate policy limits %+v", p)
	}
	if r := c.Policy(config.HookReconcile); r == nil || r.Fallback != "leave" || r.Timeout != 0 || r.MemoryMiB != 0 {
		t.Fatalf("reconcile policy %+v: want fallback leave and unset limits left zero", r)
	}
	if c.ReconcilerEnabled() || c.Reconciler.Interval != 10*time.Second {
		t.Fatalf("reconciler %+v", c.Reconciler)
	}
	if c.LeaseTTL != 15*time.Second || c.CacheDir != filepath.Join(dir, "cache/wasm") {
		t.Fatalf("lease_ttl %v, cache_dir %q", c.LeaseTTL, c.CacheDir)
	}
	if got := c.Executor.StepTimeouts; len(got) != 2 || got["create"] != 15*time.Minute || got["resize"] != 30*time.Minute || c.Executor.StepTimeout != 10*time.Minute {
		t.Fatalf("executor %+v", c.Executor)
	}
	if h := c.History; h.MaxRecords != 500 || h.MaxAge != 720*time.Hour || h.DeletedTTL != 24*time.Hour {
		t.Fatalf("history %+v", h)
	}
	if got, want := flavors(c), []flavor{{"m1.small", "m1.small", 1, 2048, 20}, {"m1.big", "Big", 8, 16384, 0}}; !slices.Equal(got, want) {
		t.Fatalf("flavors %+v, want %+v", got, want)
	}
	cirros := filepath.Join(dir, "images/cirros.qcow2")
	if got, want := images(c), []image{
		{"cirros", "cirros", cirros, cirros, "qcow2", 64, 0},
		{"debian-12", "Debian 12", "", "fake://debian-12", "iso", 0, 2},
	}; !slices.Equal(got, want) {
		t.Fatalf("images %+v, want %+v", got, want)
	}
}

// flavor and image are the decoded values of a catalog entry without its
// source ranges, so tests compare them exactly.
type flavor struct {
	id, name             string
	vcpus, ramMB, diskGB int
}

type image struct {
	id, name, file, source, diskFormat string
	minRAMMB, minDiskGB                int
}

func flavors(c *config.Config) []flavor {
	var fs []flavor
	for _, f := range c.Flavors {
		fs = append(fs, flavor{f.ID, f.Name, f.VCPUs, f.RAMMB, f.DiskGB})
	}
	return fs
}

func images(c *config.Config) []image {
	var is []image
	for _, im := range c.Images {
		is = append(is, image{im.ID, im.Name, im.File, im.Source, im.DiskFormat, im.MinRAMMB, im.MinDiskGB})
	}
	return is
}

// Each broken file's diagnostics are compared with testdata/<name>.golden:
// what an operator reads on start-up, with file:line:col and a snippet.
func TestDiagnosticsGolden(t *testing.T) {
	dir, _ := filepath.Abs("testdata")
	for _, name := range []string{"syntax", "unknown_attr", "missing_plugin", "bad_values", "bad_blocks", "wrong_type"} {
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
