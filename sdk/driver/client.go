package driver

import (
	"context"

	"google.golang.org/grpc"

	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// Client is the host side of the wire protocol: a Driver that forwards each
// call to a plugin over gRPC. Cancelling a call's ctx cancels the RPC and
// the plugin method's ctx. Errors unwrap to this package's sentinels (and
// to context.Canceled / context.DeadlineExceeded); other failures, such as
// a dead connection, keep their gRPC status (see status.Code).
//
// Client does not own the connection; whoever dialed it closes it.
type Client struct {
	rpc driverpb.DriverClient
}

var _ Driver = (*Client)(nil)

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
	_, err := c.rpc.Spawn(ctx, &driverpb.SpawnRequest{Id: spec.ID, Name: spec.Name, Flavor: spec.Flavor.Name, Image: spec.Image.ID})
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
