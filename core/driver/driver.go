// Package driver is Lucid's driver host: it launches each configured driver
// plugin (an executable built with sdk/driver) as a subprocess, checks its
// checksum, handshakes over go-plugin's gRPC protocol, configures it, and
// keeps it running. A *Plugin is used through the sdk driver.Driver
// interface; the lifecycle engine and the reconciler never see go-plugin.
//
// When the plugin process dies, calls in flight and calls made while it is
// down fail promptly with an error wrapping ErrPluginExited (which matches
// sdk driver.ErrUnavailable, and the last restart failure, e.g.
// ErrChecksum); a supervisor goroutine restarts it with exponential backoff
// and configures it again, after which calls succeed. Close stops the
// supervisor and the process. On Linux a plugin dies with its host, even a
// SIGKILLed one.
//
// A *Plugin also forwards the optional interfaces (driver.Rebuilder,
// driver.Resizer, driver.EventSource) when the plugin reports their
// capability, and Subscribe gives an event subscription that lasts across
// restarts. NewSocketDir and RemoveStaleSocketDirs manage the host's
// private socket directory.
//
// Only this package and sdk/driver import go-plugin. See NOTES.md for the
// decisions behind the restart and socket handling.
package driver

import (
	"errors"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"github.com/lucid-project/lucid/sdk/driver"
)

// Config says how to run one driver plugin. It mirrors the HCL block
//
//	driver "fake" { plugin = "bin/lucid-driver-fake"  config { ... } }
type Config struct {
	// Name is the driver's name from HCL, e.g. "fake". It tags log lines
	// and errors.
	Name string
	// Path is the plugin executable.
	Path string
	// Checksum, if set, is "sha256:<hex>" of the executable. It is checked
	// before every launch, restarts included; a mismatch refuses to start.
	Checksum string
	// Config is the JSON object passed to the plugin's Configure, on start
	// and after every restart. Empty means "{}" to the plugin's taste.
	Config []byte
	// Env and PassEnv are the plugin process's environment beyond what
	// the plugin protocol needs (its handshake cookie, the client
	// certificate of AutoMTLS, the socket directory) and PATH: Env's
	// variables, and those of PassEnv that are set in the host's
	// environment (Env wins over both). Nothing else of the host's
	// environment reaches a plugin, so credentials in it stay with the
	// host. A name the protocol uses (the cookie, PLUGIN_*) is refused
	// with ErrEnv.
	Env     map[string]string
	PassEnv []string
	// SocketDir is where each plugin process gets a private directory for
	// its unix socket. The directory is removed when the process is gone,
	// even after a SIGKILL. "" means the OS temp dir.
	SocketDir string
	// Logger receives the host's events about the plugin and the plugin's
	// own stderr/log lines, tagged driver=<Name>. nil discards them.
	Logger *slog.Logger
}

// Sentinel errors, checked with errors.Is.
var (
	// ErrLaunch: the plugin could not be started: a missing or
	// non-executable path, a failed handshake, a process that exits or
	// does not answer during start.
	ErrLaunch = errors.New("cannot launch driver plugin")
	// ErrChecksum: the executable does not match Config.Checksum, or the
	// checksum is malformed.
	ErrChecksum = errors.New("driver plugin checksum mismatch")
	// ErrEnv: Config.Env or Config.PassEnv names a variable the plugin
	// protocol sets itself.
	ErrEnv = errors.New("driver plugin environment refused")
	// ErrPluginExited: the plugin process died during the call, or is down
	// and being restarted. Retrying later may succeed. It matches the sdk's
	// driver.ErrUnavailable, which is what callers outside this package
	// check, so they need not import the host.
	ErrPluginExited = fmt.Errorf("driver plugin exited (%w)", driver.ErrUnavailable)
	// ErrClosed: the Plugin was closed.
	ErrClosed = errors.New("driver plugin closed")
)

// MaxMessage is the most bytes of a failed call's reason that
// CallError.Error shows. A plugin writes its errors' text, and that text
// becomes an instance's fault and history message in etcd: a plugin's
// megabyte must not.
const MaxMessage = 1024

// CallError records a failed driver call: which driver, which operation,
// and why. Err wraps the sdk sentinels (driver.ErrNotFound...), the
// context errors, or ErrPluginExited / ErrClosed.
type CallError struct {
	Driver string // Config.Name
	Op     string // method, e.g. "Spawn"
	Err    error
}

// Error names the driver and the operation, then Err's text, cut to
// MaxMessage bytes (at a character boundary, saying how much was cut).
// Err itself is left whole, for errors.Is and As.
func (e *CallError) Error() string {
	return "driver " + e.Driver + ": " + e.Op + ": " + clip(e.Err.Error(), MaxMessage)
}

// clip cuts s to at most max bytes, not inside a UTF-8 sequence, and
// says how many bytes it dropped.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", s[:cut], len(s)-cut)
}

// Unwrap returns the underlying error.
func (e *CallError) Unwrap() error { return e.Err }
