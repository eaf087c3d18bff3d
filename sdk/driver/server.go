package driver

import (
	"context"

	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

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
	return &driverpb.InfoResponse{Name: info.Name, Version: info.Version, Capabilities: info.Capabilities}, nil
}

func (s *server) Configure(ctx context.Context, req *driverpb.ConfigureRequest) (*driverpb.ConfigureResponse, error) {
	if err := s.impl.Configure(ctx, req.GetConfig()); err != nil {
		return nil, toStatus(err)
	}
	return &driverpb.ConfigureResponse{}, nil
}

func (s *server) Spawn(ctx context.Context, req *driverpb.SpawnRequest) (*driverpb.SpawnResponse, error) {
	spec := Spec{ID: req.GetId(), Name: req.GetName(), Flavor: Flavor{Name: req.GetFlavor()}, Image: Image{ID: req.GetImage()}}
	if err := s.impl.Spawn(ctx, spec); err != nil {
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
