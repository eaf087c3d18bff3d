package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lucid-project/lucid/sdk/driver"
)

var (
	small  = driver.Flavor{Name: "m1.small", VCPUs: 1, RAMMB: 512, DiskGB: 1}
	large  = driver.Flavor{Name: "m1.large", VCPUs: 4, RAMMB: 8192, DiskGB: 40}
	cirros = driver.Image{ID: "cirros", Name: "CirrOS", Source: "/img/cirros.qcow2", DiskFormat: "qcow2"}
	debian = driver.Image{ID: "debian", Name: "Debian 12", Source: "/img/debian.raw", DiskFormat: "raw"}
)

// state returns the fake's record of id.
func state(t *testing.T, f *fake, id string) instance {
	t.Helper()
	for _, in := range f.snapshot() {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("no instance %s", id)
	return instance{}
}

func flavorPtr(f driver.Flavor) *flavor { c := flavor(f); return &c }

// TestResizeAndRebuildState follows one instance through rebuilds and
// resizes and checks the whole record after each call.
func TestResizeAndRebuildState(t *testing.T) {
	ctx := context.Background()
	f := configured(t, `{}`)
	if err := f.Spawn(ctx, driver.Spec{ID: "a", Name: "web", Flavor: small, Image: cirros}); err != nil {
		t.Fatal(err)
	}
	base := instance{ID: "a", Name: "web", Flavor: flavor(small), Image: image(cirros), Power: driver.PowerRunning}
	with := func(change func(*instance)) instance { in := *base.clone(); change(&in); return in }

	steps := []struct {
		name    string
		do      func() error
		wantErr string // "" = success
		want    instance
	}{
		{"rebuild", func() error { return f.Rebuild(ctx, "a", debian) }, "", with(func(in *instance) { in.Image = image(debian) })},
		{"power off", func() error { return f.PowerOff(ctx, "a") }, "", with(func(in *instance) { in.Image, in.Power = image(debian), driver.PowerShutdown })},
		{"rebuild shut down", func() error { return f.Rebuild(ctx, "a", cirros) }, "", with(func(in *instance) { in.Power = driver.PowerShutdown })},
		{"prepare before queue", func() error { return f.Resize(ctx, "a", driver.ResizePrepare, large) }, `step prepare to "m1.large" before queue`, with(func(in *instance) { in.Power = driver.PowerShutdown })},
		{"queue", func() error { return f.Resize(ctx, "a", driver.ResizeQueue, large) }, "", with(func(in *instance) {
			in.Power, in.Resizing = driver.PowerShutdown, &resizing{Step: driver.ResizeQueue, Flavor: flavor(large)}
		})},
		{"finish before prepare", func() error { return f.Resize(ctx, "a", driver.ResizeFinish, large) }, `step finish to "m1.large" before prepare`, with(func(in *instance) {
			in.Power, in.Resizing = driver.PowerShutdown, &resizing{Step: driver.ResizeQueue, Flavor: flavor(large)}
		})},
		{"prepare", func() error { return f.Resize(ctx, "a", driver.ResizePrepare, large) }, "", with(func(in *instance) {
			in.Power, in.Resizing = driver.PowerShutdown, &resizing{Step: driver.ResizePrepare, Flavor: flavor(large)}
		})},
		{"finish", func() error { return f.Resize(ctx, "a", driver.ResizeFinish, large) }, "", with(func(in *instance) {
			in.Power, in.Flavor, in.OldFlavor = driver.PowerShutdown, flavor(large), flavorPtr(small)
		})},
		{"finish again", func() error { return f.Resize(ctx, "a", driver.ResizeFinish, large) }, "", with(func(in *instance) {
			in.Power, in.Flavor, in.OldFlavor = driver.PowerShutdown, flavor(large), flavorPtr(small)
		})},
		{"queue while awaiting confirm", func() error { return f.Resize(ctx, "a", driver.ResizeQueue, small) }, `a finished resize to "m1.large" awaits confirm or revert`, with(func(in *instance) {
			in.Power, in.Flavor, in.OldFlavor = driver.PowerShutdown, flavor(large), flavorPtr(small)
		})},
		{"revert", func() error { return f.RevertResize(ctx, "a", small) }, "", with(func(in *instance) { in.Power = driver.PowerShutdown })},
		{"revert again", func() error { return f.RevertResize(ctx, "a", small) }, "", with(func(in *instance) { in.Power = driver.PowerShutdown })},
		{"power on", func() error { return f.PowerOn(ctx, "a") }, "", base},
		{"queue, prepare, finish", func() error {
			for _, st := range resizeSteps {
				if err := f.Resize(ctx, "a", st, large); err != nil {
					return err
				}
			}
			return nil
		}, "", with(func(in *instance) { in.Flavor, in.OldFlavor = flavor(large), flavorPtr(small) })},
		{"confirm", func() error { return f.ConfirmResize(ctx, "a") }, "", with(func(in *instance) { in.Flavor = flavor(large) })},
		{"confirm again", func() error { return f.ConfirmResize(ctx, "a") }, "", with(func(in *instance) { in.Flavor = flavor(large) })},
	}
	for _, s := range steps {
		err := s.do()
		switch {
		case s.wantErr == "" && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
			t.Fatalf("%s: err = %v, want it to contain %q", s.name, err, s.wantErr)
		}
		if got := state(t, f, "a"); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("after %s:\n got %+v\nwant %+v", s.name, got, s.want)
		}
	}
}

// TestOptionalFaults: each fault knob fails its call with its message and
// changes nothing.
func TestOptionalFaults(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		cfg     string
		call    func(f *fake) error
		wantErr string
	}{
		{`{"fail_rebuild": "disk gone"}`, func(f *fake) error { return f.Rebuild(ctx, "a", debian) }, "fake: rebuild a: disk gone"},
		{`{"fail_rebuild": true}`, func(f *fake) error { return f.Rebuild(ctx, "a", debian) }, "fake: rebuild a: injected rebuild failure"},
		{`{"fail_resize": "queue"}`, func(f *fake) error { return f.Resize(ctx, "a", driver.ResizeQueue, large) }, "fake: resize a: step queue: injected resize failure"},
		{`{"fail_resize": ["prepare", "finish"]}`, func(f *fake) error { return f.Resize(ctx, "a", driver.ResizePrepare, large) }, "fake: resize a: step prepare: injected resize failure"},
		{`{"fail_confirm_resize": "stuck"}`, func(f *fake) error { return f.ConfirmResize(ctx, "a") }, "fake: confirm resize a: stuck"},
		{`{"fail_revert_resize": true}`, func(f *fake) error { return f.RevertResize(ctx, "a", large) }, "fake: revert resize a: injected revert resize failure"},
	}
	for _, tt := range tests {
		t.Run(tt.cfg, func(t *testing.T) {
			f := configured(t, tt.cfg)
			if err := f.Spawn(ctx, driver.Spec{ID: "a", Flavor: small, Image: cirros}); err != nil {
				t.Fatal(err)
			}
			if err := f.Resize(ctx, "a", driver.ResizeQueue, large); err != nil && !strings.Contains(tt.cfg, "queue") {
				t.Fatal(err) // a queued resize, so that prepare may run
			}
			before := state(t, f, "a")
			if err := tt.call(f); err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got := state(t, f, "a"); !reflect.DeepEqual(got, before) {
				t.Errorf("a failed call changed the instance:\n got %+v\nwant %+v", got, before)
			}
			// Unknown ids are still ErrNotFound, not the fault.
			if err := tt.call(configured(t, tt.cfg)); !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("on an unknown id: err = %v, want ErrNotFound", err)
			}
		})
	}
}
