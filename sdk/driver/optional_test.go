package driver_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/lucid-project/lucid/sdk/driver"
	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// full implements every optional interface and records what reached it.
type full struct {
	failing // core methods fail with err; Spawn is overridden
	info    driver.Info

	mu     sync.Mutex
	calls  []string
	events chan driver.Event // what Events hands out; nil: Events fails with err
}

func (f *full) Info(context.Context) (driver.Info, error) { return f.info, nil }

func (f *full) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.err
}

func (f *full) Spawn(_ context.Context, spec driver.Spec) error { return f.record("Spawn %+v", spec) }
func (f *full) Rebuild(_ context.Context, id string, im driver.Image) error {
	return f.record("Rebuild %s %+v", id, im)
}
func (f *full) Resize(_ context.Context, id string, step driver.ResizeStep, fl driver.Flavor) error {
	return f.record("Resize %s %s %+v", id, step, fl)
}
func (f *full) ConfirmResize(_ context.Context, id string) error {
	return f.record("ConfirmResize %s", id)
}
func (f *full) RevertResize(_ context.Context, id string, old driver.Flavor) error {
	return f.record("RevertResize %s %+v", id, old)
}

func (f *full) Events(ctx context.Context) (<-chan driver.Event, error) {
	if f.events == nil {
		return nil, f.err
	}
	out := make(chan driver.Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-f.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

var flavor = driver.Flavor{Name: "m1.large", VCPUs: 4, RAMMB: 8192, DiskGB: 80}
var image = driver.Image{ID: "img-1", Name: "cirros", Source: "/srv/images/cirros.qcow2", DiskFormat: "qcow2"}

func TestOptionalCallsCrossTheWire(t *testing.T) {
	onEachTransport(t, func(t *testing.T, opts ...grpc.ServerOption) {
		f := &full{}
		d := serve(t, f, opts...)
		ctx := context.Background()
		spec := driver.Spec{ID: "a", Name: "web", Flavor: flavor, Image: image}
		for _, err := range []error{
			d.Spawn(ctx, spec),
			d.(driver.Rebuilder).Rebuild(ctx, "a", image),
			d.(driver.Resizer).Resize(ctx, "a", driver.ResizeQueue, flavor),
			d.(driver.Resizer).Resize(ctx, "a", driver.ResizePrepare, flavor),
			d.(driver.Resizer).Resize(ctx, "a", driver.ResizeFinish, flavor),
			d.(driver.Resizer).ConfirmResize(ctx, "a"),
			d.(driver.Resizer).RevertResize(ctx, "a", flavor),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		want := []string{
			fmt.Sprintf("Spawn %+v", spec),
			fmt.Sprintf("Rebuild a %+v", image),
			fmt.Sprintf("Resize a queue %+v", flavor),
			fmt.Sprintf("Resize a prepare %+v", flavor),
			fmt.Sprintf("Resize a finish %+v", flavor),
			"ConfirmResize a",
			fmt.Sprintf("RevertResize a %+v", flavor),
		}
		if !reflect.DeepEqual(f.calls, want) {
			t.Errorf("the driver got\n%q\nwant\n%q", f.calls, want)
		}

		// A step the SDK does not define is refused on the host side.
		err := d.(driver.Resizer).Resize(ctx, "a", "shrink", flavor)
		if !errors.Is(err, driver.ErrUnsupported) || len(f.calls) != len(want) {
			t.Errorf("Resize(step shrink) = %v (calls %d), want ErrUnsupported and no call", err, len(f.calls))
		}
	})
}

// TestSpawnFromAnOlderHost: a host built before SpawnRequest carried the
// full specs sends only the names, which the plugin still reads.
func TestSpawnFromAnOlderHost(t *testing.T) {
	f := &full{}
	cc := dial(t, f)
	_, err := driverpb.NewDriverClient(cc).Spawn(context.Background(), &driverpb.SpawnRequest{Id: "a", Name: "web", FlavorName: "m1.small", ImageId: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Spawn %+v", driver.Spec{ID: "a", Name: "web", Flavor: driver.Flavor{Name: "m1.small"}, Image: driver.Image{ID: "cirros"}})
	if len(f.calls) != 1 || f.calls[0] != want {
		t.Errorf("calls = %q, want [%q]", f.calls, want)
	}
}

func TestOptionalErrorsCrossTheWire(t *testing.T) {
	onEachTransport(t, func(t *testing.T, opts ...grpc.ServerOption) {
		ctx := context.Background()
		tests := []struct {
			name   string
			d      driver.Driver
			wantIs error
		}{
			{"driver without the interfaces", failing{err: errors.New("unused")}, driver.ErrUnsupported},
			{"driver says not found", &full{failing: failing{err: fmt.Errorf("vm a: %w", driver.ErrNotFound)}}, driver.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d := serve(t, tt.d, opts...)
				_, evErr := d.(driver.EventSource).Events(ctx)
				for name, err := range map[string]error{
					"Rebuild":       d.(driver.Rebuilder).Rebuild(ctx, "a", image),
					"Resize":        d.(driver.Resizer).Resize(ctx, "a", driver.ResizePrepare, flavor),
					"ConfirmResize": d.(driver.Resizer).ConfirmResize(ctx, "a"),
					"RevertResize":  d.(driver.Resizer).RevertResize(ctx, "a", flavor),
					"Events":        evErr,
				} {
					if !errors.Is(err, tt.wantIs) {
						t.Errorf("%s: err = %v, want errors.Is %v", name, err, tt.wantIs)
					}
				}
			})
		}
	})
}

func TestInfoReportsCapabilities(t *testing.T) {
	tests := []struct {
		name     string
		d        driver.Driver
		declared []string
		want     []string
	}{
		{"core only", failing{}, []string{"reboot", "power"}, []string{"power", "reboot"}},
		{"core only, none declared", failing{}, nil, []string{}},
		{"all optional, some declared twice", &full{}, []string{"reboot", "rebuild", "reboot", "events"}, []string{"events", "reboot", "rebuild", "resize"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := driver.Info{Name: "x", Version: "1", Capabilities: tt.declared}
			if got := driver.Capabilities(tt.d, info); !slices.Equal(got, tt.want) {
				t.Errorf("Capabilities in process = %q, want %q", got, tt.want)
			}
			var d driver.Driver = withInfo{Driver: tt.d, info: info}
			if f, ok := tt.d.(*full); ok {
				f.info = info
				d = f
			}
			remote := serve(t, d)
			got, err := remote.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Capabilities, tt.want) {
				t.Errorf("Info across the wire = %q, want %q", got.Capabilities, tt.want)
			}
			// The client forwards every optional interface; only its
			// Info says what the plugin serves.
			if got := driver.Capabilities(remote, got); !slices.Equal(got, tt.want) {
				t.Errorf("Capabilities of the client = %q, want %q", got, tt.want)
			}
		})
	}
}

// withInfo gives a core-only driver a fixed Info.
type withInfo struct {
	driver.Driver
	info driver.Info
}

func (w withInfo) Info(context.Context) (driver.Info, error) { return w.info, nil }

func TestEventsStream(t *testing.T) {
	f := &full{events: make(chan driver.Event)}
	d := serve(t, f).(driver.EventSource)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 10, 0, 0, 5, time.UTC)
	sent := []driver.Event{
		{Kind: driver.EventPower, ID: "a", Power: driver.PowerCrashed, At: at},
		{Kind: driver.EventRestarted}, // host-only: not sent
		{Kind: driver.EventVanished, ID: "b", Power: driver.PowerNoState, At: at},
		{Kind: driver.EventAppeared, ID: "c", Power: driver.PowerPaused, At: at},
	}
	for _, ev := range sent {
		f.events <- ev
	}
	for _, want := range []driver.Event{sent[0], sent[2], sent[3]} {
		select {
		case got := <-ch:
			if got.Kind != want.Kind || got.ID != want.ID || got.Power != want.Power || !got.At.Equal(want.At) {
				t.Errorf("event = %+v, want %+v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event; want %+v", want)
		}
	}
	cancel()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("after cancel: got event %+v, want the channel closed", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after ctx was cancelled")
	}
}
