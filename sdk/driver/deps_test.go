package driver_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestNoCoreImports keeps the SDK free of Lucid's control plane: no package
// under sdk/ may depend, even indirectly, on github.com/lucid-project/lucid/core.
// Vendors import the SDK; pulling core in would drag etcd, wazero and the
// rest into every driver binary and couple them to internals.
func TestNoCoreImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const module = "github.com/lucid-project/lucid"
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Imports,Error", module+"/sdk/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	type pkg struct {
		ImportPath string
		Imports    []string
	}
	var pkgs []pkg
	importedBy := map[string]string{} // package -> one package importing it
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
		for _, imp := range p.Imports {
			importedBy[imp] = p.ImportPath
		}
	}
	checked := 0
	for _, p := range pkgs {
		if strings.HasPrefix(p.ImportPath, module+"/sdk/") {
			checked++
		}
		if p.ImportPath == module+"/core" || strings.HasPrefix(p.ImportPath, module+"/core/") {
			t.Errorf("sdk depends on %s (imported by %s)", p.ImportPath, importedBy[p.ImportPath])
		}
	}
	if checked == 0 {
		t.Fatal("go list found no sdk packages; is the test running inside the module?")
	}
}
