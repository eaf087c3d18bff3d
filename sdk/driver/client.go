package driver

import (
	"context"
	"errors"
	"fmt"
	"io"

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
// Client does not own the connection; whoever dialed it closes it.
type Client struct {
	rpc driverpb.DriverClient
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
	return &Client{rpc: driverpb.NewDriverClient(cc)}
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
	_, err := c.rpc.Spawn(ctx, specToPB(spec))
	return fromStatus(err)
}

// Destroy implements Driver.
func (c *Client) Destroy(ctx context.Context, id string) error {
	_, err := c.rpc.Destroy(ctx, &driverpb.DestroyRequest{Id: id})
	return fromStatus(err)
}

// Inspect implements Driver.
func (c *Client) Inspect(ctx context.Context, id string) (Instance, error) {
	resp, err := c.rpc.Inspect(ctx, &driverpb.InspectRequest{Id: id})
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
	_, err := c.rpc.PowerOff(ctx, &driverpb.PowerOffRequest{Id: id})
	return fromStatus(err)
}

// PowerOn implements Driver.
func (c *Client) PowerOn(ctx context.Context, id string) error {
	_, err := c.rpc.PowerOn(ctx, &driverpb.PowerOnRequest{Id: id})
	return fromStatus(err)
}

// Reboot implements Driver.
func (c *Client) Reboot(ctx context.Context, id string, hard bool) error {
	_, err := c.rpc.Reboot(ctx, &driverpb.RebootRequest{Id: id, Hard: hard})
	return fromStatus(err)
}

// Forwards marks Client as a Forwarder.
func (c *Client) Forwards() {}

// Rebuild implements Rebuilder.
func (c *Client) Rebuild(ctx context.Context, id string, image Image) error {
	_, err := c.rpc.Rebuild(ctx, &driverpb.RebuildRequest{Id: id, Image: imageToPB(image)})
	return fromStatus(err)
}

// Resize implements Resizer. A step this package does not define is
// refused without a call, with an error wrapping ErrUnsupported.
func (c *Client) Resize(ctx context.Context, id string, step ResizeStep, flavor Flavor) error {
	pbStep, err := resizeStepToPB(step)
	if err != nil {
		return fmt.Errorf("resize %s: %w", id, err)
	}
	_, err = c.rpc.Resize(ctx, &driverpb.ResizeRequest{Id: id, Step: pbStep, Flavor: flavorToPB(flavor)})
	return fromStatus(err)
}

// ConfirmResize implements Resizer.
func (c *Client) ConfirmResize(ctx context.Context, id string) error {
	_, err := c.rpc.ConfirmResize(ctx, &driverpb.ConfirmResizeRequest{Id: id})
	return fromStatus(err)
}

// RevertResize implements Resizer.
func (c *Client) RevertResize(ctx context.Context, id string, old Flavor) error {
	_, err := c.rpc.RevertResize(ctx, &driverpb.RevertResizeRequest{Id: id, Old: flavorToPB(old)})
	return fromStatus(err)
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
