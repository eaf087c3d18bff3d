package store

import "sync"

// DefaultViewSize is how many instances a View holds when NewView is
// given no bound.
const DefaultViewSize = 65536

// View is a node's latest view of each instance: id → the newest record
// the node's watch delivered (TransitionEvent.Record), or the record its
// last list read. It lets the write path start from what the node already
// knows instead of reading etcd (lifecycle's Begin, the feed's
// long-polls).
//
// A View is never the truth, only a good guess: it can be behind etcd by
// any number of writes (the watch is late, or broken until the next
// list; a write that changes the state but not the transition key, such
// as a flag on a settled instance, brings no event). So a user of a View
// must only act on it where etcd checks it: a guarded Commit whose base
// came from the View fails with ErrStale if the View was behind. A miss
// means read etcd.
//
// Records are shared, never copied deeply: the View keeps the watch
// event's *Record, whose State shares maps and slices with the decode
// cache (decoded.go). Get returns a copy of the Record; the copy-on-write
// rule documented on Record applies to it.
//
// A View is bounded: past its size, Apply and Reset evict an arbitrary
// entry (Go's map order) for each new one; an evicted instance is a miss.
// Safe for concurrent use. The zero View is not usable: call NewView.
type View struct {
	size int

	mu   sync.RWMutex
	recs map[string]*Record // by instance id; never an unreadable record
	rev  int64              // see Through
}

// NewView returns an empty View holding at most size instances
// (DefaultViewSize when size <= 0).
func NewView(size int) *View {
	if size <= 0 {
		size = DefaultViewSize
	}
	return &View{size: size, recs: map[string]*Record{}}
}

// Get returns the newest record the View holds for id, and whether it
// holds one.
func (v *View) Get(id string) (Record, bool) {
	v.mu.RLock()
	r, ok := v.recs[id]
	v.mu.RUnlock()
	if !ok {
		return Record{}, false
	}
	return *r, true
}

// Through is the revision the View has caught up with: its last list's,
// or the newest watch event it took since. A write at a later revision
// has not reached the View yet, nor has anything after that write (a
// delete), so a View that holds no entry for the instance of such a write
// has not forgotten it: it has yet to hear of it. Writes taken by Advance
// do not move it, since they come ahead of the watch. Commits that etcd
// got in one group (group.go) share a revision, and the View takes their
// events one by one: at Through itself another instance's write may still
// be on its way, so only a revision above Through says "not reached".
func (v *View) Through() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.rev
}

// Len is how many instances the View holds.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.recs)
}

// Apply takes a watch event into the View: its record replaces an older
// one of the instance; a deleted instance (Gone) is removed, and so is
// one whose event carries no record or an unreadable one (the View no
// longer knows it: a miss reads etcd). An event not newer than the record
// held is ignored. Events must come from one watch in revision order
// (Store.WatchTransitions' fn), after the Reset of the list that watch
// resumed from.
func (v *View) Apply(ev TransitionEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rev = max(v.rev, ev.Revision)
	if old, ok := v.recs[ev.ID]; ok && ev.Revision <= revisionOf(old) {
		return
	}
	if ev.Gone || ev.Record == nil || ev.Record.Err != nil {
		delete(v.recs, ev.ID)
		return
	}
	v.put(ev.ID, ev.Record)
}

// Advance takes a record that a write of this node left, confirmed by
// etcd (a successful guarded Commit), before the watch brings that write
// back: it replaces an older record of the instance. An instance the View
// does not hold is left out, since it may have been deleted after that
// write (the watch's Gone removed it). The watch's own event for the
// write is then not newer, and ignored.
func (v *View) Advance(rec Record) {
	if rec.Err != nil || rec.StateRev == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.recs[rec.State.ID]; ok && revisionOf(&rec) > revisionOf(old) {
		v.recs[rec.State.ID] = &rec
	}
}

// Reset makes recs (a List's records, read at revision rev) the whole
// View: instances not among them are gone from it. Call it with every list
// a watch resumes after, before that watch's first event. Unreadable
// records are left out.
func (v *View) Reset(recs []Record, rev int64) {
	m := make(map[string]*Record, min(len(recs), v.size))
	for i := range recs {
		if len(m) >= v.size {
			break
		}
		if recs[i].Err != nil || recs[i].StateRev == 0 {
			continue
		}
		r := recs[i]
		m[r.State.ID] = &r
	}
	v.mu.Lock()
	v.recs, v.rev = m, rev
	v.mu.Unlock()
}

// put stores r under id, evicting another entry when the View is full.
// Callers hold v.mu.
func (v *View) put(id string, r *Record) {
	if _, ok := v.recs[id]; !ok && len(v.recs) >= v.size {
		for other := range v.recs {
			delete(v.recs, other)
			break
		}
	}
	v.recs[id] = r
}

// revisionOf is the revision of the newest write a record reflects.
func revisionOf(r *Record) int64 { return max(r.StateRev, r.TransitionRev) }
