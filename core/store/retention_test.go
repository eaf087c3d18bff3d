package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// now is the retention tests' clock; records are stamped relative to it.
var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func hoursAgo(h ...float64) []time.Time {
	out := make([]time.Time, len(h))
	for i, x := range h {
		out[i] = now.Add(-time.Duration(x * float64(time.Hour)))
	}
	return out
}

// history writes an instance created at created whose status changes
// are stamped ats (the first is the create), through Commit as Lucid
// writes them. If deleted is set, a last change deletes the instance then.
func history(t *testing.T, s *store.Store, id string, created time.Time, ats []time.Time, deleted *time.Time) {
	t.Helper()
	ctx := context.Background()
	st := instance.State{ID: id, VMState: instance.Active, PowerState: instance.Running, Node: "n1", CreatedAt: created}
	var base store.Record
	for i, at := range ats {
		next := st
		next.UpdatedAt = at
		rec, err := s.Commit(ctx, base, store.Change{ID: id, State: &next,
			History: &instance.HistoryRecord{At: at, To: instance.StatusActive, Action: instance.ActionStart, Cause: instance.CauseDriver, RequestID: fmt.Sprintf("req-%d", i+1)}})
		if err != nil {
			t.Fatalf("%s change %d: %v", id, i+1, err)
		}
		base = rec
	}
	if deleted != nil {
		if _, err := s.Commit(ctx, base, store.Change{ID: id,
			History: &instance.HistoryRecord{At: *deleted, From: instance.StatusActive, To: instance.StatusDeleted, Action: instance.ActionDelete, Cause: instance.CauseDriver}}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
}

func seqs(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func at(t time.Time) *time.Time { return &t }

// One retention pass removes what is due and nothing else; a second pass
// removes nothing.
func TestPruneHistory(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	r := store.Retention{MaxRecords: 5, MaxAge: 10 * time.Hour, DeletedTTL: 24 * time.Hour}
	recent := hoursAgo(9, 8, 7, 6, 5, 4, 3, 2, 1)
	cases := []struct {
		id      string
		created time.Time
		ats     []time.Time
		deleted *time.Time
		plant   func(t *testing.T) // after the history is written
		want    []int64            // seqs left; nil: the whole history is gone
	}{
		{id: "few", created: now.Add(-9 * time.Hour), ats: recent[:3], want: seqs(1, 3)},
		{id: "exactly-max", created: now.Add(-9 * time.Hour), ats: recent[:5], want: seqs(1, 5)},
		{id: "many", created: now.Add(-9 * time.Hour), ats: recent[:8], want: seqs(4, 8)},
		// The age cap drops records older than MaxAge...
		{id: "old", created: now.Add(-100 * time.Hour), ats: hoursAgo(50, 40, 5, 1), want: seqs(3, 4)},
		// ...but never the newest one.
		{id: "all-old", created: now.Add(-100 * time.Hour), ats: hoursAgo(50, 40, 30), want: []int64{3}},
		{id: "count-and-age", created: now.Add(-100 * time.Hour), ats: hoursAgo(60, 50, 40, 30, 20, 11, 3, 2, 1), want: seqs(7, 9)},
		// Records out of time order (clocks of different nodes): the scan
		// stops at the first record that is not due.
		{id: "skewed", created: now.Add(-100 * time.Hour), ats: hoursAgo(50, 2, 40, 1), want: seqs(2, 4)},
		// An unreadable record cannot be judged by age: it and what
		// follows stay.
		{id: "garbage", created: now.Add(-100 * time.Hour), ats: hoursAgo(50, 40, 30, 1),
			plant: func(t *testing.T) {
				if err := s.PutRaw(ctx, fmt.Sprintf("history/garbage/%020d", 2), "{not json"); err != nil {
					t.Fatal(err)
				}
			}, want: seqs(2, 4)},
		// An instance created recently cannot have old records: only the
		// count cap is checked (its records' At are not read).
		{id: "young-by-creation", created: now.Add(-time.Hour), ats: hoursAgo(50, 40, 30), want: seqs(1, 3)},
		// A deleted instance keeps its whole history, however long or
		// old, until DeletedTTL has passed since the deletion...
		{id: "gone-recently", created: now.Add(-100 * time.Hour), ats: hoursAgo(50, 40, 30, 29, 28, 27, 26), deleted: at(now.Add(-23 * time.Hour)), want: seqs(1, 8)},
		// ...then all of it goes.
		{id: "gone-long-ago", created: now.Add(-100 * time.Hour), ats: hoursAgo(50, 40), deleted: at(now.Add(-25 * time.Hour)), want: nil},
		// A deletion a former Lucid did not index stays until indexed.
		{id: "gone-unindexed", created: now.Add(-100 * time.Hour), ats: hoursAgo(50, 40), deleted: at(now.Add(-25 * time.Hour)),
			plant: func(t *testing.T) {
				if err := s.DeleteRaw(ctx, "deleted/gone-unindexed"); err != nil {
					t.Fatal(err)
				}
			}, want: seqs(1, 3)},
		// A history without a state that does not end in DELETED is not
		// a deletion: never indexed, never removed.
		{id: "orphan", created: now.Add(-100 * time.Hour), ats: hoursAgo(50),
			plant: func(t *testing.T) {
				if err := s.DeleteRaw(ctx, "instances/orphan/state"); err != nil {
					t.Fatal(err)
				}
			}, want: []int64{1}},
	}
	for _, c := range cases {
		history(t, s, c.id, c.created, c.ats, c.deleted)
		if c.plant != nil {
			c.plant(t)
		}
	}

	check := func(t *testing.T, step string, override map[string][]int64) {
		t.Helper()
		for _, c := range cases {
			want := c.want
			if w, ok := override[c.id]; ok {
				want = w
			}
			got, err := s.HistorySeqs(ctx, c.id)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s keeps seqs %v, want %v", step, c.id, got, want)
			}
		}
	}

	p, err := s.PruneHistory(ctx, r, now)
	if err != nil {
		t.Fatal(err)
	}
	// many: 3; old: 2; all-old: 2; count-and-age: 6; skewed: 1;
	// garbage: 1. gone-long-ago: 3 records (2 changes + DELETED).
	if want := (store.Pruned{Trimmed: 6, Records: 15, Deleted: 1, DeletedRecords: 3}); p != want {
		t.Errorf("first pass: %+v, want %+v", p, want)
	}
	check(t, "first pass", map[string][]int64{"gone-unindexed": seqs(1, 3)})
	if ok, _ := s.Indexed(ctx, "gone-long-ago"); ok {
		t.Error("gone-long-ago: deleted/ key left after its history was removed")
	}
	if ok, _ := s.Indexed(ctx, "gone-recently"); !ok {
		t.Error("gone-recently: deleted/ key missing")
	}

	p, err = s.PruneHistory(ctx, r, now)
	if err != nil || p != (store.Pruned{}) {
		t.Errorf("second pass: %+v, %v; want nothing removed", p, err)
	}

	n, err := s.IndexDeletions(ctx)
	if err != nil || n != 1 {
		t.Fatalf("IndexDeletions: %d, %v; want 1 (gone-unindexed)", n, err)
	}
	if n, err := s.IndexDeletions(ctx); err != nil || n != 0 {
		t.Fatalf("IndexDeletions again: %d, %v; want 0", n, err)
	}
	p, err = s.PruneHistory(ctx, r, now)
	if want := (store.Pruned{Deleted: 1, DeletedRecords: 3}); err != nil || p != want {
		t.Errorf("pass after indexing: %+v, %v; want %+v", p, err, want)
	}
	check(t, "after indexing", map[string][]int64{"gone-unindexed": nil})

	// A day later the recently deleted one goes too; the live ones keep
	// their newest record whatever their age.
	p, err = s.PruneHistory(ctx, r, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// few: 2, exactly-max: 4, many: 4, old: 1, count-and-age: 2,
	// skewed: 2, young-by-creation: 2. garbage keeps 2..4: record 2
	// cannot be judged.
	if want := (store.Pruned{Trimmed: 7, Records: 17, Deleted: 1, DeletedRecords: 8}); p != want {
		t.Errorf("a day later: %+v, want %+v", p, want)
	}
	check(t, "a day later", map[string][]int64{
		"few": {3}, "exactly-max": {5}, "many": {8}, "old": {4}, "count-and-age": {9}, "skewed": {4},
		"young-by-creation": {3}, "gone-recently": nil, "gone-unindexed": nil,
	})
}

// Retention never takes a live instance's last record, even with a cap
// of one, and a status change written during a pass is never removed.
func TestPruneKeepsNewestUnderWrites(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	rec := create(t, s, "a")
	r := store.Retention{MaxRecords: 1, MaxAge: time.Nanosecond}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			if _, err := s.PruneHistory(ctx, r, time.Now().Add(time.Hour)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 200 {
		st := rec.State
		next, err := s.Commit(ctx, rec, store.Change{ID: "a", State: &st,
			History: &instance.HistoryRecord{At: time.Now(), To: instance.StatusBuild, RequestID: fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		rec = next
		got, err := s.HistorySeqs(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[len(got)-1] != rec.State.HistorySeq {
			t.Fatalf("after change %d (seq %d) history keeps %v: the newest record is missing", i, rec.State.HistorySeq, got)
		}
	}
	wg.Wait()
	if _, err := s.PruneHistory(ctx, r, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.HistorySeqs(ctx, "a"); !slices.Equal(got, []int64{201}) {
		t.Fatalf("after the last pass history keeps %v, want [201]", got)
	}
}

// Several nodes may prune at once: together they remove exactly what one
// would, each record once. (More instances than one transaction takes.)
func TestPruneConcurrently(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	r := store.Retention{MaxRecords: 2, DeletedTTL: time.Hour}
	const n = 110
	for i := range n {
		history(t, s, fmt.Sprintf("live-%03d", i), now.Add(-time.Hour), hoursAgo(0.5, 0.4, 0.3), nil)
		history(t, s, fmt.Sprintf("gone-%03d", i), now.Add(-time.Hour), hoursAgo(0.5), at(now.Add(-2*time.Hour)))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total store.Pruned
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := s.PruneHistory(ctx, r, now)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total.Trimmed += p.Trimmed
			total.Records += p.Records
			total.Deleted += p.Deleted
			total.DeletedRecords += p.DeletedRecords
			mu.Unlock()
		}()
	}
	wg.Wait()
	if want := (store.Pruned{Trimmed: n, Records: n, Deleted: n, DeletedRecords: 2 * n}); total != want {
		t.Fatalf("4 concurrent passes removed %+v, want %+v", total, want)
	}
	for i := range n {
		if got, _ := s.HistorySeqs(ctx, fmt.Sprintf("live-%03d", i)); !slices.Equal(got, []int64{2, 3}) {
			t.Errorf("live-%03d keeps %v, want [2 3]", i, got)
		}
		if got, _ := s.HistorySeqs(ctx, fmt.Sprintf("gone-%03d", i)); got != nil {
			t.Errorf("gone-%03d keeps %v, want nothing", i, got)
		}
		if ok, _ := s.Indexed(ctx, fmt.Sprintf("gone-%03d", i)); ok {
			t.Errorf("gone-%03d: deleted/ key left", i)
		}
	}
}
