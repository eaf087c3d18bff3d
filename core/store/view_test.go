package store_test

import (
	"errors"
	"testing"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
)

func viewRec(id string, rev int64, inFlight bool) *store.Record {
	r := &store.Record{State: instance.State{ID: id}, StateRev: rev}
	if inFlight {
		r.Transition = &instance.Transition{Action: instance.ActionStop}
		r.TransitionRev = rev
	}
	return r
}

// TestViewApply pins what each event does to the View's entry of its
// instance: newer records replace, old news is ignored, and anything the
// View cannot vouch for (gone, no record, unreadable) is dropped so that
// a reader goes to etcd.
// wantHeld fails unless v holds instance "a" at state revision rev, or,
// for rev 0, holds no entry for it.
func wantHeld(t *testing.T, v *store.View, rev int64) {
	t.Helper()
	got, ok := v.Get("a")
	switch {
	case rev == 0 && ok:
		t.Fatalf("the View holds %+v, want no entry", got)
	case rev != 0 && (!ok || got.StateRev != rev):
		t.Fatalf("the View holds %+v (%v), want the record at %d", got, ok, rev)
	}
}

func TestViewApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		held    *store.Record // the entry before the event, nil: none
		ev      store.TransitionEvent
		wantRev int64 // the entry's StateRev after, 0: no entry
	}{
		{"new instance", nil, store.TransitionEvent{ID: "a", Revision: 5, Record: viewRec("a", 5, true)}, 5},
		{"newer record", viewRec("a", 5, true), store.TransitionEvent{ID: "a", Revision: 7, Record: viewRec("a", 7, false)}, 7},
		{"same revision", viewRec("a", 7, false), store.TransitionEvent{ID: "a", Revision: 7, Record: viewRec("a", 7, true)}, 7},
		{"older event", viewRec("a", 9, false), store.TransitionEvent{ID: "a", Revision: 7, Record: viewRec("a", 7, true)}, 9},
		{"older gone", viewRec("a", 9, false), store.TransitionEvent{ID: "a", Revision: 7, Gone: true}, 9},
		{"gone", viewRec("a", 5, true), store.TransitionEvent{ID: "a", Revision: 8, Gone: true}, 0},
		{"no record", viewRec("a", 5, true), store.TransitionEvent{ID: "a", Revision: 8}, 0},
		{"unreadable", viewRec("a", 5, true), store.TransitionEvent{ID: "a", Revision: 8,
			Record: &store.Record{State: instance.State{ID: "a"}, StateRev: 8, Err: store.ErrUnreadable}}, 0},
		{"gone, never held", nil, store.TransitionEvent{ID: "a", Revision: 8, Gone: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := store.NewView(0)
			if tc.held != nil {
				v.Reset([]store.Record{*tc.held}, tc.held.StateRev)
			}
			v.Apply(tc.ev)
			wantHeld(t, v, tc.wantRev)
		})
	}
}

// TestViewReset: a list replaces the whole View, leaves out what it
// cannot vouch for, and respects the bound; Apply evicts one entry for a
// new one when full, never growing past the bound.
func TestViewReset(t *testing.T) {
	v := store.NewView(3)
	v.Apply(store.TransitionEvent{ID: "old", Revision: 1, Record: viewRec("old", 1, false)})
	bad := *viewRec("bad", 2, false)
	bad.Err = errors.New("garbage")
	v.Reset([]store.Record{*viewRec("a", 2, false), bad, *viewRec("b", 3, true), *viewRec("c", 4, false), *viewRec("d", 5, false)}, 5)
	if _, ok := v.Get("old"); ok {
		t.Fatal("an instance missing from the list is still in the View")
	}
	if _, ok := v.Get("bad"); ok {
		t.Fatal("an unreadable record is in the View")
	}
	if v.Len() != 3 {
		t.Fatalf("the View holds %d records, want its bound 3", v.Len())
	}
	if r, ok := v.Get("b"); !ok || r.Transition == nil || r.TransitionRev != 3 {
		t.Fatalf("b = %+v, %v; want its listed record", r, ok)
	}
	v.Apply(store.TransitionEvent{ID: "e", Revision: 6, Record: viewRec("e", 6, false)})
	if r, ok := v.Get("e"); !ok || r.StateRev != 6 || v.Len() != 3 {
		t.Fatalf("after a new instance at the bound: e = %+v, %v; %d held, want e and 3", r, ok, v.Len())
	}
	// Replacing a held instance evicts nothing.
	held := ""
	for _, id := range []string{"a", "b", "c"} {
		if _, ok := v.Get(id); ok {
			held = id
		}
	}
	v.Apply(store.TransitionEvent{ID: held, Revision: 7, Record: viewRec(held, 7, false)})
	if r, ok := v.Get("e"); !ok || r.StateRev != 6 || v.Len() != 3 {
		t.Fatalf("updating %s evicted e or changed the count (%d)", held, v.Len())
	}
	// A Get is a copy: changing it does not change the View.
	r, _ := v.Get("e")
	r.StateRev = 99
	if r2, _ := v.Get("e"); r2.StateRev != 6 {
		t.Fatal("a Get's copy changed the View")
	}
}

// TestViewThrough: the View is through its list's revision, then through
// each watch event it takes, older or not; a write taken ahead of the
// watch (Advance) does not move it.
func TestViewThrough(t *testing.T) {
	v := store.NewView(0)
	for _, step := range []struct {
		name string
		do   func()
		want int64
	}{
		{"new", func() {}, 0},
		{"list", func() { v.Reset([]store.Record{*viewRec("a", 4, false)}, 6) }, 6},
		{"event", func() { v.Apply(store.TransitionEvent{ID: "b", Revision: 8, Record: viewRec("b", 8, true)}) }, 8},
		{"event for a held newer record", func() {
			v.Advance(*viewRec("a", 12, false))
			v.Apply(store.TransitionEvent{ID: "a", Revision: 10, Gone: true})
		}, 10},
		{"own write ahead of the watch", func() { v.Advance(*viewRec("b", 14, false)) }, 10},
		{"a list after a broken watch", func() { v.Reset(nil, 20) }, 20},
	} {
		step.do()
		if got := v.Through(); got != step.want {
			t.Fatalf("after %s: Through = %d, want %d", step.name, got, step.want)
		}
	}
}

// TestViewAdvance pins what a node's own confirmed write does to the View
// ahead of the watch: it replaces an older entry, and never brings back
// an instance the View does not hold (deleted since, or evicted).
func TestViewAdvance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		held    *store.Record
		wrote   *store.Record
		wantRev int64 // 0: no entry
	}{
		{"newer write", viewRec("a", 5, true), viewRec("a", 7, false), 7},
		{"the watch got there first", viewRec("a", 9, false), viewRec("a", 7, false), 9},
		{"same revision", viewRec("a", 7, true), viewRec("a", 7, false), 7},
		{"not held (deleted since)", nil, viewRec("a", 7, false), 0},
		{"unreadable", viewRec("a", 5, true), &store.Record{State: instance.State{ID: "a"}, StateRev: 8, Err: store.ErrUnreadable}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := store.NewView(0)
			if tc.held != nil {
				v.Reset([]store.Record{*tc.held}, tc.held.StateRev)
			}
			v.Advance(*tc.wrote)
			wantHeld(t, v, tc.wantRev)
			if got, _ := v.Get("a"); tc.name == "same revision" && got.Transition == nil {
				t.Fatal("a write at the held revision replaced the entry")
			}
		})
	}
}
