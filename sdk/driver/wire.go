package driver

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// The one mapping between the optional interfaces' values and their wire
// forms (power states and instances are in power.go).

func flavorToPB(f Flavor) *driverpb.Flavor {
	return &driverpb.Flavor{Name: f.Name, Vcpus: int64(f.VCPUs), RamMb: int64(f.RAMMB), DiskGb: int64(f.DiskGB)}
}

func flavorFromPB(f *driverpb.Flavor) Flavor {
	return Flavor{Name: f.GetName(), VCPUs: int(f.GetVcpus()), RAMMB: int(f.GetRamMb()), DiskGB: int(f.GetDiskGb())}
}

func imageToPB(im Image) *driverpb.Image {
	return &driverpb.Image{Id: im.ID, Name: im.Name, Source: im.Source, DiskFormat: im.DiskFormat}
}

func imageFromPB(im *driverpb.Image) Image {
	return Image{ID: im.GetId(), Name: im.GetName(), Source: im.GetSource(), DiskFormat: im.GetDiskFormat()}
}

// specToPB fills both the full specs and the names older plugins read.
func specToPB(spec Spec) *driverpb.SpawnRequest {
	return &driverpb.SpawnRequest{
		Id:         spec.ID,
		Name:       spec.Name,
		FlavorName: spec.Flavor.Name,
		ImageId:    spec.Image.ID,
		Flavor:     flavorToPB(spec.Flavor),
		Image:      imageToPB(spec.Image),
	}
}

// specFromPB reads a request from any host: one that predates the full
// specs sends only the names.
func specFromPB(req *driverpb.SpawnRequest) Spec {
	spec := Spec{ID: req.GetId(), Name: req.GetName()}
	if req.Flavor != nil {
		spec.Flavor = flavorFromPB(req.Flavor)
	} else {
		spec.Flavor = Flavor{Name: req.GetFlavorName()}
	}
	if req.Image != nil {
		spec.Image = imageFromPB(req.Image)
	} else {
		spec.Image = Image{ID: req.GetImageId()}
	}
	return spec
}

var resizeSteps = []struct {
	step ResizeStep
	pb   driverpb.ResizeStep
}{
	{ResizeQueue, driverpb.ResizeStep_RESIZE_STEP_QUEUE},
	{ResizePrepare, driverpb.ResizeStep_RESIZE_STEP_PREPARE},
	{ResizeFinish, driverpb.ResizeStep_RESIZE_STEP_FINISH},
}

// resizeStepToPB refuses a step this package does not define, before any
// call is made: sending UNSPECIFIED would only move the error to the plugin.
func resizeStepToPB(s ResizeStep) (driverpb.ResizeStep, error) {
	for _, r := range resizeSteps {
		if r.step == s {
			return r.pb, nil
		}
	}
	return 0, fmt.Errorf("resize step %q: %w (want %q, %q or %q)", s, ErrUnsupported, ResizeQueue, ResizePrepare, ResizeFinish)
}

func resizeStepFromPB(s driverpb.ResizeStep) (ResizeStep, error) {
	for _, r := range resizeSteps {
		if r.pb == s {
			return r.step, nil
		}
	}
	return "", fmt.Errorf("resize step %v: %w", s, ErrUnsupported)
}

var eventKinds = []struct {
	kind EventKind
	pb   driverpb.EventKind
}{
	{EventPower, driverpb.EventKind_EVENT_KIND_POWER},
	{EventVanished, driverpb.EventKind_EVENT_KIND_VANISHED},
	{EventAppeared, driverpb.EventKind_EVENT_KIND_APPEARED},
}

// eventToPB reports false for a kind that does not cross the wire
// (EventRestarted, which only hosts make, or an unknown one).
func eventToPB(ev Event) (*driverpb.Event, bool) {
	for _, k := range eventKinds {
		if k.kind == ev.Kind {
			out := &driverpb.Event{Kind: k.pb, Id: ev.ID, Power: powerToPB(ev.Power)}
			if !ev.At.IsZero() {
				out.At = timestamppb.New(ev.At)
			}
			return out, true
		}
	}
	return nil, false
}

// eventFromPB reports false for a kind this side does not know (a newer
// plugin's): the receiver could not act on it.
func eventFromPB(ev *driverpb.Event) (Event, bool) {
	for _, k := range eventKinds {
		if k.pb == ev.GetKind() {
			out := Event{Kind: k.kind, ID: ev.GetId(), Power: powerFromPB(ev.GetPower())}
			if ev.At != nil {
				out.At = ev.At.AsTime().In(time.Local)
			}
			return out, true
		}
	}
	return Event{}, false
}
