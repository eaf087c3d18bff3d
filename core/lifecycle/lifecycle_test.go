package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// transitions loads the real default validate policy.
func transitions(t *testing.T, settings string) *policy.Module {
	t.Helper()
	ctx := context.Background()
	eng, err := policy.NewEngine(ctx, policy.EngineConfig{CacheDir: testenv.CacheDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	m, err := eng.Load(ctx, policy.Config{Name: "validate", Hook: policy.HookValidate, Path: testenv.Wasm(t, "./policies/transitions"), Settings: []byte(settings)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var catalog = &lifecycle.Catalog{
	Flavors: []instance.Flavor{
		{ID: "m1.tiny", Name: "tiny", VCPUs: 1, RAMMB: 512, DiskGB: 1},
		{ID: "m1.small", Name: "small", VCPUs: 1, RAMMB: 2048, DiskGB: 20},
	},
	Images: []lifecycle.CatalogImage{
		{Image: instance.Image{ID: "cirros", Name: "CirrOS", Source: "fake://cirros"}},
		{Image: instance.Image{ID: "big", Source: "fake://big"}, MinRAMMB: 1024},
	},
}

type env struct {
	store *store.Store
	rec   *lifecycle.Recorder
	svc   *lifecycle.Service
}

func newEnv(t *testing.T, settings string) env {
	t.Helper()
	s := testenv.Store(t)
	rec := lifecycle.NewRecorder(lifecycle.RecorderConfig{Store: s, Validator: transitions(t, settings), Policy: "transitions@test"})
	svc := lifecycle.NewService(lifecycle.Config{Store: s, Recorder: rec, Catalog: catalog, Node: "n1", Driver: "fake"})
	return env{s, rec, svc}
}

func TestCreateResolvesTheCatalog(t *testing.T) {
	e := newEnv(t, `{}`)
	ctx := context.Background()
	rec, err := e.svc.Create(ctx, lifecycle.CreateRequest{Name: "web", FlavorRef: "small", ImageRef: "CirrOS", RequestID: "req-1", Project: "p", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	st := rec.State
	if st.Flavor != catalog.Flavors[1] || st.Image != catalog.Images[0].Image || st.Node != "n1" || st.Driver != "fake" ||
		st.Project != "p" || st.User != "u" || rec.Status() != instance.StatusBuild || rec.Transition.Node != "n1" {
		t.Fatalf("created %+v %+v", st, rec.Transition)
	}
	h, _ := e.store.History(ctx, st.ID)
	if len(h) != 1 || h[0].To != instance.StatusBuild || h[0].Cause != instance.CauseAPI || h[0].User != "u" || h[0].RequestID != "req-1" {
		t.Fatalf("history %+v", h)
	}
	bad := []struct {
		req  lifecycle.CreateRequest
		want string
	}{
		{lifecycle.CreateRequest{}, "missing name, flavorRef, imageRef"},
		{lifecycle.CreateRequest{Name: "x", FlavorRef: "m9", ImageRef: "cirros"}, `flavorRef "m9" is not a flavor`},
		{lifecycle.CreateRequest{Name: "x", FlavorRef: "m1.tiny", ImageRef: "nope"}, `imageRef "nope" is not an image`},
		{lifecycle.CreateRequest{Name: "x", FlavorRef: "m1.tiny", ImageRef: "big"}, "needs at least 1024 MB"},
		{lifecycle.CreateRequest{Name: " x", FlavorRef: "m1.tiny", ImageRef: "cirros"}, "whitespace"},
		{lifecycle.CreateRequest{Name: strings.Repeat("é", 256), FlavorRef: "m1.tiny", ImageRef: "cirros"}, "256 characters"},
	}
	for _, b := range bad {
		if _, err := e.svc.Create(ctx, b.req); !errors.Is(err, instance.ErrInvalid) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Create(%+v) = %v, want ErrInvalid saying %q", b.req, err, b.want)
		}
	}
	if all, _ := e.svc.List(ctx); len(all) != 1 {
		t.Fatalf("refused creates wrote records: %d", len(all))
	}
}

// settle writes the create's success, as the executor would.
func settle(t *testing.T, e env, rec store.Record, vm instance.VMState) store.Record {
	t.Helper()
	st := rec.State
	st.VMState, st.PowerState = vm, instance.Running
	next, err := e.rec.Record(context.Background(), rec, lifecycle.Change{ID: st.ID, State: &st, Action: rec.Transition.Action,
		Cause: instance.CauseDriver, RequestID: rec.Transition.RequestID})
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func TestBeginChecksTableAndCapabilities(t *testing.T) {
	e := newEnv(t, `{}`)
	ctx := context.Background()
	rec, _ := e.svc.Create(ctx, lifecycle.CreateRequest{Name: "web", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	id := rec.State.ID
	if _, err := e.svc.Begin(ctx, id, instance.ActionStop, lifecycle.ActionRequest{}); !errors.Is(err, instance.ErrConflict) {
		t.Fatalf("stop during BUILD: %v", err)
	}
	rec = settle(t, e, rec, instance.Active)
	if _, err := e.svc.Begin(ctx, id, instance.ActionStart, lifecycle.ActionRequest{}); !errors.Is(err, instance.ErrConflict) {
		t.Fatalf("start while ACTIVE: %v", err)
	}
	// Resize needs the node to say its driver can.
	_, err := e.svc.Begin(ctx, id, instance.ActionResize, lifecycle.ActionRequest{FlavorRef: "m1.small"})
	var ue *lifecycle.UnsupportedError
	if !errors.As(err, &ue) || !errors.Is(err, instance.ErrConflict) || !strings.Contains(err.Error(), "not alive") {
		t.Fatalf("resize with no live node: %v", err)
	}
	reg, err := e.store.Register(ctx, store.NodeInfo{Name: "n1", Drivers: []store.DriverInfo{{Name: "fake"}}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Begin(ctx, id, instance.ActionResize, lifecycle.ActionRequest{FlavorRef: "m1.small"})
	if !errors.As(err, &ue) || ue.Capability != "resize" || !strings.Contains(err.Error(), `lacks the "resize" capability`) {
		t.Fatalf("resize on a driver without the capability: %v", err)
	}
	reg.Close(ctx)
	if _, err := e.store.Register(ctx, store.NodeInfo{Name: "n1", Drivers: []store.DriverInfo{{Name: "fake", Capabilities: []string{"rebuild", "resize"}}}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Begin(ctx, id, instance.ActionResize, lifecycle.ActionRequest{FlavorRef: "m1.tiny"}); !errors.Is(err, instance.ErrInvalid) {
		t.Fatalf("resize to the same flavor: %v", err)
	}
	got, err := e.svc.Begin(ctx, id, instance.ActionResize, lifecycle.ActionRequest{FlavorRef: "small", RequestID: "req-r"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status() != instance.StatusQueueResize || got.Transition.Flavor.ID != "m1.small" || got.Transition.Target != instance.StatusVerifyResize {
		t.Fatalf("resize began as %s %+v", got.Status(), got.Transition)
	}
	// Nothing refused above wrote anything.
	h, _ := e.store.History(ctx, id)
	if len(h) != 3 || h[2].To != instance.StatusQueueResize {
		t.Fatalf("history %+v", h)
	}
}

// confirmResize shows no step: the transition is handed over without a
// status change (no history yet), but the change it will make is judged
// at once, so a forbidden confirm is refused to the user.
func TestConfirmShowsNoStep(t *testing.T) {
	for _, tt := range []struct {
		settings string
		refused  bool
	}{{`{}`, false}, {`{ "forbid_actions": ["confirmResize"] }`, true}} {
		e := newEnv(t, tt.settings)
		ctx := context.Background()
		e.store.Register(ctx, store.NodeInfo{Name: "n1", Drivers: []store.DriverInfo{{Name: "fake", Capabilities: []string{"resize"}}}}, 5*time.Second)
		rec, _ := e.svc.Create(ctx, lifecycle.CreateRequest{Name: "web", FlavorRef: "m1.tiny", ImageRef: "cirros"})
		rec = resized(t, e, settle(t, e, rec, instance.Active))
		got, err := e.svc.Begin(ctx, rec.State.ID, instance.ActionConfirmResize, lifecycle.ActionRequest{})
		if tt.refused {
			if !errors.Is(err, instance.ErrRefused) || !strings.Contains(err.Error(), "forbid_actions") {
				t.Fatalf("forbidden confirm: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.Status() != instance.StatusVerifyResize || got.Transition == nil || got.Transition.Action != instance.ActionConfirmResize {
			t.Fatalf("confirm began as %s %+v", got.Status(), got.Transition)
		}
		if h, _ := e.store.History(ctx, rec.State.ID); len(h) != 6 {
			t.Fatalf("confirm's hand-over wrote history: %+v", h)
		}
	}
}

// resized walks an ACTIVE instance through a resize, step by step, as the
// executor would, and returns it in VERIFY_RESIZE.
func resized(t *testing.T, e env, rec store.Record) store.Record {
	t.Helper()
	ctx := context.Background()
	rec, err := e.svc.Begin(ctx, rec.State.ID, instance.ActionResize, lifecycle.ActionRequest{FlavorRef: "m1.small"})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := instance.Lookup(instance.ActionResize)
	for !spec.Last(rec.Transition) {
		tr := *rec.Transition
		tr.Step++
		st := rec.State
		if rec, err = e.rec.Record(ctx, rec, lifecycle.Change{ID: st.ID, State: &st, Transition: &tr, Action: tr.Action, Cause: instance.CauseDriver}); err != nil {
			t.Fatal(err)
		}
	}
	st := rec.State
	spec.Applies(&st, rec.Transition)
	st.VMState = instance.Resized
	if rec, err = e.rec.Record(ctx, rec, lifecycle.Change{ID: st.ID, State: &st, Action: instance.ActionResize, Cause: instance.CauseDriver}); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRecorderDoors(t *testing.T) {
	e := newEnv(t, `{}`)
	ctx := context.Background()
	rec, _ := e.svc.Create(ctx, lifecycle.CreateRequest{Name: "web", FlavorRef: "m1.tiny", ImageRef: "cirros", RequestID: "req-c"})
	id := rec.State.ID

	// A change the table does not allow is refused and writes nothing.
	st := rec.State
	st.VMState = instance.Stopped
	_, err := e.rec.Record(ctx, rec, lifecycle.Change{ID: id, State: &st, Action: instance.ActionCreate, Cause: instance.CauseDriver, RequestID: "req-c"})
	var re *lifecycle.RefusedError
	if !errors.As(err, &re) || re.Failed || re.From != instance.StatusBuild || re.To != instance.StatusShutoff || re.Policy != "transitions@test" {
		t.Fatalf("BUILD -> SHUTOFF: %v (%+v)", err, re)
	}
	// Update may not change the status.
	if _, err := e.rec.Update(ctx, rec, id, &st, nil); err == nil {
		t.Fatal("Update changed a status")
	}
	// Impose writes only a settled ERROR with a fault...
	if _, err := e.rec.Impose(ctx, rec, lifecycle.Change{ID: id, State: &st}); err == nil {
		t.Fatal("Impose wrote SHUTOFF")
	}
	bad := rec.State
	bad.VMState = instance.Error
	bad.Fault = &instance.Fault{Code: 500, Message: "refused"}
	if _, err := e.rec.Impose(ctx, rec, lifecycle.Change{ID: id, State: &bad, Action: instance.ActionCreate, RequestID: "req-c", Message: "refused"}); err != nil {
		t.Fatal(err)
	}
	// ...with cause policy and the policy's name, and no question asked.
	h, _ := e.store.History(ctx, id)
	if len(h) != 2 || h[1].Cause != instance.CausePolicy || h[1].Policy != "transitions@test" || h[1].To != instance.StatusError {
		t.Fatalf("imposed history %+v", h)
	}
	// A stale base loses.
	if _, err := e.rec.Impose(ctx, rec, lifecycle.Change{ID: id, State: &bad}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale Impose: %v", err)
	}
}
