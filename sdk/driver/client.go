package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"

	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// Client is the host side of the wire protocol: a Driver that forwards each
// call to a plugin over gRPC. Cancelling a call's ctx cancels the RPC and
// the plugin method's ctx. Errors unwrap to this package's sentinels (and
// to context.Canceled / context.DeadlineExceeded); other failures, such as
// a dead connection, keep their gRPC status (see status.Code).
//
// Client also implements Rebuilder, Resizer and EventSource, whatever the
// plugin serves: it is a Forwarder, so Info's Capabilities (which the
// plugin's Serve fills in) say what the plugin can do, and a call the
// plugin lacks, or one to a plugin built before the method existed,
// returns an error wrapping ErrUnsupported.
//
// The instance calls (Spawn through RevertResize, and Inspect) travel on
// one long-lived Calls stream, opened at the first of them, when the
// plugin serves it; with a plugin built before it existed they are unary
// RPCs, with the same errors either way.
//
// Client does not own the connection; whoever dialed it closes it, which
// also ends the Calls stream.
type Client struct {
	rpc     driverpb.DriverClient
	opening chan struct{} // holds the right to open a Calls stream

	mu    sync.Mutex
	calls *callStream // nil until opened, or after it broke
	unary bool        // the plugin does not serve Calls
}

var (
	_ Driver      = (*Client)(nil)
	_ Forwarder   = (*Client)(nil)
	_ Rebuilder   = (*Client)(nil)
	_ Resizer     = (*Client)(nil)
	_ EventSource = (*Client)(nil)
)

// NewClient returns a Client using cc. Hosts normally get one from
// go-plugin by dispensing PluginName instead.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: driverpb.NewDriverClient(cc), opening: make(chan struct{}, 1)}
}

// Info implements Driver.
func (c *Client) Info(ctx context.Context) (Info, error) {
	resp, err := c.rpc.Info(ctx, &driverpb.InfoRequest{})
	if err != nil {
		return Info{}, fromStatus(err)
	}
	return Info{Name: resp.GetName(), Version: resp.GetVersion(), Capabilities: resp.GetCapabilities()}, nil
}

// Configure implements Driver.
func (c *Client) Configure(ctx context.Context, config []byte) error {
	_, err := c.rpc.Configure(ctx, &driverpb.ConfigureRequest{Config: config})
	return fromStatus(err)
}

// Spawn implements Driver.
func (c *Client) Spawn(ctx context.Context, spec Spec) error {
	req := specToPB(spec)
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_Spawn{Spawn: req}}, c.rpc.Spawn)
}

// Destroy implements Driver.
func (c *Client) Destroy(ctx context.Context, id string) error {
	req := &driverpb.DestroyRequest{Id: id}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_Destroy{Destroy: req}}, c.rpc.Destroy)
}

// Inspect implements Driver.
func (c *Client) Inspect(ctx context.Context, id string) (Instance, error) {
	req := &driverpb.InspectRequest{Id: id}
	if cs := c.stream(ctx); cs != nil {
		reply, err := cs.call(ctx, &driverpb.Call{Request: &driverpb.Call_Inspect{Inspect: req}})
		if err != nil {
			return Instance{}, err
		}
		return instanceFromPB(reply.GetInspect().GetInstance()), nil
	}
	resp, err := c.rpc.Inspect(ctx, req)
	if err != nil {
		return Instance{}, fromStatus(err)
	}
	return instanceFromPB(resp.GetInstance()), nil
}

// List implements Driver.
func (c *Client) List(ctx context.Context) ([]Instance, error) {
	resp, err := c.rpc.List(ctx, &driverpb.ListRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]Instance, 0, len(resp.GetInstances()))
	for _, in := range resp.GetInstances() {
		out = append(out, instanceFromPB(in))
	}
	return out, nil
}

// PowerOff implements Driver.
func (c *Client) PowerOff(ctx context.Context, id string) error {
	req := &driverpb.PowerOffRequest{Id: id}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_PowerOff{PowerOff: req}}, c.rpc.PowerOff)
}

// PowerOn implements Driver.
func (c *Client) PowerOn(ctx context.Context, id string) error {
	req := &driverpb.PowerOnRequest{Id: id}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_PowerOn{PowerOn: req}}, c.rpc.PowerOn)
}

// Reboot implements Driver.
func (c *Client) Reboot(ctx context.Context, id string, hard bool) error {
	req := &driverpb.RebootRequest{Id: id, Hard: hard}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_Reboot{Reboot: req}}, c.rpc.Reboot)
}

// Forwards marks Client as a Forwarder.
func (c *Client) Forwards() {}

// Rebuild implements Rebuilder.
func (c *Client) Rebuild(ctx context.Context, id string, image Image) error {
	req := &driverpb.RebuildRequest{Id: id, Image: imageToPB(image)}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_Rebuild{Rebuild: req}}, c.rpc.Rebuild)
}

// Resize implements Resizer. A step this package does not define is
// refused without a call, with an error wrapping ErrUnsupported.
func (c *Client) Resize(ctx context.Context, id string, step ResizeStep, flavor Flavor) error {
	pbStep, err := resizeStepToPB(step)
	if err != nil {
		return fmt.Errorf("resize %s: %w", id, err)
	}
	req := &driverpb.ResizeRequest{Id: id, Step: pbStep, Flavor: flavorToPB(flavor)}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_Resize{Resize: req}}, c.rpc.Resize)
}

// ConfirmResize implements Resizer.
func (c *Client) ConfirmResize(ctx context.Context, id string) error {
	req := &driverpb.ConfirmResizeRequest{Id: id}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_ConfirmResize{ConfirmResize: req}}, c.rpc.ConfirmResize)
}

// RevertResize implements Resizer.
func (c *Client) RevertResize(ctx context.Context, id string, old Flavor) error {
	req := &driverpb.RevertResizeRequest{Id: id, Old: flavorToPB(old)}
	return invoke(ctx, c, req, &driverpb.Call{Request: &driverpb.Call_RevertResize{RevertResize: req}}, c.rpc.RevertResize)
}

// invoke makes one instance call that answers nothing but an error: on
// the Calls stream as call when there is one, else as the unary RPC, with
// the same errors either way.
func invoke[Req, Resp any](ctx context.Context, c *Client, req Req, call *driverpb.Call, unary func(context.Context, Req, ...grpc.CallOption) (Resp, error)) error {
	if cs := c.stream(ctx); cs != nil {
		_, err := cs.call(ctx, call)
		return err
	}
	_, err := unary(ctx, req)
	return fromStatus(err)
}

// stream returns the Calls stream, opening one if there is none or the
// last one broke, or nil when the call should be a unary RPC: the plugin
// does not serve Calls, or the stream could not be opened now (the unary
// call then meets the same trouble and reports it as it always has).
// Opening waits for the plugin's ready header, one round trip, once per
// stream; other callers meanwhile wait for it or for their ctx.
func (c *Client) stream(ctx context.Context) *callStream {
	if cs, decided := c.current(); decided {
		return cs
	}
	select {
	case c.opening <- struct{}{}:
		defer func() { <-c.opening }()
	case <-ctx.Done():
		return nil // the unary call reports ctx's end
	}
	if cs, decided := c.current(); decided { // another caller opened one
		return cs
	}
	cs, err := openCalls(ctx, c.rpc)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.unary = cs, errors.Is(err, errCallsUnserved)
	return cs
}

// current returns the live Calls stream, or nil when calls are unary;
// decided is false when a stream must be opened first.
func (c *Client) current() (cs *callStream, decided bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.unary:
		return nil, true
	case c.calls != nil && !c.calls.isBroken():
		return c.calls, true
	}
	return nil, false
}

// eventBuffer is how many received events Client.Events holds for a slow
// reader before it stops reading the stream (and the plugin's driver,
// further back, starts dropping).
const eventBuffer = 64

// Events implements EventSource. It returns once the plugin's driver is
// subscribed, so a change made after it returns is reported; a plugin
// without events gives an error wrapping ErrUnsupported. The channel is
// closed when ctx ends or the stream breaks (the plugin exited): a reader
// that must outlive the plugin process re-subscribes, as the host's
// subscription does. Events of kinds this package does not know (from a
// newer plugin) are skipped.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.rpc.Events(sctx, &driverpb.EventsRequest{})
	if err != nil {
		cancel()
		return nil, fromStatus(err)
	}
	md, _ := stream.Header() // a failed stream reports its error on Recv
	if len(md.Get(eventsReadyKey)) == 0 {
		_, err := stream.Recv()
		cancel()
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("events: the plugin ended the stream before it was ready")
		}
		return nil, fromStatus(err)
	}
	out := make(chan Event, eventBuffer)
	go func() {
		defer close(out)
		defer cancel()
		for {
			pb, err := stream.Recv()
			if err != nil {
				return
			}
			ev, ok := eventFromPB(pb)
			if !ok {
				continue
			}
			select {
			case out <- ev:
			case <-sctx.Done():
				return
			}
		}
	}()
	return out, nil
}
