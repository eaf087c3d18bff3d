// Package policytest helps policy authors test Go policies: it builds a
// policy package into a .wasm module the way Lucid's Makefile does, so a
// test can load the real artifact into a host.
//
// It runs the go command; it does not import a WebAssembly runtime (the
// SDK must stay free of one), so loading and calling the module is up to
// the test, for example through Lucid's core/policy.
package policytest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
)

// Build compiles the Go package pkg (an import path or a ./relative
// directory, resolved in dir; "" is the current directory) into the WASI
// reactor module out, with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o out pkg
//
// "go" is looked up on PATH; `go test` puts its own GOROOT/bin first.
// Output of a failed build is in the error.
func Build(ctx context.Context, dir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("policytest: build %s: %w\n%s", pkg, err, outBuf.Bytes())
	}
	return nil
}
