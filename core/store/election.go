package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// Lead runs fn whenever candidate leads the election called name, until
// ctx ends. At most one candidate in the cluster leads at a time; fn's
// context ends when leadership is lost (the candidate's session lease, of
// ttl, could not be kept alive) or ctx ends, and Lead then campaigns
// again. Cluster-wide chores (orphaned transitions) run under it.
func (s *Store) Lead(ctx context.Context, name, candidate string, ttl time.Duration, fn func(ctx context.Context)) error {
	secs := max(int((ttl+time.Second-1)/time.Second), 1)
	for ctx.Err() == nil {
		if err := s.leadOnce(ctx, name, candidate, secs, fn); err != nil && ctx.Err() == nil {
			// etcd trouble: wait a little and campaign again.
			t := time.NewTimer(500 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	return ctx.Err()
}

func (s *Store) leadOnce(ctx context.Context, name, candidate string, ttl int, fn func(ctx context.Context)) error {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("store: election session: %w", err)
	}
	defer sess.Close()
	e := concurrency.NewElection(sess, s.key("election", name))
	if err := e.Campaign(ctx, candidate); err != nil {
		return fmt.Errorf("store: campaign for %s: %w", name, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(sessDone(sess), cancel)
	defer stop()
	fn(lctx)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if err := e.Resign(rctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("store: resign %s: %w", name, err)
	}
	return nil
}

// sessDone is a context that ends when the session's lease is lost.
func sessDone(sess *concurrency.Session) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sess.Done()
		cancel()
	}()
	return ctx
}

// Leader returns the current leader of election name, or "" if nobody
// leads.
func (s *Store) Leader(ctx context.Context, name string) (string, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("store: election session: %w", err)
	}
	defer sess.Close()
	resp, err := concurrency.NewElection(sess, s.key("election", name)).Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: leader of %s: %w", name, err)
	}
	return string(resp.Kvs[0].Value), nil
}
