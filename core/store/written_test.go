package store_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// A commit's structs go into the decode cache only when decoding their
// bytes gives them back exactly: every struct the test accepts must round
// trip, and each way of not round-tripping must be refused.
func TestWrittenRecordsRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 28, 14, 0, 0, 123456789, time.UTC)
	state := func(edit func(*instance.State)) *instance.State {
		st := &instance.State{Schema: instance.StateSchema, ID: "i-1", Name: "web", VMState: instance.Active, PowerState: instance.Running,
			Flavor: instance.Flavor{ID: "m1.tiny", Name: "m1.tiny", VCPUs: 1, RAMMB: 512, DiskGB: 1}, Image: instance.Image{ID: "cirros", Source: "fake://cirros"},
			Project: "p", User: "u", Node: "n1", Driver: "fake", CreatedAt: at, UpdatedAt: at, HistorySeq: 7}
		if edit != nil {
			edit(st)
		}
		return st
	}
	for _, tc := range []struct {
		name string
		st   *instance.State
		want bool
	}{
		{"plain", state(nil), true},
		{"metadata, fault, flags, old flavor", state(func(s *instance.State) {
			s.Metadata = map[string]string{"k": "v"}
			s.Fault = &instance.Fault{Code: 500, Message: "boom", At: at, During: instance.ActionStop}
			s.Flags = []instance.Flag{{Kind: "power_mismatch", Message: "m", Since: at, Recorded: instance.StatusActive, Observed: "shutdown"}}
			s.OldFlavor = &instance.Flavor{ID: "m1.small", VCPUs: 2}
			s.ResizedFrom = instance.StatusActive
		}), true},
		{"empty metadata", state(func(s *instance.State) { s.Metadata = map[string]string{} }), false},
		{"empty flags", state(func(s *instance.State) { s.Flags = []instance.Flag{} }), false},
		{"a time with a monotonic reading", state(func(s *instance.State) { s.UpdatedAt = time.Now().UTC().Add(0) }), false},
		{"a time in another zone", state(func(s *instance.State) { s.CreatedAt = at.In(time.FixedZone("x", 3600)) }), false},
		{"invalid UTF-8 in a fault", state(func(s *instance.State) { s.Fault = &instance.Fault{Message: "bad \xff", At: at} }), false},
		{"invalid UTF-8 in metadata", state(func(s *instance.State) { s.Metadata = map[string]string{"k\xfe": "v"} }), false},
		{"no id", state(func(s *instance.State) { s.ID = "" }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "a time with a monotonic reading" {
				tc.st.UpdatedAt = time.Now() // time.Now carries one; UTC() would strip it
			}
			got, _ := store.RoundTrips(tc.st, nil)
			if got != tc.want {
				t.Fatalf("round trips: %v, want %v", got, tc.want)
			}
			if got {
				b, err := json.Marshal(tc.st)
				if err != nil {
					t.Fatal(err)
				}
				back, err := instance.DecodeState(b)
				if err != nil || !reflect.DeepEqual(back, *tc.st) {
					t.Fatalf("accepted, but decoding gives\n%+v (%v), want\n%+v", back, err, *tc.st)
				}
			}
		})
	}
	tr := &instance.Transition{Schema: instance.TransitionSchema, Action: instance.ActionResize, RequestID: "req-1",
		Steps: []instance.Status{instance.StatusQueueResize, instance.StatusPrepResize}, Origin: instance.StatusActive, Target: instance.StatusVerifyResize,
		StartedAt: at, StepStartedAt: at, Attempt: 1, Node: "n1", Flavor: &instance.Flavor{ID: "m1.small"}, Image: &instance.Image{ID: "cirros"}, Name: "x"}
	if _, ok := store.RoundTrips(nil, tr); !ok {
		t.Fatal("a plain transition is refused")
	}
	b, _ := json.Marshal(tr)
	if back, err := instance.DecodeTransition(b); err != nil || !reflect.DeepEqual(back, *tr) {
		t.Fatalf("decoding the transition gives %+v (%v)", back, err)
	}
	local := *tr
	local.StartedAt = time.Now()
	if _, ok := store.RoundTrips(nil, &local); ok {
		t.Fatal("a transition with a monotonic time is accepted")
	}
}

// What a commit wrote is read back without decoding, and the cache's own
// check finds every written entry equal to its bytes' decoding.
func TestWrittenRecordsAreShared(t *testing.T) {
	s := testenv.Store(t)
	s.CheckDecoded()
	ctx := context.Background()
	at := time.Now().UTC().Round(0)
	st := instance.State{ID: "w-1", Name: "w", VMState: instance.Building, Node: "n1", Driver: "fake", CreatedAt: at, UpdatedAt: at,
		Metadata: map[string]string{"a": "b"}}
	tr := instance.Transition{Action: instance.ActionCreate, RequestID: "req-w", Steps: []instance.Status{instance.StatusBuild}, Target: instance.StatusActive, Node: "n1", StartedAt: at, StepStartedAt: at}
	rec, err := s.Commit(ctx, store.Record{}, store.Change{ID: st.ID, State: &st, Transition: &tr,
		History: &instance.HistoryRecord{At: at, To: instance.StatusBuild, Action: instance.ActionCreate, Cause: instance.CauseAPI}})
	if err != nil {
		t.Fatal(err)
	}
	if gs, gt := s.DecodedLen(); gs != 1 || gt != 1 {
		t.Fatalf("after the commit the decode cache holds %d states and %d transitions, want 1 and 1", gs, gt)
	}
	got, err := s.Get(ctx, st.ID)
	if err != nil || got.StateRev != rec.StateRev || got.TransitionRev != rec.TransitionRev || !reflect.DeepEqual(got.State, rec.State) || !reflect.DeepEqual(*got.Transition, *rec.Transition) {
		t.Fatalf("Get = %+v, %v; want the written %+v", got, err, rec)
	}
	st2 := rec.State
	st2.VMState = instance.Active
	if _, err := s.Commit(ctx, rec, store.Change{ID: st.ID, State: &st2,
		History: &instance.HistoryRecord{At: at, From: instance.StatusBuild, To: instance.StatusActive, Action: instance.ActionCreate, Cause: instance.CauseDriver}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.List(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckShared(ctx); err != nil {
		t.Fatal(err)
	}
}
