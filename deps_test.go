package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/lucid-project/lucid/"

// pkg is what go list says about one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 15 {
		t.Fatalf("go list saw only %d packages", len(pkgs))
	}
	return pkgs
}

func within(rel string, dirs []string) bool {
	for _, d := range dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// Each heavy dependency has one door (STYLE.md point 2): a package outside
// the door may not import it directly.
func TestDependencyDoors(t *testing.T) {
	doors := []struct {
		prefix  string
		allowed []string
		why     string
	}{
		{"go.etcd.io/etcd/", []string{"core/store", "internal/testenv", "internal/throughput"}, "etcd is the store's business (the test harness plants raw keys; the throughput benchmark's baseline is raw etcd)"},
		{"github.com/tetratelabs/wazero", []string{"core/policy"}, "only the policy host runs WebAssembly"},
		{"github.com/hashicorp/go-plugin", []string{"core/driver", "sdk/driver"}, "only the plugin host and the driver SDK speak go-plugin"},
		{"github.com/hashicorp/hcl/", []string{"core/config"}, "HCL is decoded once, in config"},
		{"github.com/urfave/cli/", []string{"core/cli"}, "only the command line uses the CLI framework"},
	}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, imp := range p.Imports {
			for _, d := range doors {
				if strings.HasPrefix(imp, d.prefix) && !within(rel, d.allowed) {
					t.Errorf("%s imports %s directly; only %v may: %s", rel, imp, d.allowed, d.why)
				}
			}
		}
	}
}

// What a package links, directly or not (go list's Deps). Each rule says
// why: a vendor must not pull in the control plane, and the API must not
// link what only the owning node runs.
func TestTransitiveDependencies(t *testing.T) {
	rules := []struct {
		pkgs      []string
		forbidden []string
		why       string
	}{
		{[]string{"sdk"}, []string{mod + "core/", mod + "internal/"}, "sdk/ is what vendors and policy authors import; it must not pull in Lucid's core"},
		{[]string{"core/api", "core/lifecycle"}, []string{mod + "core/driver", mod + "core/executor", "github.com/hashicorp/go-plugin", "go.etcd.io/etcd/server/"},
			"the API only writes transitions; drivers, plugins and the etcd server belong to the node (core/node)"},
		{[]string{"core/executor"}, []string{mod + "core/driver", "go.etcd.io/etcd/server/"}, "the executor depends on the sdk driver contract, not on the plugin host"},
		{[]string{"core/store"}, []string{"go.etcd.io/etcd/server/"}, "the etcd server is core/store/embedded's, imported only by core/node"},
	}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, r := range rules {
			if !within(rel, r.pkgs) || rel == "core/store/embedded" {
				continue
			}
			for _, dep := range p.Deps {
				for _, f := range r.forbidden {
					if strings.HasPrefix(dep, f) {
						t.Errorf("%s depends on %s: %s", rel, dep, r.why)
					}
				}
			}
		}
	}
}
