package driver_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lucid-project/lucid/sdk/driver"
	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// transports are the two ways a host's instance calls reach a plugin: the
// Calls stream, and unary RPCs for a plugin built before Calls existed,
// whose gRPC server answers UNIMPLEMENTED for it (as refuseCalls makes
// this one do). Tests of what a call means run over both.
var transports = []struct {
	name string
	opts []grpc.ServerOption
}{
	{"calls stream", nil},
	{"unary (plugin without Calls)", []grpc.ServerOption{grpc.StreamInterceptor(refuseCalls)}},
}

func refuseCalls(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod == driverpb.Driver_Calls_FullMethodName {
		return status.Errorf(codes.Unimplemented, "unknown method Calls for service lucid.driver.v1.Driver")
	}
	return handler(srv, ss)
}

// onEachTransport runs test once over each of transports.
func onEachTransport(t *testing.T, test func(t *testing.T, opts ...grpc.ServerOption)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { test(t, tr.opts...) })
	}
}

// rpcCounter counts the RPCs the plugin's server received, by method.
type rpcCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *rpcCounter) add(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[string]int)
	}
	c.n[method]++
}

// check fails t for each method whose count is not the one in want.
func (c *rpcCounter) check(t *testing.T, want map[string]int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for method, n := range want {
		if got := c.n[method]; got != n {
			t.Errorf("the plugin got %d %s RPCs, want %d", got, method, n)
		}
	}
}

func (c *rpcCounter) options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			c.add(info.FullMethod)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			c.add(info.FullMethod)
			return h(srv, ss)
		}),
	}
}

// echo answers Inspect with the id it was asked about, after a pause that
// depends on the id, so that concurrent calls end out of order.
type echo struct{ failing }

func (echo) Inspect(_ context.Context, id string) (driver.Instance, error) {
	time.Sleep(time.Duration(len(id)%3) * time.Millisecond)
	return driver.Instance{ID: id, Power: driver.PowerRunning}, nil
}

func (echo) PowerOff(context.Context, string) error { return nil }

// TestInstanceCallsShareOneStream: a plugin built with this SDK gets the
// host's instance calls on one Calls stream, opened at the first call, and
// no unary RPC for them; Info and List stay unary.
func TestInstanceCallsShareOneStream(t *testing.T) {
	var rpcs rpcCounter
	d := serve(t, echo{}, rpcs.options()...)
	ctx := context.Background()
	for i := range 20 {
		if err := d.PowerOff(ctx, fmt.Sprint("vm-", i)); err != nil {
			t.Fatal(err)
		}
		if in, err := d.Inspect(ctx, fmt.Sprint("vm-", i)); err != nil || in.ID != fmt.Sprint("vm-", i) {
			t.Fatalf("Inspect = %+v, %v", in, err)
		}
	}
	if _, err := d.Info(ctx); err != nil {
		t.Fatal(err)
	}
	rpcs.check(t, map[string]int{
		driverpb.Driver_Calls_FullMethodName:    1,
		driverpb.Driver_PowerOff_FullMethodName: 0,
		driverpb.Driver_Inspect_FullMethodName:  0,
		driverpb.Driver_Info_FullMethodName:     1,
	})
}

// TestOlderPluginGetsUnaryCalls: a plugin that answers UNIMPLEMENTED for
// Calls gets unary RPCs, and the host asks for the stream only once.
func TestOlderPluginGetsUnaryCalls(t *testing.T) {
	var rpcs rpcCounter
	refused := grpc.ChainStreamInterceptor(refuseCalls)
	d := serve(t, echo{}, append(rpcs.options(), refused)...)
	ctx := context.Background()
	for i := range 5 {
		if err := d.PowerOff(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if in, err := d.Inspect(ctx, fmt.Sprint("vm-", i)); err != nil || in.ID != fmt.Sprint("vm-", i) {
			t.Fatalf("Inspect = %+v, %v", in, err)
		}
	}
	rpcs.check(t, map[string]int{
		driverpb.Driver_Calls_FullMethodName:    1,
		driverpb.Driver_PowerOff_FullMethodName: 5,
		driverpb.Driver_Inspect_FullMethodName:  5,
	})
}

// TestConcurrentCallsGetTheirOwnAnswers: replies that come back out of
// order still reach the caller that asked.
func TestConcurrentCallsGetTheirOwnAnswers(t *testing.T) {
	onEachTransport(t, func(t *testing.T, opts ...grpc.ServerOption) {
		d := serve(t, echo{}, opts...)
		var wrong atomic.Int64
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 40 {
					id := fmt.Sprintf("vm-%d-%d", g, i)
					in, err := d.Inspect(context.Background(), id)
					if err != nil || in.ID != id {
						t.Errorf("Inspect(%s) = %+v, %v", id, in, err)
						wrong.Add(1)
						return
					}
				}
			}()
		}
		wg.Wait()
		if n := wrong.Load(); n > 0 {
			t.Fatalf("%d callers got another's answer or an error", n)
		}
	})
}

// deadlined records the deadline its PowerOn's ctx carried, and waits for
// the ctx to end.
type deadlined struct {
	failing
	got chan time.Time // the deadline, or the zero time for none
}

func (d deadlined) PowerOn(ctx context.Context, _ string) error {
	dl, _ := ctx.Deadline()
	d.got <- dl
	<-ctx.Done()
	return ctx.Err()
}

// TestDeadlineReachesPlugin: the host's deadline bounds the driver's
// ctx, and the host's call ends with DeadlineExceeded.
func TestDeadlineReachesPlugin(t *testing.T) {
	onEachTransport(t, func(t *testing.T, opts ...grpc.ServerOption) {
		dd := deadlined{got: make(chan time.Time, 1)}
		d := serve(t, dd, opts...)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		want, _ := ctx.Deadline()
		err := d.PowerOn(ctx, "a")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("PowerOn past its deadline = %v, want DeadlineExceeded", err)
		}
		got := <-dd.got
		if got.IsZero() || got.After(want.Add(50*time.Millisecond)) {
			t.Errorf("the driver's deadline = %v, want about %v", got, want)
		}
	})
}

// spawnBlocks is blocking that answers Inspect.
type spawnBlocks struct{ blocking }

func (spawnBlocks) Inspect(_ context.Context, id string) (driver.Instance, error) {
	return driver.Instance{ID: id}, nil
}

// TestStreamOutlivesACancelledCall: cancelling one call on the stream
// leaves the stream serving the next ones.
func TestStreamOutlivesACancelledCall(t *testing.T) {
	var rpcs rpcCounter
	b := blocking{started: make(chan struct{}), done: make(chan error, 1)}
	d := serve(t, spawnBlocks{b}, rpcs.options()...)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Spawn(ctx, driver.Spec{ID: "x"}) }()
	<-b.started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Spawn = %v, want context.Canceled", err)
	}
	if err := <-b.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the driver's Spawn ended with %v, want context.Canceled", err)
	}
	if in, err := d.Inspect(context.Background(), "after"); err != nil || in.ID != "after" {
		t.Fatalf("Inspect after a cancelled call = %+v, %v", in, err)
	}
	rpcs.check(t, map[string]int{driverpb.Driver_Calls_FullMethodName: 1})
}

// TestCallsFailWhenThePluginGoes: a call in flight when the plugin's server
// goes away ends with UNAVAILABLE, which the host reads as a plugin that
// exited (core/driver), instead of waiting for a reply that cannot come.
func TestCallsFailWhenThePluginGoes(t *testing.T) {
	onEachTransport(t, func(t *testing.T, opts ...grpc.ServerOption) {
		b := blocking{started: make(chan struct{}), done: make(chan error, 1)}
		cc, srv := dialServer(t, b, opts...)
		d := driver.NewClient(cc)
		errc := make(chan error, 1)
		go func() { errc <- d.Spawn(context.Background(), driver.Spec{ID: "x"}) }()
		<-b.started
		go srv.Stop() // waits for the driver's Spawn, which the stream's end cancels
		select {
		case err := <-errc:
			if status.Code(err) != codes.Unavailable {
				t.Errorf("Spawn in flight when the plugin went = %v (code %v), want UNAVAILABLE", err, status.Code(err))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Spawn in flight did not return when the plugin went")
		}
		if err := d.PowerOff(context.Background(), "x"); err == nil {
			t.Error("a call after the plugin went succeeded")
		}
	})
}

// TestUnknownRequestIsUnimplemented: a Call carrying a request this SDK
// does not know (a newer host's) is answered UNIMPLEMENTED, which the host
// reads as ErrUnsupported; the stream goes on.
func TestUnknownRequestIsUnimplemented(t *testing.T) {
	cc := dial(t, echo{})
	stream, err := driverpb.NewDriverClient(cc).Calls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []*driverpb.Call{
		{Id: 7},
		{Id: 8, Request: &driverpb.Call_Inspect{Inspect: &driverpb.InspectRequest{Id: "a"}}},
	} {
		if err := stream.Send(call); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint64]*driverpb.Reply{}
	for range 2 {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got[r.GetId()] = r
	}
	if c := codes.Code(got[7].GetCode()); c != codes.Unimplemented {
		t.Errorf("reply to an unknown request: code %v (%q), want UNIMPLEMENTED", c, got[7].GetMessage())
	}
	if c := codes.Code(got[8].GetCode()); c != codes.OK || got[8].GetInspect().GetInstance().GetId() != "a" {
		t.Errorf("reply to Inspect after it: %v", got[8])
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}
