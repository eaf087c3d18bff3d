package driver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/lucid-project/lucid/sdk/driver"
)

// serve runs d behind a real gRPC server on a unix socket, the way a plugin
// does, and returns the host-side client. go-plugin itself is exercised by
// core/driver's tests, which launch a real plugin process.
//
// opts configure the plugin's gRPC server, e.g. one of transports.
func serve(t *testing.T, d driver.Driver, opts ...grpc.ServerOption) driver.Driver {
	t.Helper()
	raw, err := (&driver.GRPCPlugin{}).GRPCClient(context.Background(), nil, dial(t, d, opts...))
	if err != nil {
		t.Fatal(err)
	}
	return raw.(driver.Driver)
}

// dial serves d on a unix socket and returns a connection to it.
func dial(t *testing.T, d driver.Driver, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	cc, _ := dialServer(t, d, opts...)
	return cc
}

// dialServer is dial that also returns the plugin's gRPC server, for a
// test that stops it.
func dialServer(t *testing.T, d driver.Driver, opts ...grpc.ServerOption) (*grpc.ClientConn, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("unix", filepath.Join(t.TempDir(), "sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	if err := (&driver.GRPCPlugin{Impl: d}).GRPCServer(nil, srv); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	cc, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, srv
}

// failing is a driver whose every method fails with err.
type failing struct{ err error }

func (f failing) Info(context.Context) (driver.Info, error) { return driver.Info{}, f.err }
func (f failing) Configure(context.Context, []byte) error   { return f.err }
func (f failing) Spawn(context.Context, driver.Spec) error  { return f.err }
func (f failing) Destroy(context.Context, string) error     { return f.err }
func (f failing) Inspect(context.Context, string) (driver.Instance, error) {
	return driver.Instance{}, f.err
}
func (f failing) List(context.Context) ([]driver.Instance, error) { return nil, f.err }
func (f failing) PowerOff(context.Context, string) error          { return f.err }
func (f failing) PowerOn(context.Context, string) error           { return f.err }
func (f failing) Reboot(context.Context, string, bool) error      { return f.err }

func TestErrorsCrossTheWire(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantIs   error // nil: matches no sentinel
		wantCode codes.Code
	}{
		{"not found", fmt.Errorf("vm x: %w", driver.ErrNotFound), driver.ErrNotFound, codes.NotFound},
		{"invalid config", fmt.Errorf("%w: unknown key \"k\"", driver.ErrInvalidConfig), driver.ErrInvalidConfig, codes.InvalidArgument},
		{"unsupported", fmt.Errorf("resize: %w", driver.ErrUnsupported), driver.ErrUnsupported, codes.Unimplemented},
		{"deadline", fmt.Errorf("boot: %w", context.DeadlineExceeded), context.DeadlineExceeded, codes.DeadlineExceeded},
		{"other", errors.New("disk full"), nil, codes.Unknown},
	}
	sentinels := []error{driver.ErrNotFound, driver.ErrInvalidConfig, driver.ErrUnsupported, context.Canceled, context.DeadlineExceeded}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				d := serve(t, failing{err: tt.err}, tr.opts...)
				ctx := context.Background()
				_, infoErr := d.Info(ctx)
				_, inspectErr := d.Inspect(ctx, "x")
				_, listErr := d.List(ctx)
				for _, err := range []error{
					infoErr, d.Configure(ctx, nil), d.Spawn(ctx, driver.Spec{ID: "x"}), d.Destroy(ctx, "x"),
					inspectErr, listErr, d.PowerOff(ctx, "x"), d.PowerOn(ctx, "x"), d.Reboot(ctx, "x", true),
				} {
					if err == nil || err.Error() != tt.err.Error() {
						t.Fatalf("err = %v, want message %q", err, tt.err)
					}
					if got := status.Code(err); got != tt.wantCode {
						t.Errorf("status.Code(%v) = %v, want %v", err, got, tt.wantCode)
					}
					for _, s := range sentinels {
						if got, want := errors.Is(err, s), s == tt.wantIs; got != want {
							t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
						}
					}
				}
			})
		}
	}
}

// blocking is a driver whose Spawn waits for its ctx and reports what
// ended the wait on done.
type blocking struct {
	failing
	started chan struct{}
	done    chan error
}

func (b blocking) Spawn(ctx context.Context, _ driver.Spec) error {
	close(b.started)
	<-ctx.Done()
	b.done <- ctx.Err()
	return ctx.Err()
}

func TestCancelReachesPlugin(t *testing.T) {
	onEachTransport(t, func(t *testing.T, opts ...grpc.ServerOption) {
		b := blocking{started: make(chan struct{}), done: make(chan error, 1)}
		d := serve(t, b, opts...)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- d.Spawn(ctx, driver.Spec{ID: "x"}) }()

		<-b.started
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("host Spawn err = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("host Spawn did not return after cancel")
		}
		select {
		case err := <-b.done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("plugin ctx ended with %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("plugin Spawn ctx was not cancelled")
		}
	})
}

// powers reports every power state through Inspect and List.
type powers struct{ failing }

var allPowers = []driver.PowerState{driver.PowerRunning, driver.PowerShutdown, driver.PowerCrashed, driver.PowerPaused, driver.PowerNoState}

func (powers) Inspect(_ context.Context, id string) (driver.Instance, error) {
	return driver.Instance{ID: id, Power: driver.PowerState(id)}, nil
}

func (powers) List(context.Context) ([]driver.Instance, error) {
	var out []driver.Instance
	for _, p := range allPowers {
		out = append(out, driver.Instance{ID: string(p), Power: p})
	}
	return out, nil
}

func TestPowerStatesRoundTrip(t *testing.T) {
	onEachTransport(t, func(t *testing.T, opts ...grpc.ServerOption) {
		d := serve(t, powers{}, opts...)
		ctx := context.Background()
		for _, p := range allPowers {
			got, err := d.Inspect(ctx, string(p))
			if err != nil || got.Power != p {
				t.Errorf("Inspect(%s) = %+v, %v; want power %s", p, got, err, p)
			}
		}
		got, err := d.Inspect(ctx, "no-such-state")
		if err != nil || got.Power != driver.PowerNoState {
			t.Errorf("Inspect of an unknown state = %+v, %v; want nostate", got, err)
		}
		list, err := d.List(ctx)
		if err != nil || len(list) != len(allPowers) {
			t.Fatalf("List = %v, %v", list, err)
		}
		for i, in := range list {
			if in.Power != allPowers[i] {
				t.Errorf("List[%d] = %+v, want power %s", i, in, allPowers[i])
			}
		}
	})
}
