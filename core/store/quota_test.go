package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// createIn creates instance id in project with one vCPU and 512 MB,
// against limits (nil: recorded, never refused).
func createIn(ctx context.Context, s *store.Store, project, id string, limits *store.Limits) (store.Record, error) {
	now := time.Now().UTC()
	st := instance.State{ID: id, Name: id, Project: project, VMState: instance.Building, Node: "n1",
		Flavor: instance.Flavor{VCPUs: 1, RAMMB: 512}, CreatedAt: now, UpdatedAt: now}
	tr := instance.Transition{Action: instance.ActionCreate, RequestID: "req-" + id, Steps: []instance.Status{instance.StatusBuild}, Target: instance.StatusActive, Node: "n1"}
	return s.Commit(ctx, store.Record{}, store.Change{ID: id, State: &st, Transition: &tr, Limits: limits,
		History: &instance.HistoryRecord{At: now, To: instance.StatusBuild, Action: instance.ActionCreate, Cause: instance.CauseAPI}})
}

// A project's usage is split across shards so that changes of different
// instances rarely compare the same key; the shards must still add up
// exactly, and a limit must still hold exactly under concurrent creates.
func TestUsageShards(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()

	t.Run("limit holds under 32 concurrent creates", func(t *testing.T) {
		limits := &store.Limits{Instances: 10, Cores: -1, RAMMB: -1}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, refused := 0, 0
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := createIn(ctx, s, "limited", fmt.Sprintf("l-%d", i), limits)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrQuota):
					refused++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok != 10 || refused != 22 {
			t.Fatalf("%d created, %d refused; want 10 and 22", ok, refused)
		}
		if u, err := s.Usage(ctx, "limited"); err != nil || u != (store.Usage{Instances: 10, Cores: 10, RAMMB: 5120}) {
			t.Fatalf("usage %+v, %v", u, err)
		}
	})

	t.Run("unlimited creates and deletes add up", func(t *testing.T) {
		var wg sync.WaitGroup
		recs := make([]store.Record, 64)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < 64; i += 16 {
					r, err := createIn(ctx, s, "open", fmt.Sprintf("o-%d", i), nil)
					if err != nil {
						t.Error(err)
					}
					recs[i] = r
				}
			}()
		}
		wg.Wait()
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("o-%d", i)
				if _, err := s.Commit(ctx, recs[i], store.Change{ID: id, History: &instance.HistoryRecord{At: time.Now(), From: instance.StatusBuild, To: instance.StatusDeleted}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if u, err := s.Usage(ctx, "open"); err != nil || u != (store.Usage{Instances: 44, Cores: 44, RAMMB: 44 * 512}) {
			t.Fatalf("usage %+v, %v; want 44 instances", u, err)
		}
		keys, err := s.RawKeys(ctx, "quota/open/")
		if err != nil || len(keys) < 2 || len(keys) > 64 {
			t.Fatalf("shards %v, %v: want 2 to 64", keys, err)
		}
	})

	t.Run("a single counter of an earlier version is counted again", func(t *testing.T) {
		if err := s.PutRaw(ctx, "quota/open", `{"instances":99,"cores":99,"ram_mb":99}`); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRaw(ctx, "quota-counted", "1"); err != nil { // the old marker
			t.Fatal(err)
		}
		if err := s.CountUsage(ctx); err != nil {
			t.Fatal(err)
		}
		for project, want := range map[string]store.Usage{
			"open":    {Instances: 44, Cores: 44, RAMMB: 44 * 512},
			"limited": {Instances: 10, Cores: 10, RAMMB: 5120},
		} {
			if u, err := s.Usage(ctx, project); err != nil || u != want {
				t.Errorf("%s: usage %+v, %v; want %+v", project, u, err, want)
			}
		}
		keys, err := s.RawKeys(ctx, "quota/")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(keys, "quota/open") {
			t.Errorf("the old counter is still there: %v", keys)
		}
		for _, k := range keys {
			if p := strings.Split(k, "/"); len(p) != 3 {
				t.Errorf("counter %s is not a shard", k)
			}
		}
	})
}
