// Package driver is what a hypervisor driver vendor imports to build a Lucid
// driver plugin: the Driver interface, the value types that cross the plugin
// boundary, the error sentinels, and Serve, which a plugin's main calls.
//
// A driver is a separate executable. The Lucid host (core/driver) launches
// it, handshakes over go-plugin's gRPC protocol (version ProtocolVersion),
// calls Info and Configure, and then calls the instance methods on behalf of
// the lifecycle engine and the reconciler. A minimal plugin:
//
//	func main() { driver.Serve(&myDriver{}) }
//
// Beyond the core Driver methods, a driver may implement the optional
// interfaces Rebuilder, Resizer and EventSource (optional.go); the host
// learns which from Info and refuses the others' actions up front.
//
// The subpackage drivertest is the conformance suite every driver must pass.
//
// This package must not import anything from Lucid's core: a test enforces
// it, so vendors never pull the control plane into their binaries.
package driver

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the driver protocol version. It changes only when the
// wire protocol changes incompatibly; host and plugin must agree on it.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake; host and plugin must agree. The magic
// cookie only keeps the binary from being run by hand as if it were a
// normal program; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "LUCID_DRIVER_PLUGIN",
	MagicCookieValue: "547f94407496e7f39f9c785af39707bddc93591702267629c87a9b6a4a4db390",
}

// PluginName is the key of the driver in go-plugin's plugin map.
const PluginName = "driver"

// PowerState is the hypervisor's view of an instance's power.
type PowerState string

// Power states. They match the power_state of Lucid's instance record.
const (
	PowerRunning  PowerState = "running"
	PowerShutdown PowerState = "shutdown"
	PowerCrashed  PowerState = "crashed"
	PowerPaused   PowerState = "paused"
	PowerNoState  PowerState = "nostate"
)

// Info describes a driver. Name and Version must be non-empty.
// Capabilities names optional features (e.g. "reboot"); the host may use
// them to refuse actions early instead of getting ErrUnsupported. A driver
// need not list CapRebuild, CapResize or CapEvents: Serve adds those of
// the optional interfaces it implements (see Capabilities).
type Info struct {
	Name         string
	Version      string
	Capabilities []string
}

// Spec is what Spawn creates. ID is chosen by Lucid (a UUID) and is the key
// for every later call; Name is the user's. Flavor and Image are resolved
// from the operator's catalogs before the call, so a driver receives sizes
// and a source it can use, never bare names it would have to look up.
type Spec struct {
	ID     string
	Name   string
	Flavor Flavor
	Image  Image
}

// Flavor is the size of an instance, as the operator's catalog defined it
// when the instance was built (a later change to the catalog does not
// reach instances already built).
type Flavor struct {
	// Name is the catalog entry's id, e.g. "m1.small"; informational.
	Name   string
	VCPUs  int
	RAMMB  int
	DiskGB int
}

// Image is what an instance boots from.
type Image struct {
	// ID and Name identify the catalog entry; informational.
	ID   string
	Name string
	// Source is where the driver finds the image: a path or URL in a form
	// the driver documents (the fake ignores it; a QEMU driver reads a
	// file).
	Source string
	// DiskFormat is "qcow2", "raw" and the like; "" when unknown.
	DiskFormat string
}

// Instance is one instance as the hypervisor sees it.
type Instance struct {
	ID    string
	Power PowerState
}

// Driver is implemented by a vendor and served with Serve; the host's
// client implements it too, so the same conformance suite runs in-process
// and across the plugin boundary.
//
// Every method takes a ctx that is cancelled when the host gives up on the
// call (including when the host's caller cancels); long operations must
// return promptly with ctx.Err() when it is done. Methods may be called
// concurrently. Errors should wrap ErrNotFound, ErrInvalidConfig or
// ErrUnsupported where they apply, so the host can tell them apart with
// errors.Is; any other error reaches the host as its message only.
type Driver interface {
	// Info returns the driver's name, version and capabilities. It is
	// called before Configure.
	Info(ctx context.Context) (Info, error)
	// Configure applies the operator's settings, a JSON object from the
	// HCL `config {}` block (possibly "{}" or empty). It is called once
	// per plugin process, before any instance method, and again after the
	// host restarts a crashed plugin. Bad settings return an error wrapping
	// ErrInvalidConfig that names the offending key.
	Configure(ctx context.Context, config []byte) error
	// Spawn creates and boots an instance. It is idempotent on spec.ID:
	// spawning an ID that already exists returns nil and changes nothing.
	Spawn(ctx context.Context, spec Spec) error
	// Destroy removes an instance, powering it off first if needed.
	// An unknown id returns ErrNotFound.
	Destroy(ctx context.Context, id string) error
	// Inspect returns one instance. An unknown id returns ErrNotFound.
	Inspect(ctx context.Context, id string) (Instance, error)
	// List returns every instance the driver knows, in one call. The
	// reconciler calls it on each sweep.
	List(ctx context.Context) ([]Instance, error)
	// PowerOff stops a running instance; an instance already shut down
	// stays so and returns nil. An unknown id returns ErrNotFound.
	PowerOff(ctx context.Context, id string) error
	// PowerOn starts a stopped or crashed instance; a running instance
	// returns nil. An unknown id returns ErrNotFound.
	PowerOn(ctx context.Context, id string) error
	// Reboot restarts an instance: soft (guest-cooperative) when hard is
	// false, a reset otherwise. A hard reboot also starts an instance that
	// is shut down or crashed. The instance is running afterwards.
	// An unknown id returns ErrNotFound.
	Reboot(ctx context.Context, id string, hard bool) error
}

// Sentinel errors. Drivers wrap them (fmt.Errorf("...: %w", ErrNotFound));
// they cross the plugin boundary as gRPC status codes and are restored on
// the host, so errors.Is works there.
var (
	// ErrNotFound: the instance id is unknown to the driver.
	ErrNotFound = errors.New("instance not found")
	// ErrInvalidConfig: Configure was given settings it cannot use.
	ErrInvalidConfig = errors.New("invalid driver config")
	// ErrUnsupported: the driver does not implement this action.
	ErrUnsupported = errors.New("unsupported by driver")
	// ErrUnavailable: the driver cannot be reached right now (its plugin
	// process exited and is being restarted). Nothing is known to have
	// happened; the caller may retry the same call later. Hosts wrap it;
	// drivers themselves do not return it.
	ErrUnavailable = errors.New("driver unavailable")
)
