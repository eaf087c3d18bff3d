package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// Each heavy dependency has one door (STYLE.md point 2): this test fails
// when a package outside the door imports it directly.
func TestDependencyDoors(t *testing.T) {
	doors := map[string][]string{
		"go.etcd.io/etcd/":                     {"core/store"},
		"github.com/tetratelabs/wazero":        {"core/policy"},
		"github.com/hashicorp/go-plugin":       {"core/driver", "sdk/driver"},
		"github.com/hashicorp/hcl/":            {"core/config"},
		"github.com/urfave/cli/":               {"core/cli"},
		"github.com/lucid-project/lucid/core/": nil, // checked below for sdk/ only
	}
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	const mod = "github.com/lucid-project/lucid/"
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, imp := range p.Imports {
			for prefix, allowed := range doors {
				if !strings.HasPrefix(imp, prefix) {
					continue
				}
				if prefix == mod+"core/" {
					if strings.HasPrefix(rel, "sdk/") {
						t.Errorf("%s imports %s: sdk/ must not depend on core/", rel, imp)
					}
					continue
				}
				ok := false
				for _, a := range allowed {
					if rel == a || strings.HasPrefix(rel, a+"/") {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s directly; only %v may", rel, imp, allowed)
				}
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Fatalf("go list saw only %d packages", seen)
	}
}
