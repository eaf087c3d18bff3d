package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
)

// Catalog resolves the flavorRef and imageRef of a request into what the
// instance is built from. Lookups match an id first, then a name.
type Catalog struct {
	Flavors []instance.Flavor
	Images  []CatalogImage
}

// CatalogImage is an image entry: what an instance records, and the least
// a flavor must offer to boot it.
type CatalogImage struct {
	instance.Image
	MinRAMMB  int
	MinDiskGB int
}

// fits reports why flavor f cannot boot image i, or "" when it can.
func (i CatalogImage) fits(f instance.Flavor) string {
	switch {
	case f.RAMMB < i.MinRAMMB:
		return fmt.Sprintf("flavor %s has %d MB of RAM; image %s needs at least %d MB", f.ID, f.RAMMB, i.ID, i.MinRAMMB)
	case f.DiskGB < i.MinDiskGB:
		return fmt.Sprintf("flavor %s has a %d GB disk; image %s needs at least %d GB", f.ID, f.DiskGB, i.ID, i.MinDiskGB)
	}
	return ""
}

// Flavor finds a flavor by id, then by name.
func (c *Catalog) Flavor(ref string) (instance.Flavor, bool) {
	if c == nil {
		return instance.Flavor{}, false
	}
	for _, byName := range []bool{false, true} {
		for _, f := range c.Flavors {
			if (!byName && f.ID == ref) || (byName && f.Name == ref) {
				return f, true
			}
		}
	}
	return instance.Flavor{}, false
}

// Image finds an image by id, then by name.
func (c *Catalog) Image(ref string) (CatalogImage, bool) {
	if c == nil {
		return CatalogImage{}, false
	}
	for _, byName := range []bool{false, true} {
		for _, i := range c.Images {
			if (!byName && i.ID == ref) || (byName && i.Name == ref) {
				return i, true
			}
		}
	}
	return CatalogImage{}, false
}

// Service accepts actions from the API: it checks them against the action
// table and the catalogs, and writes the transition through the Recorder
// for the owning node to carry out. It never calls a driver. It is safe for
// concurrent use.
type Service struct {
	store   *store.Store
	view    *store.View // nil: Begin always reads
	handoff Handoff     // nil: the executor learns from its watch
	rec     *Recorder
	catalog *Catalog
	node    string
	driver  string
	logger  *slog.Logger
}

// Config configures a Service.
type Config struct {
	Store    *store.Store
	Recorder *Recorder
	Catalog  *Catalog
	// View, if set, is the node's latest view of each instance (fed by
	// its watch): Begin's first attempt starts from it instead of
	// reading etcd. Nil means Begin always reads.
	View *store.View
	// Handoff, if set, is told of every transition Begin and Create
	// write (the node's executor), so that it need not wait for its
	// watch to bring the write back.
	Handoff Handoff
	// Node receives new instances; Driver is the driver they run on.
	Node   string
	Driver string
	Logger *slog.Logger
}

// Handoff takes records just written with a transition in flight.
// Hand must not block.
type Handoff interface {
	Hand(rec store.Record)
}

// NewService returns a Service.
func NewService(cfg Config) *Service {
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Service{store: cfg.Store, view: cfg.View, handoff: cfg.Handoff, rec: cfg.Recorder, catalog: cfg.Catalog, node: cfg.Node, driver: cfg.Driver, logger: l}
}

// MaxNameLength is the longest instance name accepted, as in Nova.
const MaxNameLength = 255

// CreateRequest is what a user asks for.
type CreateRequest struct {
	Name      string
	FlavorRef string
	ImageRef  string
	Metadata  map[string]string
	RequestID string
	Project   string
	User      string
}

// NewRequestID returns a request id in OpenStack's form.
func NewRequestID() string { return "req-" + uuid.NewString() }

// Create records a new instance in BUILD with a create transition for the
// node to carry out. Missing fields and unknown catalog references are
// ErrInvalid, naming them.
func (s *Service) Create(ctx context.Context, req CreateRequest) (store.Record, error) {
	var missing []string
	if strings.TrimSpace(req.Name) == "" {
		missing = append(missing, "name")
	}
	if req.FlavorRef == "" {
		missing = append(missing, "flavorRef")
	}
	if req.ImageRef == "" {
		missing = append(missing, "imageRef")
	}
	if len(missing) > 0 {
		return store.Record{}, fmt.Errorf("%w: missing %s", instance.ErrInvalid, strings.Join(missing, ", "))
	}
	if err := checkName(req.Name); err != nil {
		return store.Record{}, err
	}
	flavor, ok := s.catalog.Flavor(req.FlavorRef)
	if !ok {
		return store.Record{}, fmt.Errorf("%w: flavorRef %q is not a flavor of this cloud", instance.ErrInvalid, req.FlavorRef)
	}
	image, ok := s.catalog.Image(req.ImageRef)
	if !ok {
		return store.Record{}, fmt.Errorf("%w: imageRef %q is not an image of this cloud", instance.ErrInvalid, req.ImageRef)
	}
	if why := image.fits(flavor); why != "" {
		return store.Record{}, fmt.Errorf("%w: %s", instance.ErrInvalid, why)
	}
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	spec, _ := instance.Lookup(instance.ActionCreate)
	now := s.rec.Now()
	id := uuid.NewString()
	st := instance.State{
		ID: id, Name: req.Name, VMState: instance.Building, PowerState: instance.NoState,
		Flavor: flavor, Image: image.Image, Project: req.Project, User: req.User, Metadata: req.Metadata,
		Node: s.node, Driver: s.driver, CreatedAt: now, UpdatedAt: now,
	}
	t := spec.Begin("", st, req.RequestID, s.node, instance.Request{})
	t.StartedAt, t.StepStartedAt = now, now
	rec, err := s.rec.Record(ctx, store.Record{}, Change{
		ID: id, State: &st, Transition: t, At: now,
		Action: instance.ActionCreate, Cause: instance.CauseAPI, RequestID: req.RequestID, User: req.User,
	})
	if err == nil {
		s.hand(rec)
	}
	return rec, err
}

// hand passes a record just written to the Handoff, if any.
func (s *Service) hand(rec store.Record) {
	if s.handoff != nil && rec.Transition != nil {
		s.handoff.Hand(rec)
	}
}

func checkName(name string) error {
	switch {
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name is not valid UTF-8", instance.ErrInvalid)
	case utf8.RuneCountInString(name) > MaxNameLength:
		return fmt.Errorf("%w: name is %d characters long; at most %d are allowed", instance.ErrInvalid, utf8.RuneCountInString(name), MaxNameLength)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: name may not begin or end with whitespace", instance.ErrInvalid)
	}
	return nil
}

// ActionRequest carries an action's arguments as the user gave them.
type ActionRequest struct {
	FlavorRef string // resize
	ImageRef  string // rebuild
	Name      string // rebuild: optional new name
	RequestID string
	User      string
	// Project, if set, is the only project whose instances the caller may
	// act on: an instance of another project is ErrNotFound, as if it did
	// not exist, and nothing is written. "" allows every project (an
	// admin, the reconciler).
	Project string
	// Cause is who asks: the API (default) or the reconciler enforcing
	// the record, which may start stop and start from more statuses.
	Cause instance.Cause
	// Message is kept in the history record of the start; Policy names
	// the policy that decided it (the reconciler's enforcing actions).
	Message string
	Policy  string
}

// Begin starts action on instance id: it writes the action's transition,
// showing its first step. Another action in flight is ErrConflict (unless
// the action pre-empts it, as delete does), and so is an action the
// instance's status does not allow or its node's driver cannot do
// (ErrUnsupported, which also matches ErrConflict). Repeating a delete
// that is already in flight is accepted and changes nothing.
//
// Begin decides on a record and writes with that record's revisions as
// the guard. The first attempt takes the record from the node's View
// when it holds the instance, sparing the linearizable read; the View
// may be behind etcd, so on that attempt only one outcome is accepted: a
// guarded write that succeeded. Its guard compared both keys' revisions
// with the View's record inside etcd's transaction, so the record the
// decision was made on was the current one when the write landed: the
// same proof a read-based attempt has. Every other outcome of a
// View-based attempt (the guard lost, not found, another action in
// flight, a status that does not allow the action, a policy refusal, a
// Check, fits or capable error, the quota, the "same pre-empting action
// already in flight" answer, any failure) may come from the View being
// behind, so none is returned: Begin decides again on a fresh
// linearizable read, exactly as without a View. So every answer is
// either a write the guard proved was based on the current record, or a
// decision made on a linearizable read. (A write that failed ambiguously
// and yet landed is then seen by that read as an action in flight.)
func (s *Service) Begin(ctx context.Context, id string, action instance.Action, req ActionRequest) (store.Record, error) {
	spec, err := instance.Lookup(action)
	if err != nil {
		return store.Record{}, err
	}
	if action == instance.ActionCreate || !spec.Runnable() {
		return store.Record{}, fmt.Errorf("%w: %s is not supported", instance.ErrInvalid, action)
	}
	args, err := s.resolve(req)
	if err != nil {
		return store.Record{}, err
	}
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	if req.Cause == "" {
		req.Cause = instance.CauseAPI
	}
	// A concurrent step of the executor may move the record between our
	// read and our write; the guarded write then fails as stale and we
	// decide again on a fresh read. Conflicts are decided on that read.
	var rec store.Record
	fromView := false
	if s.view != nil {
		rec, fromView = s.view.Get(id)
	}
	for attempt := 0; ; attempt++ {
		if !fromView {
			if rec, err = s.store.Get(ctx, id); err != nil {
				return store.Record{}, err
			}
		}
		next, wrote, err := s.begin(ctx, id, rec, action, spec, args, req)
		if fromView && !wrote {
			// Not a write the guard proved: decide on a fresh read.
			fromView = false
			continue
		}
		if errors.Is(err, store.ErrStale) && attempt < 10 {
			continue
		}
		return next, err
	}
}

// begin decides action on rec (instance id) and writes its transition,
// guarded by rec's revisions; wrote says the answer is that write's
// record (the guard held), not a decision made on rec alone. Begin's loop
// decides what to do with the outcome.
func (s *Service) begin(ctx context.Context, id string, rec store.Record, action instance.Action, spec instance.Spec, args instance.Request, req ActionRequest) (next store.Record, wrote bool, err error) {
	if req.Project != "" && (rec.Err != nil || rec.State.Project != req.Project) {
		return store.Record{}, false, fmt.Errorf("%w: instance %s could not be found", instance.ErrNotFound, id)
	}
	if rec.Err != nil {
		return store.Record{}, false, fmt.Errorf("%w: instance %s cannot be read (%v); an operator must repair or remove its record", instance.ErrConflict, id, rec.Err)
	}
	from := rec.Status()
	if t := rec.Transition; t != nil {
		if t.Action == action && spec.Preempts {
			return rec, false, nil
		}
		if !spec.Preempts {
			return store.Record{}, false, fmt.Errorf("%w: instance %s is in %s (%s in flight, request %s)", instance.ErrConflict, id, from, t.Action, t.RequestID)
		}
	}
	if !spec.Allows(from, req.Cause) {
		return store.Record{}, false, fmt.Errorf("%w: cannot %s instance %s while it is %s", instance.ErrConflict, action, id, from)
	}
	if spec.Check != nil {
		if err := spec.Check(rec.State, args); err != nil {
			return store.Record{}, false, err
		}
	}
	if err := s.fits(rec.State, args); err != nil {
		return store.Record{}, false, err
	}
	if err := s.capable(ctx, rec.State, spec); err != nil {
		return store.Record{}, false, err
	}
	now := s.rec.Now()
	t := spec.Begin(from, rec.State, req.RequestID, rec.State.Node, args)
	t.StartedAt, t.StepStartedAt = now, now
	st := rec.State
	st.UpdatedAt = now
	ch := Change{ID: id, State: &st, Transition: t, At: now, Action: action, Cause: req.Cause, RequestID: req.RequestID, User: req.User, Message: req.Message, Policy: req.Policy}
	if t.Current() == "" {
		// The action shows no step (confirmResize): its one record is
		// the end the executor writes. Judge that end now, so that a
		// forbidden action is refused to the user, then hand the
		// transition over without a status change.
		end := st
		end.VMState, _ = instance.SettledState(t.Target)
		if err = s.rec.Check(ctx, rec, Change{ID: id, State: &end, Transition: t, At: now, Action: action, Cause: req.Cause}); err == nil {
			next, err = s.rec.Update(ctx, rec, id, &st, t)
		}
	} else {
		next, err = s.rec.Record(ctx, rec, ch)
	}
	if err == nil {
		s.hand(next)
	}
	return next, err == nil, err
}

// resolve looks the request's catalog references up. (Whether a resize's
// flavor still fits the instance's image is checked too, in Begin.)
func (s *Service) resolve(req ActionRequest) (instance.Request, error) {
	var out instance.Request
	if req.FlavorRef != "" {
		f, ok := s.catalog.Flavor(req.FlavorRef)
		if !ok {
			return out, fmt.Errorf("%w: flavorRef %q is not a flavor of this cloud", instance.ErrInvalid, req.FlavorRef)
		}
		out.Flavor = &f
	}
	if req.ImageRef != "" {
		i, ok := s.catalog.Image(req.ImageRef)
		if !ok {
			return out, fmt.Errorf("%w: imageRef %q is not an image of this cloud", instance.ErrInvalid, req.ImageRef)
		}
		img := i.Image
		out.Image = &img
	}
	if req.Name != "" {
		if err := checkName(req.Name); err != nil {
			return out, err
		}
		out.Name = req.Name
	}
	return out, nil
}

// fits checks that the flavor and image an action leaves the instance with
// go together, as far as the catalog still knows the image.
func (s *Service) fits(st instance.State, req instance.Request) error {
	if req.Flavor == nil && req.Image == nil {
		return nil
	}
	f, ref := st.Flavor, st.Image.ID
	if req.Flavor != nil {
		f = *req.Flavor
	}
	if req.Image != nil {
		ref = req.Image.ID
	}
	if img, ok := s.catalog.Image(ref); ok {
		if why := img.fits(f); why != "" {
			return fmt.Errorf("%w: %s", instance.ErrInvalid, why)
		}
	}
	return nil
}

// UnsupportedError is an action the instance's driver cannot do. It
// matches instance.ErrUnsupported and instance.ErrConflict (HTTP 409).
type UnsupportedError struct {
	Action     instance.Action
	Node       string
	Driver     string
	Capability string
	Why        string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("cannot %s: %s", e.Action, e.Why)
}

// Is matches instance.ErrUnsupported and instance.ErrConflict.
func (e *UnsupportedError) Is(target error) bool {
	return target == instance.ErrUnsupported || target == instance.ErrConflict
}

// capable checks, from the owning node's registration, that its driver has
// the capability the action needs. The node publishes its drivers'
// capabilities when it registers, so any node's API can answer.
func (s *Service) capable(ctx context.Context, st instance.State, spec instance.Spec) error {
	if spec.Capability == "" {
		return nil
	}
	info, alive, err := s.store.Node(ctx, st.Node)
	if err != nil {
		return err
	}
	if !alive {
		return &UnsupportedError{Action: spec.Action, Node: st.Node, Driver: st.Driver, Capability: spec.Capability,
			Why: fmt.Sprintf("node %s, which runs instance %s, is not alive to say whether its driver can", st.Node, st.ID)}
	}
	d, ok := info.Driver(st.Driver)
	if !ok || !slices.Contains(d.Capabilities, spec.Capability) {
		return &UnsupportedError{Action: spec.Action, Node: st.Node, Driver: st.Driver, Capability: spec.Capability,
			Why: fmt.Sprintf("driver %s on node %s lacks the %q capability", st.Driver, st.Node, spec.Capability)}
	}
	return nil
}

// Get returns one instance.
func (s *Service) Get(ctx context.Context, id string) (store.Record, error) {
	return s.store.Get(ctx, id)
}

// List returns every instance.
func (s *Service) List(ctx context.Context) ([]store.Record, error) {
	recs, _, err := s.store.List(ctx)
	return recs, err
}

// History returns an instance's status changes, also after deletion.
func (s *Service) History(ctx context.Context, id string) ([]instance.HistoryRecord, error) {
	return s.store.History(ctx, id)
}

// Flagged returns the instances carrying reconciler flags, and the VMs
// nobody recorded that live nodes have seen.
func (s *Service) Flagged(ctx context.Context) ([]store.Record, []store.Unmanaged, error) {
	recs, _, err := s.store.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	var flagged []store.Record
	for _, r := range recs {
		if len(r.State.Flags) > 0 {
			flagged = append(flagged, r)
		}
	}
	us, err := s.store.UnmanagedVMs(ctx)
	return flagged, us, err
}

// Unflag clears an instance's reconciler flags: the operator has seen
// them. It changes no status and writes no history; a disagreement that
// persists is flagged again at the next sweep.
func (s *Service) Unflag(ctx context.Context, id string) (store.Record, error) {
	for attempt := 0; ; attempt++ {
		rec, err := s.store.Get(ctx, id)
		if err != nil {
			return store.Record{}, err
		}
		if len(rec.State.Flags) == 0 {
			return rec, nil
		}
		st := rec.State
		st.Flags = nil
		next, err := s.rec.Update(ctx, rec, id, &st, rec.Transition)
		if errors.Is(err, store.ErrStale) && attempt < 10 {
			continue
		}
		return next, err
	}
}

// Usage returns what project's instances hold, as counted with every
// commit.
func (s *Service) Usage(ctx context.Context, project string) (store.Usage, error) {
	return s.store.Usage(ctx, project)
}

// Catalog returns the flavors and images the Service resolves against.
func (s *Service) Catalog() *Catalog { return s.catalog }
