//go:build !linux

package driver

import "os/exec"

// forker starts a Plugin's processes. Only Linux has a parent-death
// signal (see forker_linux.go); elsewhere a plugin outlives a killed host
// until sdk driver.Serve notices its parent is gone.
type forker struct{}

func newForker() *forker { return &forker{} }

func (*forker) start(cmd *exec.Cmd) error { return cmd.Start() }

func (*forker) close() {}
