package store

import (
	"context"
	"encoding/json"
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
// removed at Revision.
type TransitionEvent struct {
	ID string
	// Transition is nil when the transition key was deleted (the action
	// ended or the instance is gone).
	Transition *instance.Transition
	Revision   int64
}

// WatchTransitions calls fn for every change of any instance's transition
// key after revision after, in revision order, until ctx ends (returning
// ctx.Err()) or the watch breaks. When after has been compacted it returns
// ErrCompacted: list again and resume from the list's revision. fn runs on
// the watching goroutine and must not block for long.
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
				var t instance.Transition
				if err := json.Unmarshal(ev.Kv.Value, &t); err != nil {
					return fmt.Errorf("store: decode %s: %w", ev.Kv.Key, err)
				}
				te.Transition = &t
			}
			fn(te)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("store: watch closed")
}
