// Command lucid-driver-minimal is the smallest complete Lucid driver: a
// pretend hypervisor whose instances are entries in a map. Copy it to start
// a real driver, replacing each map operation with a call to your
// hypervisor. See README.md for building, configuring and testing it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/lucid-project/lucid/sdk/driver"
)

// main hands the driver to Serve, which speaks the plugin protocol to the
// Lucid host and never returns. Run by hand, it prints a notice and exits.
func main() { driver.Serve(newHypervisor(os.Stderr)) }

// hypervisor implements driver.Driver. The host calls its methods
// concurrently, so mu guards the fields below it.
type hypervisor struct {
	log io.Writer // stderr: the host logs each line; an "[INFO]" prefix sets the level

	mu        sync.Mutex
	greeting  string
	instances map[string]driver.PowerState // by instance ID
}

var _ driver.Driver = (*hypervisor)(nil)

func newHypervisor(log io.Writer) *hypervisor {
	return &hypervisor{log: log, greeting: "hello", instances: map[string]driver.PowerState{}}
}

// Info names the driver. The host calls it before Configure.
func (h *hypervisor) Info(ctx context.Context) (driver.Info, error) {
	return driver.Info{Name: "minimal", Version: "0.1.0", Capabilities: []string{"power", "reboot"}}, ctx.Err()
}

// config is the `config {}` block, one field per key.
type config struct {
	Greeting string `json:"greeting"` // logged on every Spawn
}

// Configure gets the operator's HCL `config {}` block as a JSON object. It
// decodes strictly: an unknown key is most likely a typo, and the error
// must wrap driver.ErrInvalidConfig and name the key. Absent keys get
// their defaults, since the host may call Configure again.
func (h *hypervisor) Configure(ctx context.Context, raw []byte) error {
	cfg := config{Greeting: "hello"}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields() // the error reads: json: unknown field "colour"
		if err := dec.Decode(&cfg); err != nil {
			return fmt.Errorf("%w: %v", driver.ErrInvalidConfig, err)
		}
	}
	return h.locked(ctx, func() error { h.greeting = cfg.Greeting; return nil })
}

// Spawn is idempotent on spec.ID: the host retries after crashes and
// restarts, so an existing ID is success and changes nothing. A Spawn
// whose ctx is already done creates nothing.
func (h *hypervisor) Spawn(ctx context.Context, spec driver.Spec) error {
	return h.locked(ctx, func() error {
		if _, ok := h.instances[spec.ID]; !ok {
			h.instances[spec.ID] = driver.PowerRunning
			fmt.Fprintf(h.log, "[INFO] %s, %s (%s)\n", h.greeting, spec.Name, spec.ID)
		}
		return nil
	})
}

// The methods taking an id return an error wrapping driver.ErrNotFound for
// an unknown one (see known): the host tells "gone" from "failed" by it.

func (h *hypervisor) Destroy(ctx context.Context, id string) error {
	return h.known(ctx, id, func(driver.PowerState) error { delete(h.instances, id); return nil })
}

func (h *hypervisor) Inspect(ctx context.Context, id string) (in driver.Instance, err error) {
	err = h.known(ctx, id, func(p driver.PowerState) error { in = driver.Instance{ID: id, Power: p}; return nil })
	return in, err
}

// List returns every instance in one call; the reconciler compares it
// with Lucid's records on each sweep.
func (h *hypervisor) List(ctx context.Context) (out []driver.Instance, err error) {
	err = h.locked(ctx, func() error {
		for id, p := range h.instances {
			out = append(out, driver.Instance{ID: id, Power: p})
		}
		return nil
	})
	return out, err
}

// PowerOff and PowerOn succeed when the instance is already there.
func (h *hypervisor) PowerOff(ctx context.Context, id string) error {
	return h.known(ctx, id, func(driver.PowerState) error { h.instances[id] = driver.PowerShutdown; return nil })
}

func (h *hypervisor) PowerOn(ctx context.Context, id string) error {
	return h.known(ctx, id, func(driver.PowerState) error { h.instances[id] = driver.PowerRunning; return nil })
}

// Reboot leaves the instance running. A soft reboot asks the guest, so it
// needs a running one; a hard reboot is a reset and works from any state.
func (h *hypervisor) Reboot(ctx context.Context, id string, hard bool) error {
	return h.known(ctx, id, func(p driver.PowerState) error {
		if !hard && p != driver.PowerRunning {
			return fmt.Errorf("minimal: soft reboot of %s: instance is %s, not running", id, p)
		}
		h.instances[id] = driver.PowerRunning
		return nil
	})
}

// locked runs fn with mu held, unless the host has already given up on
// the call. A real driver would also pass ctx to its hypervisor's API.
func (h *hypervisor) locked(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return fn()
}

// known is locked for one instance: fn gets its power state, and an
// unknown id is ErrNotFound.
func (h *hypervisor) known(ctx context.Context, id string, fn func(driver.PowerState) error) error {
	return h.locked(ctx, func() error {
		p, ok := h.instances[id]
		if !ok {
			return fmt.Errorf("minimal: instance %s: %w", id, driver.ErrNotFound)
		}
		return fn(p)
	})
}
