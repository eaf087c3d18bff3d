package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// socketDirPrefix starts the name of every socket directory NewSocketDir
// makes: lucid-plugins-<host pid>-<random>.
const socketDirPrefix = "lucid-plugins-"

// NewSocketDir creates a private (0700) directory under parent ("" means
// the OS temp dir) for this host's plugin sockets, to pass as
// Config.SocketDir. Its name carries this process's pid, so that after a
// crash RemoveStaleSocketDirs can tell it belonged to a dead host. The
// caller removes it at shutdown.
func NewSocketDir(parent string) (string, error) {
	dir, err := os.MkdirTemp(parent, socketDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("plugin socket dir: %w", err)
	}
	return dir, nil
}

// RemoveStaleSocketDirs removes, under parent ("" means the OS temp dir),
// the socket directories NewSocketDir made for hosts that are no longer
// running, and returns their paths. A host calls it at start: a host that
// was SIGKILLed could not remove its own.
//
// Only directories named lucid-plugins-<pid>-<suffix> whose pid is not a
// running process are removed. Other entries are left alone, among them
// directories from hosts that named them otherwise (older releases used
// lucid-plugins-<random>, which cannot be told from a pid). A dead host's
// pid reused by another process keeps its directory until that process is
// gone too: the cost of that is an empty directory, never the sockets of
// a live host. Errors name each directory that could not be read or
// removed; the others are still removed.
func RemoveStaleSocketDirs(parent string) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("stale plugin socket dirs: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		pid, ok := socketDirPID(e.Name())
		if !ok || !e.IsDir() || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("stale plugin socket dir: %w", err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// socketDirPID parses the pid out of a NewSocketDir name.
func socketDirPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, socketDirPrefix)
	if !ok {
		return 0, false
	}
	digits, suffix, ok := strings.Cut(rest, "-")
	if !ok || suffix == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != digits {
		return 0, false
	}
	return pid, true
}
