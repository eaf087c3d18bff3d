package config_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/config"
)

// parseSnippet parses src followed by whatever of a minimal valid config
// src does not provide itself. The snippet comes first, so a line:col in
// a test's expectation is the line:col in its snippet. The file is named
// as if in testdata, so relative paths resolve there.
func parseSnippet(src string) (*config.Config, error) {
	if !strings.Contains(src, "store {") {
		src += "\nstore {\n  embedded { data_dir = \"data/etcd\" }\n}\n"
	}
	if !strings.Contains(src, "api {") {
		src += "\napi { listen = \"127.0.0.1:8774\" }\n"
	}
	src += "\ndriver \"fake\" { plugin = \"bin/plugin\" }\n"
	return config.Parse(filepath.Join("testdata", "snippet.hcl"), []byte(src))
}

// wantDiagnostic parses src as parseSnippet does and fails the test
// unless it yields exactly one diagnostic, at line:col at, with summary
// and detail.
func wantDiagnostic(t *testing.T, src, at, summary, detail string) {
	t.Helper()
	_, err := parseSnippet(src)
	if err == nil {
		t.Fatal("Parse succeeded, want a diagnostic")
	}
	e, ok := config.AsError(err)
	if !ok {
		t.Fatalf("error %T is not a diagnostics error: %v", err, err)
	}
	if len(e.Diags) != 1 {
		t.Fatalf("%d diagnostics, want 1:\n%v", len(e.Diags), err)
	}
	d := e.Diags[0]
	if d.Subject == nil {
		t.Fatalf("diagnostic without a position: %v", err)
	}
	got := fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
	if got != at || d.Summary != summary || d.Detail != detail {
		t.Fatalf("got  %s %q\n     %q\nwant %s %q\n     %q", got, d.Summary, d.Detail, at, summary, detail)
	}
}

// TestBlocksValid decodes each new block and compares the typed values it
// yields, unset values included (zero: the owning package's default).
func TestBlocksValid(t *testing.T) {
	dir, _ := filepath.Abs("testdata")
	cases := []struct {
		name string
		src  string
		got  func(*config.Config) any
		want any
	}{
		{"defaults", "defaults {\n  project_id = \"p1\"\n  user_id    = \"u1\"\n}", func(c *config.Config) any { return [2]string{c.Defaults.ProjectID, c.Defaults.UserID} }, [2]string{"p1", "u1"}},
		{"defaults unset", ``, func(c *config.Config) any { return [2]string{c.Defaults.ProjectID, c.Defaults.UserID} }, [2]string{"", ""}},
		{"api max_limit", "api {\n  listen    = \"127.0.0.1:8774\"\n  max_limit = 50\n}", func(c *config.Config) any { return c.API.MaxLimit }, 50},
		{"api max_limit unset", ``, func(c *config.Config) any { return c.API.MaxLimit }, 0},
		{"lease_ttl", `lease_ttl = "10s"`, func(c *config.Config) any { return c.LeaseTTL }, 10 * time.Second},
		{"lease_ttl minimum", `lease_ttl = "2s"`, func(c *config.Config) any { return c.LeaseTTL }, 2 * time.Second},
		{"lease_ttl unset", ``, func(c *config.Config) any { return c.LeaseTTL }, time.Duration(0)},
		{"cache_dir relative", `cache_dir = "cache"`, func(c *config.Config) any { return c.CacheDir }, filepath.Join(dir, "cache")},
		{"cache_dir absolute", `cache_dir = "/var/cache/lucid"`, func(c *config.Config) any { return c.CacheDir }, "/var/cache/lucid"},
		{"cache_dir existing directory", `cache_dir = "bin"`, func(c *config.Config) any { return c.CacheDir }, filepath.Join(dir, "bin")},
		{"cache_dir unset", ``, func(c *config.Config) any { return c.CacheDir }, ""},
		{
			"step timeouts", "executor {\n  step_timeout  = \"10m\"\n  step_timeouts = { create = \"15m\", \"resize\" = \"30m\" }\n}",
			func(c *config.Config) any {
				return []time.Duration{c.StepTimeout("create"), c.StepTimeout("resize"), c.StepTimeout("stop"), c.StepTimeout("nonsense")}
			},
			[]time.Duration{15 * time.Minute, 30 * time.Minute, 10 * time.Minute, 10 * time.Minute},
		},
		{
			"per-action timeout without step_timeout", "executor {\n  step_timeouts = { hardReboot = \"1m\" }\n}",
			func(c *config.Config) any {
				return []time.Duration{c.StepTimeout("hardReboot"), c.StepTimeout("reboot")}
			},
			[]time.Duration{time.Minute, 0},
		},
		{"empty step_timeouts", "executor {\n  step_timeouts = {}\n}", func(c *config.Config) any { return c.StepTimeout("create") }, time.Duration(0)},
		{"executor unset", ``, func(c *config.Config) any { return c.StepTimeout("create") }, time.Duration(0)},
		{
			"history", "history {\n  max_records = 1000\n  max_age     = \"2160h\"\n  deleted_ttl = \"168h\"\n}",
			func(c *config.Config) any { return []any{c.History.MaxRecords, c.History.MaxAge, c.History.DeletedTTL} },
			[]any{1000, 2160 * time.Hour, 168 * time.Hour},
		},
		{
			"history unset", ``,
			func(c *config.Config) any { return []any{c.History.MaxRecords, c.History.MaxAge, c.History.DeletedTTL} },
			[]any{0, time.Duration(0), time.Duration(0)},
		},
		{
			"embedded limits", "store {\n  embedded {\n    data_dir             = \"data/etcd\"\n    quota_mib            = 16\n    compaction_revisions = 1000\n  }\n}",
			func(c *config.Config) any {
				return []int{c.Store.Embedded.QuotaMiB, c.Store.Embedded.CompactionRevisions}
			},
			[]int{16, 1000},
		},
		{
			"embedded limits unset", ``,
			func(c *config.Config) any {
				return []int{c.Store.Embedded.QuotaMiB, c.Store.Embedded.CompactionRevisions}
			},
			[]int{0, 0},
		},
		{
			"policy limits", "policy \"validate\" {\n  module               = \"bin/module.wasm.txt\"\n  fallback             = \"allow\"\n  max_calls            = 1\n  max_memory_mib       = 64\n  memory_mib           = 64\n  log_lines_per_second = 0\n}",
			func(c *config.Config) any {
				p := c.Policy("validate")
				return []any{p.Fallback, p.MaxCalls, p.MaxMemoryMiB, p.MemoryMiB, p.LogLinesPerSecond, p.Timeout}
			},
			[]any{"allow", 1, 64, 64, 0, time.Duration(0)},
		},
		{
			"max_memory_mib without memory_mib", "policy \"reconcile\" {\n  module         = \"bin/module.wasm.txt\"\n  fallback       = \"flag\"\n  max_memory_mib = 512\n}",
			func(c *config.Config) any {
				p := c.Policy("reconcile")
				return []any{p.Fallback, p.MaxMemoryMiB, p.MemoryMiB}
			},
			[]any{"flag", 512, 0},
		},
		{
			"policy limits unset", "policy \"validate\" {\n  module = \"bin/module.wasm.txt\"\n}",
			func(c *config.Config) any {
				p := c.Policy("validate")
				return []any{p.Fallback, p.MaxCalls, p.MaxMemoryMiB, p.MemoryMiB, p.LogLinesPerSecond, p.Timeout}
			},
			[]any{"", 0, 0, 0, 0, time.Duration(0)},
		},
		{
			"flavors", "flavor \"m1.tiny\" {\n  vcpus   = 1\n  ram_mb  = 1\n  disk_gb = 0\n}\nflavor \"x\" {\n  name    = \"Extra Large\"\n  vcpus   = 64\n  ram_mb  = 262144\n  disk_gb = 2000\n}\nflavor \"self\" {\n  name    = \"self\"\n  vcpus   = 1\n  ram_mb  = 512\n  disk_gb = 1\n}",
			func(c *config.Config) any { return flavors(c) },
			[]flavor{{"m1.tiny", "m1.tiny", 1, 1, 0}, {"x", "Extra Large", 64, 262144, 2000}, {"self", "self", 1, 512, 1}},
		},
		{
			"images", "image \"a\" { file = \"images/cirros.qcow2\" }\n" +
				"image \"b\" {\n  file        = \"images/cirros.qcow2\"\n  disk_format = \"raw\"\n}\n" +
				"image \"c\" { source = \"http://example.com/c.QCOW2\" }\n" +
				"image \"d\" {\n  name        = \"D\"\n  source      = \"fake://d\"\n  min_ram_mb  = 128\n  min_disk_gb = 1\n}\n" +
				"image \"e\" { file = \"bin/plugin\" }\n",
			func(c *config.Config) any { return images(c) },
			[]image{
				{"a", "a", filepath.Join(dir, "images/cirros.qcow2"), filepath.Join(dir, "images/cirros.qcow2"), "qcow2", 0, 0},
				{"b", "b", filepath.Join(dir, "images/cirros.qcow2"), filepath.Join(dir, "images/cirros.qcow2"), "raw", 0, 0},
				{"c", "c", "", "http://example.com/c.QCOW2", "qcow2", 0, 0},
				{"d", "D", "", "fake://d", "raw", 128, 1},
				{"e", "e", filepath.Join(dir, "bin/plugin"), filepath.Join(dir, "bin/plugin"), "raw", 0, 0},
			},
		},
		{"no catalogs", ``, func(c *config.Config) any { return []int{len(c.Flavors), len(c.Images)} }, []int{0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseSnippet(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.got(c); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// TestBlocksInvalid: each bad value is exactly one diagnostic, at its own
// attribute (line:col in the snippet), with a message that names it.
func TestBlocksInvalid(t *testing.T) {
	dir, _ := filepath.Abs("testdata")
	const policy = "policy \"validate\" {\n  module = \"bin/module.wasm.txt\"\n"
	const reconcile = "policy \"reconcile\" {\n  module = \"bin/module.wasm.txt\"\n"
	const small = "  vcpus   = 1\n  ram_mb  = 512\n  disk_gb = 1\n}\n"
	cases := []struct {
		name    string
		src     string
		at      string // line:col
		summary string
		detail  string
	}{
		{"project_id with space", "defaults {\n  project_id = \"my project\"\n}", "2:3", "Invalid project_id", `project_id "my project" may not contain whitespace.`},
		{"user_id empty", "defaults {\n  user_id = \"\"\n}", "2:3", "Invalid user_id", `user_id "" is empty.`},
		{"project_id too long", "defaults {\n  project_id = \"" + strings.Repeat("p", 256) + "\"\n}", "2:3", "Invalid project_id", `project_id is 256 bytes long; at most 255 are allowed.`},
		{"max_limit zero", "api {\n  listen    = \"127.0.0.1:8774\"\n  max_limit = 0\n}", "3:3", "Invalid max_limit", "max_limit must be at least 1; got 0."},
		{"lease_ttl below minimum", `lease_ttl = "1s"`, "1:1", "lease_ttl too short", `lease_ttl "1s" is below the minimum "2s": etcd cannot keep a shorter lease alive reliably.`},
		{"lease_ttl fraction", `lease_ttl = "2500ms"`, "1:1", "Invalid lease_ttl", `lease_ttl "2500ms" is not a whole number of seconds; etcd leases count seconds.`},
		{"lease_ttl not a duration", `lease_ttl = "soon"`, "1:1", "Invalid duration", `"soon" is not a positive duration such as "200ms" or "30s".`},
		{"lease_ttl negative", `lease_ttl = "-10s"`, "1:1", "Invalid duration", `"-10s" is not a positive duration such as "200ms" or "30s".`},
		{"lease_ttl empty", `lease_ttl = ""`, "1:1", "Invalid duration", `"" is not a positive duration such as "200ms" or "30s".`},
		{"cache_dir empty", `cache_dir = ""`, "1:1", "Empty cache_dir", `Remove cache_dir to use the default (<user cache dir>/lucid/wasm), or name a directory.`},
		{"cache_dir a file", `cache_dir = "bin/plugin"`, "1:1", "cache_dir is not a directory", dir + "/bin/plugin exists and is not a directory."},

		{"step_timeout zero", "executor {\n  step_timeout = \"0s\"\n}", "2:3", "Invalid duration", `"0s" is not a positive duration such as "200ms" or "30s".`},
		{"step_timeouts unknown action", "executor {\n  step_timeouts = { create = \"15m\", migrate = \"1h\" }\n}", "2:37", "Unknown action in step_timeouts",
			`"migrate" is not an action; use one of confirmResize, create, delete, hardReboot, reboot, rebuild, resize, revertResize, start, stop.`},
		{"step_timeouts bad duration", "executor {\n  step_timeouts = {\n    create = \"fast\"\n  }\n}", "3:5", "Invalid duration", `"fast" is not a positive duration such as "200ms" or "30s".`},
		{"step_timeouts number", "executor {\n  step_timeouts = { stop = 15 }\n}", "2:21", "Invalid duration", `"15" is not a positive duration such as "200ms" or "30s".`},
		{"step_timeouts list value", "executor {\n  step_timeouts = { stop = [\"1m\"] }\n}", "2:21", "Invalid duration", `stop: a step timeout is a duration string such as "15m".`},
		{"step_timeouts duplicate", "executor {\n  step_timeouts = { stop = \"1m\", \"stop\" = \"2m\" }\n}", "2:34", "Duplicate step timeout", `stop is already set at testdata/snippet.hcl:2:21.`},
		{"step_timeouts not a map", "executor {\n  step_timeouts = \"15m\"\n}", "2:19", "Invalid step_timeouts", `step_timeouts must be a map from action name to duration, e.g. { create = "15m", resize = "30m" }.`},

		{"max_records zero", "history {\n  max_records = 0\n}", "2:3", "Invalid max_records", "max_records must be at least 1; got 0."},
		{"max_age zero", "history {\n  max_age = \"0s\"\n}", "2:3", "Invalid duration", `"0s" is not a positive duration such as "200ms" or "30s".`},
		{"deleted_ttl bad", "history {\n  deleted_ttl = \"a week\"\n}", "2:3", "Invalid duration", `"a week" is not a positive duration such as "200ms" or "30s".`},

		{"quota_mib small", "store {\n  embedded {\n    data_dir  = \"d\"\n    quota_mib = 8\n  }\n}", "4:5", "Invalid quota_mib", "quota_mib must be at least 16; got 8."},
		{"compaction_revisions small", "store {\n  embedded {\n    data_dir             = \"d\"\n    compaction_revisions = 999\n  }\n}", "4:5", "Invalid compaction_revisions", "compaction_revisions must be at least 1000; got 999."},

		{"validate fallback flag", policy + "  fallback = \"flag\"\n}", "3:3", "Invalid fallback", `"flag" is not a fallback for a validate policy; use "deny" (the default) or "allow".`},
		{"reconcile fallback deny", reconcile + "  fallback = \"deny\"\n}", "3:3", "Invalid fallback", `"deny" is not a fallback for a reconcile policy; use "flag" (the default) or "leave".`},
		{"max_calls zero", policy + "  max_calls = 0\n}", "3:3", "Invalid max_calls", "max_calls must be at least 1; got 0."},
		{"max_memory_mib zero", policy + "  max_memory_mib = 0\n}", "3:3", "Invalid max_memory_mib", "max_memory_mib must be at least 1; got 0."},
		{"max_memory_mib above memory_mib", policy + "  memory_mib     = 64\n  max_memory_mib = 65\n}", "4:3", "Invalid max_memory_mib",
			"max_memory_mib = 65 is above memory_mib = 64: an instance can never grow past memory_mib, so it would never be recycled for its memory."},
		{"memory_mib above wasm32", policy + "  memory_mib = 4097\n}", "3:3", "Invalid memory_mib", "memory_mib must be between 1 and 4096 (the 4 GiB of wasm32); got 4097."},
		{"memory_mib zero", policy + "  memory_mib = 0\n}", "3:3", "Invalid memory_mib", "memory_mib must be between 1 and 4096 (the 4 GiB of wasm32); got 0."},
		{"log_lines_per_second negative", policy + "  log_lines_per_second = -1\n}", "3:3", "Invalid log_lines_per_second", "log_lines_per_second must be at least 0; got -1."},
		{"policy timeout zero", policy + "  timeout = \"0ms\"\n}", "3:3", "Invalid duration", `"0ms" is not a positive duration such as "200ms" or "30s".`},

		{"vcpus zero", "flavor \"f\" {\n  vcpus   = 0\n  ram_mb  = 512\n  disk_gb = 1\n}", "2:3", "Invalid vcpus", "vcpus must be at least 1; got 0."},
		{"ram_mb zero", "flavor \"f\" {\n  vcpus   = 1\n  ram_mb  = 0\n  disk_gb = 1\n}", "3:3", "Invalid ram_mb", "ram_mb must be at least 1; got 0."},
		{"disk_gb negative", "flavor \"f\" {\n  vcpus   = 1\n  ram_mb  = 512\n  disk_gb = -1\n}", "4:3", "Invalid disk_gb", "disk_gb must be at least 0; got -1."},
		{"flavor id with slash", "flavor \"m1/small\" {\n" + small, "1:8", "Invalid flavor id", `Flavor id "m1/small" may not contain '/'.`},
		{"flavor id with space", "flavor \"m1 small\" {\n" + small, "1:8", "Invalid flavor id", `Flavor id "m1 small" may not contain whitespace.`},
		{"flavor id with tab", "flavor \"m1\\tsmall\" {\n" + small, "1:8", "Invalid flavor id", `Flavor id "m1\tsmall" may not contain whitespace.`},
		{"flavor id with bell", "flavor \"m1\\u0007small\" {\n" + small, "1:8", "Invalid flavor id", `Flavor id "m1\asmall" may not contain control characters.`},
		{"flavor id empty", "flavor \"\" {\n" + small, "1:8", "Invalid flavor id", `Flavor id "" is empty.`},
		{"duplicate flavor", "flavor \"f\" {\n" + small + "flavor \"f\" {\n" + small, "6:8", "Duplicate flavor", `Flavor "f" is already defined at testdata/snippet.hcl:1:8.`},
		{"flavor name is another's id", "flavor \"a\" {\n" + small + "flavor \"b\" {\n  name    = \"a\"\n" + small, "7:3", "Ambiguous flavor name",
			`"a" is the id of the flavor at testdata/snippet.hcl:1:8, so a lookup of "a" would find that flavor, never this one.`},
		{"flavor name is a later id", "flavor \"b\" {\n  name    = \"a\"\n" + small + "flavor \"a\" {\n" + small, "2:3", "Ambiguous flavor name",
			`"a" is the id of the flavor at testdata/snippet.hcl:7:8, so a lookup of "a" would find that flavor, never this one.`},
		{"duplicate flavor name", "flavor \"a\" {\n  name    = \"Small\"\n" + small + "flavor \"b\" {\n  name    = \"Small\"\n" + small, "8:3", "Duplicate flavor name",
			`The flavor at testdata/snippet.hcl:2:3 is already named "Small"; names must be unique so that a lookup by name finds one flavor.`},
		{"flavor name empty", "flavor \"a\" {\n  name    = \"\"\n" + small, "2:3", "Empty flavor name", `Remove name to use the id "a", or give a display name.`},

		{"image file and source", "image \"i\" {\n  file   = \"images/cirros.qcow2\"\n  source = \"fake://i\"\n}", "3:3", "Conflicting image source",
			`Image "i" sets file at testdata/snippet.hcl:2:3; set file (a path) or source (passed to the driver as is), not both.`},
		{"image without source", "image \"i\" {\n  name = \"I\"\n}", "1:1", "Missing image source", `Image "i" needs file = "images/i.qcow2" (a path) or source = "..." (passed to the driver as is).`},
		{"image file missing", "image \"i\" {\n  file = \"images/nope.qcow2\"\n}", "2:3", "Image file not found", "No file at " + dir + "/images/nope.qcow2."},
		{"image file is a directory", "image \"i\" {\n  file = \"images\"\n}", "2:3", "Image file is a directory", dir + "/images is a directory, not an image file."},
		{"image file empty", "image \"i\" {\n  file = \"\"\n}", "2:3", "Empty image file", "file must name the image file."},
		{"image source empty", "image \"i\" {\n  source = \"\"\n}", "2:3", "Empty image source", "source must say where the driver finds the image."},
		{"image disk_format unknown", "image \"i\" {\n  source      = \"fake://i\"\n  disk_format = \"QCOW2\"\n}", "3:3", "Unknown disk_format",
			`"QCOW2" is not a disk format; use one of ami, ari, aki, vhd, vhdx, vmdk, raw, qcow2, vdi, iso, ploop.`},
		{"image min_ram_mb negative", "image \"i\" {\n  source     = \"fake://i\"\n  min_ram_mb = -1\n}", "3:3", "Invalid min_ram_mb", "min_ram_mb must be at least 0; got -1."},
		{"image min_disk_gb negative", "image \"i\" {\n  source      = \"fake://i\"\n  min_disk_gb = -5\n}", "3:3", "Invalid min_disk_gb", "min_disk_gb must be at least 0; got -5."},
		{"duplicate image", "image \"i\" { source = \"fake://i\" }\nimage \"i\" { source = \"fake://j\" }", "2:7", "Duplicate image", `Image "i" is already defined at testdata/snippet.hcl:1:7.`},
		{"image name is another's id", "image \"cirros\" { source = \"fake://c\" }\nimage \"x\" {\n  name   = \"cirros\"\n  source = \"fake://x\"\n}", "3:3", "Ambiguous image name",
			`"cirros" is the id of the image at testdata/snippet.hcl:1:7, so a lookup of "cirros" would find that image, never this one.`},
		{"image id with slash", "image \"a/b\" { source = \"fake://c\" }", "1:7", "Invalid image id", `Image id "a/b" may not contain '/'.`},

		{"checksum not hex", "driver \"qemu\" {\n  plugin   = \"bin/plugin\"\n  checksum = \"sha256:" + strings.Repeat("g", 64) + "\"\n}", "3:3", "Invalid checksum", `checksum must look like "sha256:<64 hex digits>".`},
		{"checksum short", "driver \"qemu\" {\n  plugin   = \"bin/plugin\"\n  checksum = \"sha256:abcd\"\n}", "3:3", "Invalid checksum", `checksum must look like "sha256:<64 hex digits>".`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantDiagnostic(t, tc.src, tc.at, tc.summary, tc.detail) })
	}
}

// A checksum of the right shape passes (it is checked against the file
// when the plugin starts, not here).
func TestChecksumWellFormed(t *testing.T) {
	src := "driver \"qemu\" {\n  plugin   = \"bin/plugin\"\n  checksum = \"sha256:" + strings.Repeat("0a", 32) + "\"\n}"
	if _, err := parseSnippet(src); err != nil {
		t.Fatal(err)
	}
}

func TestCatalogLookup(t *testing.T) {
	c, err := config.Load("testdata/valid.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref    string
		flavor string // the ID found, "" for none
		image  string
	}{
		{"m1.small", "m1.small", ""},
		{"m1.big", "m1.big", ""},
		{"Big", "m1.big", ""},
		{"big", "", ""},
		{"cirros", "", "cirros"},
		{"debian-12", "", "debian-12"},
		{"Debian 12", "", "debian-12"},
		{"", "", ""},
	} {
		f, fok := c.Flavor(tc.ref)
		im, iok := c.Image(tc.ref)
		if f.ID != tc.flavor || fok != (tc.flavor != "") || im.ID != tc.image || iok != (tc.image != "") {
			t.Errorf("lookup %q: flavor %q %v, image %q %v; want flavor %q, image %q", tc.ref, f.ID, fok, im.ID, iok, tc.flavor, tc.image)
		}
	}
}

// The shipped config.hcl parses; its plugin and module are build outputs
// a clean checkout lacks, hence SkipFileChecks.
func TestShippedConfig(t *testing.T) {
	c, err := config.Options{SkipFileChecks: true}.Load("../../config.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := flavors(c), []flavor{
		{"m1.tiny", "m1.tiny", 1, 512, 1},
		{"m1.small", "m1.small", 1, 2048, 20},
		{"m1.medium", "m1.medium", 2, 4096, 40},
	}; !reflect.DeepEqual(got, want) {
		t.Fatalf("flavors %+v, want %+v", got, want)
	}
	if got, want := images(c), []image{
		{"cirros", "cirros", "", "fake://cirros", "raw", 0, 0},
		{"debian-12", "debian-12", "", "fake://debian-12", "raw", 0, 0},
	}; !reflect.DeepEqual(got, want) {
		t.Fatalf("images %+v, want %+v", got, want)
	}
	if !c.AuthEnabled() || c.TokenTTL() != time.Hour || c.QuotaFor("admin") != (config.Limits{Instances: 10, Cores: 20, RAMMB: 51200}) ||
		c.CloudsYAMLPath() != filepath.Join(c.Dir, "data", "clouds.yaml") {
		t.Fatalf("shipped identity: auth %v, token_ttl %v, quota %+v, clouds.yaml %s", c.AuthEnabled(), c.TokenTTL(), c.QuotaFor("admin"), c.CloudsYAMLPath())
	}
	// The README's create example names these.
	if _, ok := c.Flavor("m1.small"); !ok {
		t.Fatal("no m1.small")
	}
	if _, ok := c.Image("cirros"); !ok {
		t.Fatal("no cirros")
	}
}

// SkipFileChecks skips only the checks that need the files; every other
// problem is still reported.
func TestSkipFileChecks(t *testing.T) {
	skip := config.Options{SkipFileChecks: true}
	if _, err := skip.Load("testdata/missing_plugin.hcl"); err != nil {
		t.Fatalf("missing plugin reported with SkipFileChecks: %v", err)
	}
	src := "image \"i\" {\n  file = \"images/nope.qcow2\"\n}\nlease_ttl = \"1s\"\n"
	_, err := skip.Parse(filepath.Join("testdata", "snippet.hcl"), []byte(src+"store {\n  embedded { data_dir = \"d\" }\n}\napi { listen = \"127.0.0.1:8774\" }\ndriver \"fake\" { plugin = \"bin/nope\" }\n"))
	e, ok := config.AsError(err)
	if !ok || len(e.Diags) != 1 || e.Diags[0].Summary != "lease_ttl too short" {
		t.Fatalf("got %v, want only the lease_ttl diagnostic", err)
	}
}
