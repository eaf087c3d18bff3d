package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
)

// ErrCompacted means a watch asked for revisions etcd no longer keeps.
// The watcher must re-list and watch again from the list's revision.
var ErrCompacted = errors.New("watch revision compacted")

// TransitionEvent says that an instance's transition was written or
// removed at Revision. Transition shares what it points to with other
// readers, as a Record does.
type TransitionEvent struct {
	ID string
	// Transition is nil when the transition key was deleted (the action
	// ended or the instance is gone).
	Transition *instance.Transition
	Revision   int64
	// Record is the instance as that write left it, when the same write
	// also wrote its state: both keys then carry ModRevision Revision (or
	// the transition is absent, TransitionRev 0), which is exactly the
	// base a guarded Commit compares. Every write Lucid makes (Commit,
	// Adopt) changes both keys in one transaction, so a watcher can act
	// on Record without reading the instance back; a read after a watch
	// event is not even safe unless it is linearizable (DESIGN.md §11).
	// Record is nil when the write did not put the state: the instance
	// was deleted (Gone), or something wrote the transition key alone
	// (Lucid never does; read the instance then). A state that does not
	// decode is kept in Record.Err, as Get does.
	Record *Record
	// Gone is set when the same write deleted the instance's state: the
	// instance no longer exists (a Get would say instance.ErrNotFound).
	Gone bool
}

// WatchTransitions calls fn for every change of any instance's transition
// key after revision after, in revision order, until ctx ends (returning
// ctx.Err()) or the watch breaks. When after has been compacted it returns
// ErrCompacted: list again and resume from the list's revision. fn runs on
// the watching goroutine and must not block for long; it may keep the
// event's Record but must not change it.
func (s *Store) WatchTransitions(ctx context.Context, after int64, fn func(TransitionEvent)) error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	base := s.key("instances") + "/"
	wch := s.cli.Watch(ctx, base, clientv3.WithPrefix(), clientv3.WithRev(after+1))
	for resp := range wch {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return fmt.Errorf("%w: at %d (compacted through %d)", ErrCompacted, after, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("store: watch: %w", err)
		}
		for _, ev := range resp.Events {
			id, kind, ok := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), base), "/")
			if !ok || kind != "transition" {
				continue
			}
			te := TransitionEvent{ID: id, Revision: ev.Kv.ModRevision}
			if ev.Type == mvccpb.PUT {
				// Through the decode cache: the reads of the same
				// revision (the API's, a listing's) find it decoded.
				recs := s.decode([]*mvccpb.KeyValue{ev.Kv}, 0)
				if len(recs) != 1 || recs[0].Transition == nil {
					err := ErrUnreadable
					if len(recs) == 1 && recs[0].Err != nil {
						err = recs[0].Err
					}
					return fmt.Errorf("store: watch: %w", err)
				}
				te.Transition = recs[0].Transition
			} else {
				s.forget(id, ev.Kv.ModRevision, false, true)
			}
			// etcd sends a revision's events in one response (no
			// fragmenting is asked for), so the state written by the
			// same transaction is among resp.Events.
			if st := sameWrite(resp.Events, base+id+"/state", te.Revision); st != nil {
				if st.Type == mvccpb.DELETE {
					te.Gone = true
					s.forget(id, te.Revision, true, true)
				} else {
					te.Record = s.eventRecord(id, st.Kv, te)
				}
			}
			fn(te)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("store: watch closed")
}

// sameWrite finds the event of key at revision rev among events.
func sameWrite(events []*clientv3.Event, key string, rev int64) *clientv3.Event {
	for _, ev := range events {
		if ev.Kv.ModRevision == rev && string(ev.Kv.Key) == key {
			return ev
		}
	}
	return nil
}

// eventRecord is the record a write left: state from kv, the transition
// from te, both at te.Revision.
func (s *Store) eventRecord(id string, kv *mvccpb.KeyValue, te TransitionEvent) *Record {
	r := &Record{Transition: te.Transition, StateRev: kv.ModRevision}
	if te.Transition != nil {
		r.TransitionRev = te.Revision
	}
	// Through the decode cache, as Get and List are.
	if recs := s.decode([]*mvccpb.KeyValue{kv}, 0); len(recs) == 1 {
		r.State, r.Err = recs[0].State, recs[0].Err
	} else {
		r.State, r.Err = instance.State{ID: id}, fmt.Errorf("%w: %s", ErrUnreadable, kv.Key)
	}
	return r
}

// Revision returns etcd's current revision, read linearizably: a watch
// from there (WatchTransitions(ctx, rev, …)) misses no write made after
// this call, and reads made after it see at least this revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.key("ping"), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("store: revision: %w", err)
	}
	return resp.Header.Revision, nil
}
