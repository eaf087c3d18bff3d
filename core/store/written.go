package store

import (
	"bytes"
	"hash/maphash"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/lucid-project/lucid/core/instance"
)

// keepWritten puts what a commit wrote at rev into the decode cache, as
// the structs it encoded, so that the watch event of that very write
// (which every node's executor, feed and view receive) and any read of
// it find it decoded instead of decoding it again: 4-5 % of lucid
// serve's CPU on a stop/start load. A struct goes in only if decoding
// its bytes gives it back exactly (roundTrips): otherwise a reader would
// see something no read of etcd gives, and the decode cache's own check
// (CheckDecoded) would rightly call it changed.
func (s *Store) keepWritten(rev int64, id string, st *instance.State, stBytes []byte, t *instance.Transition, tBytes []byte) {
	if st != nil && !stateRoundTrips(st) {
		st = nil
	}
	if t != nil && !transitionRoundTrips(t) {
		t = nil
	}
	if st == nil && t == nil {
		return
	}
	c := &s.decoded
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if st != nil {
		e := &cached[instance.State]{rev: rev, sum: maphash.Bytes(c.seed, stBytes), v: *st}
		e.v.Flags = slices.Clip(e.v.Flags)
		if c.check {
			e.raw = bytes.Clone(stBytes)
		}
		keep(c, c.states, s.stateKey(id), e)
	}
	if t != nil {
		e := &cached[instance.Transition]{rev: rev, sum: maphash.Bytes(c.seed, tBytes), v: *t}
		e.v.Steps = slices.Clip(e.v.Steps)
		if c.check {
			e.raw = bytes.Clone(tBytes)
		}
		keep(c, c.transitions, s.transitionKey(id), e)
	}
}

// stateRoundTrips reports whether encoding/json gives st back exactly
// from its own encoding: no empty-but-present map or slice (omitempty
// drops it, decoding leaves nil), only valid UTF-8 (encoding replaces
// the rest), only UTC times without a monotonic reading (decoding gives
// neither a zone pointer nor a monotonic clock), and the same for what it
// points to. An ID is required: decoding takes it from the key if absent.
func stateRoundTrips(st *instance.State) bool {
	if st.ID == "" || st.Metadata != nil && len(st.Metadata) == 0 || st.Flags != nil && len(st.Flags) == 0 {
		return false
	}
	ok := texts(st.ID, st.Name, string(st.VMState), string(st.PowerState), string(st.ResizedFrom), st.Project, st.User, st.Node, st.Driver) &&
		flavorOK(&st.Flavor) && imageOK(&st.Image) && times(st.CreatedAt, st.UpdatedAt)
	if st.OldFlavor != nil {
		ok = ok && flavorOK(st.OldFlavor)
	}
	if f := st.Fault; f != nil {
		ok = ok && texts(f.Message, string(f.During)) && times(f.At)
	}
	for k, v := range st.Metadata {
		ok = ok && texts(k, v)
	}
	for _, f := range st.Flags {
		ok = ok && texts(f.Kind, f.Message, string(f.Recorded), f.Observed) && times(f.Since)
	}
	return ok
}

// transitionRoundTrips is stateRoundTrips for a transition. Its steps
// have no omitempty: nil and empty both come back as they went.
func transitionRoundTrips(t *instance.Transition) bool {
	ok := texts(string(t.Action), t.RequestID, string(t.Origin), string(t.Target), t.Node, t.Name) &&
		times(t.StartedAt, t.StepStartedAt)
	for _, s := range t.Steps {
		ok = ok && texts(string(s))
	}
	if t.Flavor != nil {
		ok = ok && flavorOK(t.Flavor)
	}
	if t.Image != nil {
		ok = ok && imageOK(t.Image)
	}
	return ok
}

func flavorOK(f *instance.Flavor) bool { return texts(f.ID, f.Name) }
func imageOK(i *instance.Image) bool   { return texts(i.ID, i.Name, i.Source, i.DiskFormat) }

func texts(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func times(ts ...time.Time) bool {
	for _, t := range ts {
		if t.Location() != time.UTC || t != t.Round(0) {
			return false
		}
	}
	return true
}
