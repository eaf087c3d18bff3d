//go:build unix

package driver

import (
	"errors"
	"syscall"
)

// processAlive reports whether a process with this pid exists (a zombie
// counts: its parent has not reaped it yet). EPERM means it exists but
// belongs to someone else.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
