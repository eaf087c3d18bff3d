package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// settle ends rec's transition: ACTIVE, with metadata and a flag, so the
// record has a map and a slice to share.
func settle(t *testing.T, s *store.Store, rec store.Record) store.Record {
	t.Helper()
	st := rec.State
	st.VMState, st.PowerState = instance.Active, instance.Running
	st.Metadata = map[string]string{"role": "web"}
	st.Flags = []instance.Flag{{Kind: "power_mismatch", Message: "m"}}
	next, err := s.Commit(context.Background(), rec, store.Change{ID: st.ID, State: &st,
		History: &instance.HistoryRecord{At: time.Now(), From: instance.StatusBuild, To: instance.StatusActive}})
	if err != nil {
		t.Fatalf("settle %s: %v", st.ID, err)
	}
	return next
}

// A record read again at the same revision is the one decoded before
// (its map is the same map); a new revision, whoever wrote it, is decoded
// anew.
func TestDecodedRecordsAreSharedByRevision(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	settle(t, s, create(t, s, "a"))
	get := func() store.Record {
		t.Helper()
		r, err := s.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first, second := get(), get()
	list, _, err := s.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	p := reflect.ValueOf(first.State.Metadata).Pointer()
	if reflect.ValueOf(second.State.Metadata).Pointer() != p || reflect.ValueOf(list[0].State.Metadata).Pointer() != p {
		t.Fatal("reads of one revision decoded the record again")
	}
	// Written behind this Store's back: new revision, new bytes.
	if err := s.PutRaw(ctx, "instances/a/state", strings.Replace(mustJSON(t, first.State), `"web"`, `"db"`, 1)); err != nil {
		t.Fatal(err)
	}
	third := get()
	if third.StateRev == first.StateRev || third.State.Metadata["role"] != "db" || first.State.Metadata["role"] != "web" {
		t.Fatalf("after a raw write: rev %d → %d, metadata %v (first read's %v), want a new revision with role db",
			first.StateRev, third.StateRev, third.State.Metadata, first.State.Metadata)
	}
	// The shared slices have no spare capacity: appending copies.
	third.State.Flags = append(third.State.Flags, instance.Flag{Kind: "vanished"})
	if err := s.CheckShared(ctx); err != nil {
		t.Fatalf("an append changed the shared record: %v", err)
	}
	if got := get(); len(got.State.Flags) != 1 {
		t.Fatalf("flags after a caller's append: %+v", got.State.Flags)
	}
}

// CheckShared finds a caller that wrote into a shared record, whichever
// map, slice or pointer it wrote through, and names the key.
func TestCheckSharedFindsMutation(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		key    string
		mutate func(r store.Record)
	}{
		{"metadata", "state", func(r store.Record) { r.State.Metadata["role"] = "x" }},
		{"flag", "state", func(r store.Record) { r.State.Flags[0].Message = "x" }},
		{"fault", "state", func(r store.Record) { r.State.Fault.Message = "x" }},
		{"transition steps", "transition", func(r store.Record) { r.Transition.Steps[0] = instance.StatusError }},
		{"transition flavor", "transition", func(r store.Record) { r.Transition.Flavor.ID = "x" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testenv.Store(t)
			rec := settle(t, s, create(t, s, "a"))
			st := rec.State
			st.Fault = &instance.Fault{Code: 500, Message: "boom"}
			f := instance.Flavor{ID: "m1.small"}
			tr := instance.Transition{Action: instance.ActionResize, Steps: []instance.Status{instance.StatusResize}, Target: instance.StatusVerifyResize, Flavor: &f}
			if _, err := s.Commit(ctx, rec, store.Change{ID: "a", State: &st, Transition: &tr,
				History: &instance.HistoryRecord{At: time.Now(), To: instance.StatusResize}}); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			// What a caller may do: change the Record's own fields.
			got.State.Name, got.Transition.Step = "renamed", 7
			if err := s.CheckShared(ctx); err != nil {
				t.Fatalf("changing a record's own fields: %v", err)
			}
			c.mutate(got)
			err = s.CheckShared(ctx)
			if want := "/instances/a/" + c.key + " at revision"; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("CheckShared after mutating %s = %v, want an error naming %q", c.name, err, want)
			}
		})
	}
}

// The cache forgets what is gone: transitions that ended, instances
// deleted through this Store, and keys another writer deleted (at the
// next List).
func TestDecodedRecordsArePruned(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	const n = 6
	recs := make([]store.Record, n)
	for i := range n {
		recs[i] = create(t, s, fmt.Sprintf("i%d", i))
	}
	want := func(states, transitions int) {
		t.Helper()
		if gs, gt := s.DecodedLen(); gs != states || gt != transitions {
			t.Fatalf("decode cache holds %d states and %d transitions, want %d and %d", gs, gt, states, transitions)
		}
	}
	want(n, n) // what a commit wrote is kept as it was written (keepWritten)
	if _, _, err := s.List(ctx); err != nil {
		t.Fatal(err)
	}
	want(n, n)
	// Transitions end through this Store: forgotten at once.
	for i := range 3 {
		recs[i] = settle(t, s, recs[i])
	}
	want(n, n-3)
	// Re-read at new revisions: replaced, not added.
	if _, _, err := s.List(ctx); err != nil {
		t.Fatal(err)
	}
	want(n, n-3)
	// Deleted through this Store: forgotten at once.
	if _, err := s.Commit(ctx, recs[0], store.Change{ID: "i0", History: &instance.HistoryRecord{At: time.Now(), To: instance.StatusDeleted}}); err != nil {
		t.Fatal(err)
	}
	want(n-1, n-3)
	// Deleted by someone else: a Get that finds it gone forgets it, a
	// List forgets whatever it did not return.
	for _, k := range []string{"instances/i1/state", "instances/i3/transition", "instances/i4/state", "instances/i4/transition"} {
		if err := s.DeleteRaw(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, "i3"); err != nil {
		t.Fatal(err)
	}
	want(n-1, n-4)
	if _, _, err := s.List(ctx); err != nil {
		t.Fatal(err)
	}
	want(n-3, n-5)
}

func mustJSON(t *testing.T, st instance.State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// After CheckDecoded, a record changed in place is found even once a
// newer revision has replaced it in the cache: the read, change, write
// again of a careless caller.
func TestCheckDecodedFindsReplacedMutation(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	s.CheckDecoded()
	settle(t, s, create(t, s, "a"))
	rec, err := s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	st := rec.State
	st.Metadata["role"] = "db" // wrong: writes into the shared map
	if _, err := s.Commit(ctx, rec, store.Change{ID: "a", State: &st}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); err != nil { // decodes the new revision, retiring the old
		t.Fatal(err)
	}
	err = s.CheckShared(ctx)
	if want := fmt.Sprintf("/instances/a/state at revision %d was changed", rec.StateRev); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckShared = %v, want an error containing %q", err, want)
	}
	if err := s.CheckShared(ctx); err != nil {
		t.Fatalf("a second CheckShared reports again: %v", err)
	}
}
