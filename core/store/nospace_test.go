package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/core/store/embedded"
)

// tinyMember starts an embedded member with a 2 MiB quota.
func tinyMember(t *testing.T) (*embedded.Member, *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(dir, "etcd"), FastElection: true, QuotaBytes: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	s := store.New(m.Client(), "/lucid")
	t.Cleanup(func() { s.Close() })
	return m, s
}

// When etcd's quota is used up, every write fails with ErrNoSpace and
// writes nothing, reads still work, and a Maintainer wins the space back
// and disarms the alarm only when it may and when it freed enough.
func TestNoSpaceAndRecovery(t *testing.T) {
	m, s := tinyMember(t)
	ctx := context.Background()
	rec := create(t, s, "a")
	bulk := strings.Repeat("x", 16<<10)
	var full error
	for i := 0; full == nil; i++ {
		if i > 1000 {
			t.Fatal("2 MiB quota never reached after 1000 writes of 16 KiB")
		}
		st := rec.State
		next, err := s.Commit(ctx, rec, store.Change{ID: "a", State: &st,
			History: &instance.HistoryRecord{At: time.Now(), To: instance.StatusBuild, Message: bulk}})
		if err != nil {
			full = err
			break
		}
		rec = next
	}
	if !errors.Is(full, store.ErrNoSpace) {
		t.Fatalf("write past the quota: %v, want ErrNoSpace", full)
	}
	sp, err := s.Space(ctx)
	if err != nil || !sp.NoSpace || sp.Quota != 2<<20 {
		t.Fatalf("Space = %+v, %v; want the NOSPACE alarm raised, quota 2 MiB", sp, err)
	}
	// Nothing of the refused change was written; reads work.
	got, err := s.Get(ctx, "a")
	if err != nil || got.State.HistorySeq != rec.State.HistorySeq || got.StateRev != rec.StateRev {
		t.Fatalf("after the refused write Get = %+v, %v; want the record as before (seq %d)", got, err, rec.State.HistorySeq)
	}
	newest := rec.State.HistorySeq
	if h, err := s.History(ctx, "a"); err != nil || int64(len(h)) != newest {
		t.Fatalf("History: %d records, %v; want %d", len(h), err, newest)
	}
	// Every write fails now, even a small one, and so does a lease.
	st := rec.State
	if _, err := s.Commit(ctx, rec, store.Change{ID: "a", State: &st, History: &instance.HistoryRecord{To: instance.StatusActive}}); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("small write while full: %v, want ErrNoSpace", err)
	}
	if _, err := s.Register(ctx, store.NodeInfo{Name: "n2"}, 5*time.Second); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("node registration while full: %v, want ErrNoSpace", err)
	}

	steps := []struct {
		name string
		cfg  store.MaintainerConfig
		// what the round must have done, and whether writes work after
		compactions, defrags, disarms int
		writable                      bool
		log                           string
	}{
		{
			// Nothing is due for retention and compaction frees only
			// superseded states: too little to accept writes again. The
			// compaction's freed pages may not show in the space in use
			// yet, so the round defragments once to find out.
			name:        "nothing to reclaim",
			cfg:         store.MaintainerConfig{CompactRevisions: 10, Defragmenter: m, DisarmNoSpace: true},
			compactions: 1, defrags: 1, log: "reclaimed too little to accept writes again",
		},
		{
			// A cluster: retention removes records, but compaction and
			// defragmentation are the operator's, and so is disarming.
			name: "cluster",
			cfg:  store.MaintainerConfig{Retention: store.Retention{MaxRecords: 2}},
			log:  "until the operator reclaims space on every member and disarms it",
		},
		{
			name:        "embedded",
			cfg:         store.MaintainerConfig{Retention: store.Retention{MaxRecords: 2}, CompactRevisions: 10, Defragmenter: m, DisarmNoSpace: true},
			compactions: 1, defrags: 1, disarms: 1, writable: true, log: "store writable again",
		},
	}
	for _, step := range steps {
		var logs bytes.Buffer
		step.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		mt := store.NewMaintainer(s, step.cfg)
		mt.Round(ctx)
		stats := mt.Stats()
		if stats.NoSpaceAlarms != 1 || stats.Compactions != step.compactions || stats.Defrags != step.defrags || stats.Disarms != step.disarms {
			t.Errorf("%s: alarms %d compactions %d defrags %d disarms %d; want 1, %d, %d, %d", step.name,
				stats.NoSpaceAlarms, stats.Compactions, stats.Defrags, stats.Disarms, step.compactions, step.defrags, step.disarms)
		}
		if !strings.Contains(logs.String(), "store full: etcd raised its NOSPACE alarm") || !strings.Contains(logs.String(), step.log) {
			t.Errorf("%s: log lacks %q:\n%s", step.name, step.log, logs.String())
		}
		sp, err := s.Space(ctx)
		if err != nil || sp.NoSpace == step.writable {
			t.Fatalf("%s: after the round Space = %+v, %v; want NoSpace %v", step.name, sp, err, !step.writable)
		}
		t.Logf("%s: size %d KiB, in use %d KiB, quota %d KiB", step.name, sp.Size>>10, sp.InUse>>10, sp.Quota>>10)
	}

	// Retention kept the two newest records, and writes work again.
	if got, _ := s.HistorySeqs(ctx, "a"); !slices.Equal(got, []int64{newest - 1, newest}) {
		t.Fatalf("history keeps %v, want [%d %d]", got, newest-1, newest)
	}
	if _, err := s.Commit(ctx, rec, store.Change{ID: "a", State: &st, History: &instance.HistoryRecord{To: instance.StatusActive}}); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
}

// etcd's own log is private: it names keys.
func TestEmbeddedLogIsPrivate(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "etcd.log")
	// An existing, world-readable log is narrowed too.
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, logFile := range []string{"", log} {
		m, err := embedded.Start(context.Background(), embedded.Config{DataDir: filepath.Join(dir, fmt.Sprint("etcd", i)), LogFile: logFile, FastElection: true})
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		if logFile == "" {
			logFile = filepath.Join(dir, "etcd0.log")
		}
		fi, err := os.Stat(logFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
			t.Errorf("%s: mode %v, %d bytes; want 0600 and etcd's log lines", logFile, fi.Mode().Perm(), fi.Size())
		}
	}
}

// Defragmenting blocks the member, so the Maintainer does it only when it
// pays: the file near the quota with a quarter of the quota free in it.
//
// The file's size for a given amount of data is not fixed: bbolt grows
// it by 5-40 % more on a busy machine, where readers hold freed pages
// longer. So the store is filled under a roomy quota, and the member is
// restarted with a quota set from the size the file reached: near (the
// file at 5/6 of it) or far below (a quarter).
func TestMaintainerDefragmentsWhenItPays(t *testing.T) {
	cases := []struct {
		name    string
		quota   func(size int64) int64
		defrags int
	}{
		{"file near the quota", func(size int64) int64 { return size + size/5 }, 1},
		{"file far below the quota", func(size int64) int64 { return 4 * size }, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "etcd")
			m, err := embedded.Start(ctx, embedded.Config{DataDir: dir, FastElection: true, QuotaBytes: 64 << 20})
			if err != nil {
				t.Fatal(err)
			}
			s := store.New(m.Client(), "/lucid")
			// 6.5 MiB of history of an instance deleted two hours ago.
			history(t, s, "old", now.Add(-3*time.Hour), hoursAgo(3), at(now.Add(-2*time.Hour)))
			for i := range 104 {
				if err := s.PutRaw(ctx, fmt.Sprintf("history/old/%020d", 100+i), fmt.Sprintf(`{"schema":1,"to":"ACTIVE","message":%q}`, strings.Repeat("x", 64<<10))); err != nil {
					t.Fatal(err)
				}
			}
			// Space reports the size as of the backend's last commit,
			// every 100 ms; nothing is written after this.
			time.Sleep(300 * time.Millisecond)
			filled, err := s.Space(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			m.Close()
			quota := c.quota(filled.Size)
			if m, err = embedded.Start(ctx, embedded.Config{DataDir: dir, FastElection: true, QuotaBytes: quota}); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			s = store.New(m.Client(), "/lucid")
			defer s.Close()

			mt := store.NewMaintainer(s, store.MaintainerConfig{Retention: store.Retention{DeletedTTL: time.Hour}, CompactRevisions: 10, Defragmenter: m})
			mt.Round(ctx) // removes the history
			live := create(t, s, "live")
			for range 20 { // writes go on, so compaction passes the removal
				st := live.State
				if live, err = s.Commit(ctx, live, store.Change{ID: "live", State: &st, Transition: live.Transition}); err != nil {
					t.Fatal(err)
				}
			}
			mt.Round(ctx) // compacts, and defragments if it pays
			// What compaction freed counts as free space once etcd's
			// backend has committed it and no reader holds the old pages;
			// on a busy machine that can take another round or two.
			for i := 0; i < 20 && mt.Stats().Defrags < c.defrags; i++ {
				time.Sleep(100 * time.Millisecond)
				mt.Round(ctx)
			}
			st := mt.Stats()
			if st.Pruned.Deleted != 1 || st.Compactions != 2 || st.Defrags != c.defrags {
				t.Fatalf("deleted histories %d, compactions %d, defrags %d; want 1, 2, %d", st.Pruned.Deleted, st.Compactions, st.Defrags, c.defrags)
			}
			sp, _ := s.Space(ctx)
			t.Logf("filled %.1f MiB, quota %.1f MiB; after the rounds size %.1f MiB, in use %.1f MiB; defragmentation blocked %v",
				float64(filled.Size)/(1<<20), float64(quota)/(1<<20), float64(sp.Size)/(1<<20), float64(sp.InUse)/(1<<20), st.DefragTime)
			if shrunk := sp.Size < 2<<20; shrunk != (c.defrags == 1) {
				t.Fatalf("file is %d bytes after the rounds; shrunk %v, want %v", sp.Size, shrunk, c.defrags == 1)
			}
		})
	}
}

// TestMaintainerCompactsCloserUnderPressure: while more than half the
// quota is in use, compaction keeps a tenth of its revisions, so
// superseded values go before they fill the store (a revision can hold
// many commits' values: group.go); with room to spare it keeps them all.
func TestMaintainerCompactsCloserUnderPressure(t *testing.T) {
	const revs = 100
	for _, c := range []struct {
		name  string
		quota int64
		keep  int64
	}{
		{"more than half the quota in use", 7 << 20, revs / 10},
		{"room to spare", 64 << 20, revs},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			m, err := embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(t.TempDir(), "etcd"), FastElection: true, QuotaBytes: c.quota})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			s := store.New(m.Client(), "/lucid")
			defer s.Close()
			// 4 MiB of superseded values of one key.
			for i := range 128 {
				if err := s.PutRaw(ctx, "blob", fmt.Sprintf("%d%s", i, strings.Repeat("x", 32<<10))); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond) // Space reports the backend's last commit, every 100 ms
			sp, err := s.Space(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pressed := sp.InUse >= sp.Quota/2; pressed != (c.keep < revs) {
				t.Fatalf("%.1f MiB in use of a %.1f MiB quota: the case is not what it says", float64(sp.InUse)/(1<<20), float64(sp.Quota)/(1<<20))
			}
			mt := store.NewMaintainer(s, store.MaintainerConfig{CompactRevisions: revs})
			mt.Round(ctx)
			if got, want := mt.Stats().CompactedTo, sp.Revision-c.keep; got != want {
				t.Fatalf("compacted to %d at revision %d, want %d (%d revisions kept)", got, sp.Revision, want, c.keep)
			}
		})
	}
}
