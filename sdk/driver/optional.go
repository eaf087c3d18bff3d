package driver

import (
	"context"
	"slices"
	"time"
)

// Optional capabilities. A driver that implements one of the interfaces
// below gains the actions it serves; one that does not still compiles and
// runs, and Lucid refuses those actions for its instances up front (409,
// naming the missing capability) instead of accepting them to fail later.
//
// Serve reports the capabilities of the Driver it is given in
// Info.Capabilities, so the host learns them across the plugin boundary;
// the host publishes them with its node registration.
const (
	// CapRebuild: the driver implements Rebuilder.
	CapRebuild = "rebuild"
	// CapResize: the driver implements Resizer.
	CapResize = "resize"
	// CapEvents: the driver implements EventSource.
	CapEvents = "events"
)

// Forwarder is implemented by a Driver that passes every call on to a
// driver elsewhere: Client does, and so does the host's plugin type in
// core/driver. Its type implements every optional interface whatever the
// driver behind it serves (a call the far driver lacks returns
// ErrUnsupported), so a type assertion on it tells nothing; its Info
// reports the far driver's capabilities instead. Forwards is a marker and
// does nothing.
type Forwarder interface {
	Driver
	Forwards()
}

// Capabilities returns what d can do: the capabilities info declares, plus
// CapRebuild, CapResize and CapEvents for each optional interface d
// implements, deduplicated and sorted. For a Forwarder only info counts
// (see Forwarder). info is d's own Info; Serve calls this to answer the
// host, and callers holding a Driver in process use it the same way.
func Capabilities(d Driver, info Info) []string {
	caps := slices.Clone(info.Capabilities)
	if _, fwd := d.(Forwarder); !fwd {
		if _, ok := d.(Rebuilder); ok {
			caps = append(caps, CapRebuild)
		}
		if _, ok := d.(Resizer); ok {
			caps = append(caps, CapResize)
		}
		if _, ok := d.(EventSource); ok {
			caps = append(caps, CapEvents)
		}
	}
	slices.Sort(caps)
	return slices.Compact(caps)
}

// Rebuilder reinstalls an instance from an image, keeping its ID, flavor
// and power state (a shut down instance stays shut down). It is idempotent:
// rebuilding again with the same image leaves the same result. An unknown
// id returns ErrNotFound.
type Rebuilder interface {
	Rebuild(ctx context.Context, id string, image Image) error
}

// ResizeStep names one step of a resize. Lucid shows each as its own
// status and calls Resize once per step, in this order, moving on only
// after the previous step succeeded.
type ResizeStep string

// The steps of a resize.
const (
	// ResizeQueue (QUEUE_RESIZE): check that the new flavor can be served
	// here; change nothing.
	ResizeQueue ResizeStep = "queue"
	// ResizePrepare (PREP_RESIZE): make ready (copy disks, reserve
	// memory) without touching the running instance. A failure here must
	// leave the instance as it was: Lucid returns it to its origin status.
	ResizePrepare ResizeStep = "prepare"
	// ResizeFinish (RESIZE): switch the instance to the new flavor. After
	// this the old one is kept until ConfirmResize or RevertResize.
	ResizeFinish ResizeStep = "finish"
)

// Resizer changes an instance's flavor in steps and then keeps the old
// flavor until the user confirms or reverts. Every method is idempotent
// on (id, step): Lucid retries a step after a crash. The power state is
// kept throughout. An unknown id returns ErrNotFound.
type Resizer interface {
	// Resize runs one step of a resize to flavor.
	Resize(ctx context.Context, id string, step ResizeStep, flavor Flavor) error
	// ConfirmResize drops what was kept to revert.
	ConfirmResize(ctx context.Context, id string) error
	// RevertResize goes back to the old flavor, which Lucid passes in.
	RevertResize(ctx context.Context, id string, old Flavor) error
}

// EventKind says what happened to an instance behind Lucid's back.
type EventKind string

// The event kinds.
const (
	// EventPower: the instance's power state changed (stopped, crashed,
	// paused, started) without a call from Lucid, or with one.
	EventPower EventKind = "power"
	// EventVanished: the instance is gone.
	EventVanished EventKind = "vanished"
	// EventAppeared: an instance Lucid did not spawn appeared.
	EventAppeared EventKind = "appeared"
	// EventRestarted is sent by the host, never by a driver: the driver's
	// plugin process was restarted, so events may have been lost and the
	// receiver should look at every instance again.
	EventRestarted EventKind = "restarted"
)

// Event is one change the hypervisor noticed. Events are hints: the
// receiver decides on a fresh Inspect, never on the event alone, so a
// late, repeated or reordered event does no harm.
type Event struct {
	Kind  EventKind
	ID    string     // the instance; "" for EventRestarted
	Power PowerState // the new power state, for EventPower and EventAppeared
	At    time.Time
}

// EventSource streams hypervisor events. Events sends on the returned
// channel until ctx ends, then closes it. A driver that drops events under
// load must not block its other methods.
type EventSource interface {
	Events(ctx context.Context) (<-chan Event, error)
}
