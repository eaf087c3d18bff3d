package driver

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// eventsReadyKey is the response header a plugin sends once its driver's
// event stream is open (see the Events RPC in driver.proto).
const eventsReadyKey = "lucid-events"

// server is the plugin side of the wire protocol: it forwards each RPC to
// the vendor's Driver and turns errors into status codes (see status.go).
type server struct {
	driverpb.UnimplementedDriverServer
	impl Driver
}

func (s *server) Info(ctx context.Context, _ *driverpb.InfoRequest) (*driverpb.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.InfoResponse{Name: info.Name, Version: info.Version, Capabilities: Capabilities(s.impl, info)}, nil
}

func (s *server) Configure(ctx context.Context, req *driverpb.ConfigureRequest) (*driverpb.ConfigureResponse, error) {
	if err := s.impl.Configure(ctx, req.GetConfig()); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.ConfigureResponse{}, nil
}

func (s *server) Spawn(ctx context.Context, req *driverpb.SpawnRequest) (*driverpb.SpawnResponse, error) {
	if err := s.impl.Spawn(ctx, specFromPB(req)); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.SpawnResponse{}, nil
}

func (s *server) Destroy(ctx context.Context, req *driverpb.DestroyRequest) (*driverpb.DestroyResponse, error) {
	if err := s.impl.Destroy(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.DestroyResponse{}, nil
}

func (s *server) Inspect(ctx context.Context, req *driverpb.InspectRequest) (*driverpb.InspectResponse, error) {
	in, err := s.impl.Inspect(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.InspectResponse{Instance: instanceToPB(in)}, nil
}

func (s *server) List(ctx context.Context, _ *driverpb.ListRequest) (*driverpb.ListResponse, error) {
	ins, err := s.impl.List(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &driverpb.ListResponse{Instances: make([]*driverpb.Instance, 0, len(ins))}
	for _, in := range ins {
		resp.Instances = append(resp.Instances, instanceToPB(in))
	}
	return resp, nil
}

func (s *server) PowerOff(ctx context.Context, req *driverpb.PowerOffRequest) (*driverpb.PowerOffResponse, error) {
	if err := s.impl.PowerOff(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.PowerOffResponse{}, nil
}

func (s *server) PowerOn(ctx context.Context, req *driverpb.PowerOnRequest) (*driverpb.PowerOnResponse, error) {
	if err := s.impl.PowerOn(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.PowerOnResponse{}, nil
}

func (s *server) Reboot(ctx context.Context, req *driverpb.RebootRequest) (*driverpb.RebootResponse, error) {
	if err := s.impl.Reboot(ctx, req.GetId(), req.GetHard()); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.RebootResponse{}, nil
}

// unimplemented is the answer for an optional method the driver lacks; the
// host turns it into ErrUnsupported.
func unimplemented(method, iface string) error {
	return status.Errorf(codes.Unimplemented, "%s: driver does not implement driver.%s", method, iface)
}

func (s *server) Rebuild(ctx context.Context, req *driverpb.RebuildRequest) (*driverpb.RebuildResponse, error) {
	r, ok := s.impl.(Rebuilder)
	if !ok {
		return nil, unimplemented("Rebuild", "Rebuilder")
	}
	if err := r.Rebuild(ctx, req.GetId(), imageFromPB(req.GetImage())); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.RebuildResponse{}, nil
}

func (s *server) Resize(ctx context.Context, req *driverpb.ResizeRequest) (*driverpb.ResizeResponse, error) {
	r, ok := s.impl.(Resizer)
	if !ok {
		return nil, unimplemented("Resize", "Resizer")
	}
	step, err := resizeStepFromPB(req.GetStep())
	if err != nil {
		return nil, toStatus(fmt.Errorf("resize %s: %w", req.GetId(), err))
	}
	if err := r.Resize(ctx, req.GetId(), step, flavorFromPB(req.GetFlavor())); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.ResizeResponse{}, nil
}

func (s *server) ConfirmResize(ctx context.Context, req *driverpb.ConfirmResizeRequest) (*driverpb.ConfirmResizeResponse, error) {
	r, ok := s.impl.(Resizer)
	if !ok {
		return nil, unimplemented("ConfirmResize", "Resizer")
	}
	if err := r.ConfirmResize(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.ConfirmResizeResponse{}, nil
}

func (s *server) RevertResize(ctx context.Context, req *driverpb.RevertResizeRequest) (*driverpb.RevertResizeResponse, error) {
	r, ok := s.impl.(Resizer)
	if !ok {
		return nil, unimplemented("RevertResize", "Resizer")
	}
	if err := r.RevertResize(ctx, req.GetId(), flavorFromPB(req.GetOld())); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.RevertResizeResponse{}, nil
}

// Events subscribes to the driver, tells the host the stream is open (the
// ready header), and relays events until the host cancels or the driver
// closes its channel. While the host reads slowly, Send blocks and the
// driver's channel fills; the driver then drops events (its contract
// forbids blocking its other methods). Events that cannot cross the wire
// (EventRestarted, unknown kinds) are skipped.
func (s *server) Events(_ *driverpb.EventsRequest, stream driverpb.Driver_EventsServer) error {
	src, ok := s.impl.(EventSource)
	if !ok {
		return unimplemented("Events", "EventSource")
	}
	ctx := stream.Context()
	events, err := src.Events(ctx)
	if err != nil {
		return toStatus(err)
	}
	if err := stream.SendHeader(metadata.Pairs(eventsReadyKey, "ready")); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return toStatus(ctx.Err())
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			pb, ok := eventToPB(ev)
			if !ok {
				continue
			}
			if err := stream.Send(pb); err != nil {
				return err
			}
		}
	}
}
