package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// version is reported by Info.
const version = "0.1.0"

// fake is the simulated hypervisor. All state is guarded by mu; delays are
// spent outside the lock so slow operations do not serialise the driver.
type fake struct {
	stderr io.Writer // the process's real stderr, for crash_on's last words

	mu        sync.Mutex
	cfg       config
	instances map[string]*instance
}

// instance is one simulated instance; the JSON form is the state file's.
type instance struct {
	ID     string            `json:"id"`
	Name   string            `json:"name,omitempty"`
	Flavor string            `json:"flavor,omitempty"`
	Image  string            `json:"image,omitempty"`
	Power  driver.PowerState `json:"power"`
}

var _ driver.Driver = (*fake)(nil)

func newFake(stderr io.Writer) *fake {
	return &fake{stderr: stderr, instances: make(map[string]*instance)}
}

// enter starts every method: it honours a cancelled ctx, fires crash_on and
// returns the config the call should use.
func (f *fake) enter(ctx context.Context, method string) (config, error) {
	if err := ctx.Err(); err != nil {
		return config{}, err
	}
	f.mu.Lock()
	cfg := f.cfg
	f.mu.Unlock()
	if cfg.crashOn == method {
		fmt.Fprintf(f.stderr, "[ERROR] fake: crash_on = %q: exiting with status 2\n", method)
		os.Exit(2)
	}
	return cfg, nil
}

func (f *fake) Info(ctx context.Context) (driver.Info, error) {
	if _, err := f.enter(ctx, "Info"); err != nil {
		return driver.Info{}, err
	}
	return driver.Info{Name: "fake", Version: version, Capabilities: []string{"power", "reboot"}}, nil
}

// Configure replaces the whole config (absent keys go back to defaults) and,
// with state_file, replaces the in-memory instances with the file's.
func (f *fake) Configure(ctx context.Context, raw []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return err
	}
	var loaded map[string]*instance
	if cfg.stateFile != "" {
		if loaded, err = loadState(cfg.stateFile); err != nil {
			return fmt.Errorf("%w: state_file: %v", driver.ErrInvalidConfig, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
	if loaded != nil {
		f.instances = loaded
	}
	return nil
}

func (f *fake) Spawn(ctx context.Context, spec driver.Spec) error {
	cfg, err := f.enter(ctx, "Spawn")
	if err != nil {
		return err
	}
	if spec.ID == "" {
		return errors.New("fake: spawn: empty instance id")
	}
	f.mu.Lock()
	_, exists := f.instances[spec.ID]
	f.mu.Unlock()
	if exists {
		return nil
	}
	if err := sleep(ctx, cfg.bootDelay); err != nil {
		return err
	}
	if cfg.failSpawn != "" {
		return fmt.Errorf("fake: spawn %s: %s", spec.ID, cfg.failSpawn)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[spec.ID]; ok {
		return nil // a concurrent Spawn of the same ID won
	}
	f.instances[spec.ID] = &instance{ID: spec.ID, Name: spec.Name, Flavor: spec.Flavor.Name, Image: spec.Image.ID, Power: driver.PowerRunning}
	return f.saveLocked()
}

func (f *fake) Destroy(ctx context.Context, id string) error {
	cfg, err := f.enter(ctx, "Destroy")
	if err != nil {
		return err
	}
	if _, err := f.get(id); err != nil {
		return err
	}
	if err := sleep(ctx, cfg.destroyDelay); err != nil {
		return err
	}
	if cfg.failDestroy != "" {
		return fmt.Errorf("fake: destroy %s: %s", id, cfg.failDestroy)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[id]; !ok {
		return fmt.Errorf("fake: instance %s: %w", id, driver.ErrNotFound)
	}
	delete(f.instances, id)
	return f.saveLocked()
}

func (f *fake) Inspect(ctx context.Context, id string) (driver.Instance, error) {
	if _, err := f.enter(ctx, "Inspect"); err != nil {
		return driver.Instance{}, err
	}
	return f.get(id)
}

func (f *fake) List(ctx context.Context) ([]driver.Instance, error) {
	if _, err := f.enter(ctx, "List"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]driver.Instance, 0, len(f.instances))
	for _, in := range f.instances {
		out = append(out, driver.Instance{ID: in.ID, Power: in.Power})
	}
	slices.SortFunc(out, func(a, b driver.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fake) PowerOff(ctx context.Context, id string) error {
	if _, err := f.enter(ctx, "PowerOff"); err != nil {
		return err
	}
	return f.setPower(id, func(driver.PowerState) (driver.PowerState, error) {
		return driver.PowerShutdown, nil
	})
}

func (f *fake) PowerOn(ctx context.Context, id string) error {
	if _, err := f.enter(ctx, "PowerOn"); err != nil {
		return err
	}
	return f.setPower(id, func(driver.PowerState) (driver.PowerState, error) {
		return driver.PowerRunning, nil
	})
}

// Reboot: a soft reboot needs a running instance (the guest must cooperate);
// a hard reboot resets from any state.
func (f *fake) Reboot(ctx context.Context, id string, hard bool) error {
	if _, err := f.enter(ctx, "Reboot"); err != nil {
		return err
	}
	return f.setPower(id, func(p driver.PowerState) (driver.PowerState, error) {
		if !hard && p != driver.PowerRunning {
			return p, fmt.Errorf("fake: soft reboot of %s: instance is %s, not running", id, p)
		}
		return driver.PowerRunning, nil
	})
}

func (f *fake) get(id string) (driver.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.instances[id]
	if !ok {
		return driver.Instance{}, fmt.Errorf("fake: instance %s: %w", id, driver.ErrNotFound)
	}
	return driver.Instance{ID: in.ID, Power: in.Power}, nil
}

// setPower applies next to an instance's power state and persists it.
func (f *fake) setPower(id string, next func(driver.PowerState) (driver.PowerState, error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.instances[id]
	if !ok {
		return fmt.Errorf("fake: instance %s: %w", id, driver.ErrNotFound)
	}
	p, err := next(in.Power)
	if err != nil {
		return err
	}
	if p == in.Power {
		return nil
	}
	in.Power = p
	return f.saveLocked()
}

// saveLocked writes the state file, if configured, atomically (temp file
// and rename) so a crash mid-write leaves the previous state. f.mu is held.
func (f *fake) saveLocked() error {
	path := f.cfg.stateFile
	if path == "" {
		return nil
	}
	list := make([]*instance, 0, len(f.instances))
	for _, in := range f.instances {
		list = append(list, in)
	}
	slices.SortFunc(list, func(a, b *instance) int { return strings.Compare(a.ID, b.ID) })
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("fake: save state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("fake: save state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("fake: save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fake: save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("fake: save state: %w", err)
	}
	return nil
}

// loadState reads a state file; a missing file is an empty state.
func loadState(path string) (map[string]*instance, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return make(map[string]*instance), nil
	}
	if err != nil {
		return nil, err
	}
	var list []*instance
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	m := make(map[string]*instance, len(list))
	for _, in := range list {
		m[in.ID] = in
	}
	return m, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
