package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
)

// Retention defaults, used where a Retention field is zero.
const (
	DefaultMaxRecords = 1000
	DefaultMaxAge     = 2160 * time.Hour // 90 days
	DefaultDeletedTTL = 168 * time.Hour  // 7 days
)

// Retention bounds the history records kept (HCL's history block). A zero
// field means its default. Whatever the limits, a live instance keeps its
// newest record, so its history never ends up empty.
type Retention struct {
	// MaxRecords is how many records a live instance keeps; the oldest
	// beyond it are removed.
	MaxRecords int
	// MaxAge removes a live instance's records older than this (by their
	// At), except the newest.
	MaxAge time.Duration
	// DeletedTTL is how long a deleted instance's whole history is kept
	// after the deletion; then all of it is removed.
	DeletedTTL time.Duration
}

func (r Retention) withDefaults() Retention {
	if r.MaxRecords <= 0 {
		r.MaxRecords = DefaultMaxRecords
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultMaxAge
	}
	if r.DeletedTTL <= 0 {
		r.DeletedTTL = DefaultDeletedTTL
	}
	return r
}

// Pruned is what one retention pass removed.
type Pruned struct {
	// Trimmed is how many live instances lost records, and Records how
	// many records they lost in all.
	Trimmed int
	Records int64
	// Deleted is how many deleted instances' histories were removed, and
	// DeletedRecords how many records those held.
	Deleted        int
	DeletedRecords int64
}

// deletion is the value of deleted/<id>: when the instance was deleted
// (its DELETED record's At) and that record's sequence number.
type deletion struct {
	At  time.Time `json:"at"`
	Seq int64     `json:"seq"`
}

// historyPageSize bounds one read of history records during the age scan.
const historyPageSize = 256

// PruneHistory applies r as of now, once:
//
//   - a live instance keeps at most r.MaxRecords records and none older
//     than r.MaxAge, but always its newest record;
//   - a deleted instance's whole history (and its deleted/<id> index key)
//     goes once r.DeletedTTL has passed since its deletion.
//
// It removes only records that are due and nothing else. It is cheap when
// nothing is due: one ranged read of the instances and one of deleted/;
// an instance reads its history only when it has more records than the
// cap (one key) or was created before the age cutoff (its due records).
// Removals are batched, up to pruneBatch instances to a transaction.
//
// Every removal is guarded, so several nodes may prune at once: a live
// instance's records are removed only while the instance still exists in
// the incarnation that was read (its state key's CreateRevision), by a
// range that ends below its newest record; a deleted instance's history
// only while its deleted/<id> key is unchanged and no instance of that id
// exists. A record whose At cannot be read stops the age scan of its
// instance there (it cannot be judged), but not the count cap. Deletes
// work even while etcd's NOSPACE alarm is raised, so this is also how
// space is won back.
func (s *Store) PruneHistory(ctx context.Context, r Retention, now time.Time) (Pruned, error) {
	r = r.withDefaults()
	var p Pruned
	resp, err := s.cli.Get(ctx, s.key("instances")+"/", clientv3.WithPrefix(), clientv3.WithSerializable())
	if err != nil {
		return p, etcdErr("prune: read instances", err)
	}
	var (
		errs  []error
		trims []clientv3.Op
	)
	for _, kv := range resp.Kvs {
		id, kind, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), s.key("instances")+"/"), "/")
		if !ok || kind != "state" {
			continue
		}
		st, err := instance.DecodeState(kv.Value)
		if err != nil {
			// An unreadable state says nothing about its history: leave
			// the history alone.
			continue
		}
		cut, err := s.historyCut(ctx, id, st, r, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cut > 0 {
			trims = append(trims, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.stateKey(id)), "=", kv.CreateRevision)},
				[]clientv3.Op{clientv3.OpDelete(s.historyKey(id, 0), clientv3.WithRange(s.historyKey(id, cut)))},
				nil))
		}
	}
	err = s.removeBatched(ctx, "trim histories", trims, func(r *pb.TxnResponse) {
		if n := r.Responses[0].GetResponseDeleteRange().Deleted; n > 0 {
			p.Trimmed++
			p.Records += n
		}
	})
	if err != nil {
		errs = append(errs, err)
	}
	n, recs, err := s.dropDeleted(ctx, now.Add(-r.DeletedTTL))
	p.Deleted, p.DeletedRecords = n, recs
	if err != nil {
		errs = append(errs, err)
	}
	return p, errors.Join(errs...)
}

// pruneBatch is how many instances one retention transaction handles:
// a guarded delete costs about as much as the fsync of its transaction,
// so one per instance made a pass over 800 deleted instances take 7 s on
// a busy 2-core machine. etcd allows 128 operations to a level.
const pruneBatch = 100

// removeBatched commits guarded removals (each a nested transaction) in
// transactions of pruneBatch, and calls done with each one that passed
// its guard. A failed transaction is reported and the rest still tried.
func (s *Store) removeBatched(ctx context.Context, what string, ops []clientv3.Op, done func(*pb.TxnResponse)) error {
	var errs []error
	for len(ops) > 0 {
		n := min(len(ops), pruneBatch)
		resp, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit()
		ops = ops[n:]
		if err != nil {
			errs = append(errs, etcdErr("prune: "+what, err))
			continue
		}
		for _, r := range resp.Responses {
			if t := r.GetResponseTxn(); t != nil && t.Succeeded {
				done(t)
			}
		}
	}
	return errors.Join(errs...)
}

// historyCut applies the count and age caps to one live instance: it
// returns the sequence number below which its records are due, or 0 if
// none are.
func (s *Store) historyCut(ctx context.Context, id string, st instance.State, r Retention, now time.Time) (int64, error) {
	newest := st.HistorySeq
	if newest <= 1 {
		return 0, nil // nothing but the newest record
	}
	cut := max(newest-int64(r.MaxRecords)+1, 1) // records below cut are over the count cap
	cutoff := now.Add(-r.MaxAge)
	ageDue := st.CreatedAt.IsZero() || st.CreatedAt.Before(cutoff)
	if cut <= 1 && !ageDue {
		return 0, nil
	}
	// The oldest record left tells whether anything is due.
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithSerializable()}
	if !ageDue {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	resp, err := s.cli.Get(ctx, s.historyPrefix(id), opts...)
	if err != nil {
		return 0, etcdErr("prune: read history of "+id, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	oldest, ok := s.historySeq(id, resp.Kvs[0].Key)
	if !ok {
		return 0, nil
	}
	if ageDue {
		if cut, err = s.ageCut(ctx, id, max(oldest, cut), newest, cutoff); err != nil {
			return 0, err
		}
	}
	cut = min(cut, newest) // never the newest record
	if cut <= oldest {
		return 0, nil
	}
	return cut, nil
}

// ageCut returns the sequence number of the first record, from seq from
// on and below newest, that is not older than cutoff (or that cannot be
// read): records below it are due. If all of them are older it returns
// newest.
func (s *Store) ageCut(ctx context.Context, id string, from, newest int64, cutoff time.Time) (int64, error) {
	for from < newest {
		resp, err := s.cli.Get(ctx, s.historyKey(id, from), clientv3.WithRange(s.historyKey(id, newest)),
			clientv3.WithLimit(historyPageSize), clientv3.WithSerializable())
		if err != nil {
			return 0, etcdErr("prune: read history of "+id, err)
		}
		if len(resp.Kvs) == 0 {
			return newest, nil
		}
		for _, kv := range resp.Kvs {
			seq, ok := s.historySeq(id, kv.Key)
			if !ok {
				return from, nil
			}
			h, err := instance.DecodeHistory(kv.Value)
			if err != nil || !h.At.Before(cutoff) {
				return seq, nil
			}
			from = seq + 1
		}
	}
	return newest, nil
}

// historySeq parses the sequence number out of a history key of id.
func (s *Store) historySeq(id string, key []byte) (int64, bool) {
	seq, err := strconv.ParseInt(strings.TrimPrefix(string(key), s.historyPrefix(id)), 10, 64)
	return seq, err == nil
}

// dropDeleted removes the histories of instances deleted before cutoff.
func (s *Store) dropDeleted(ctx context.Context, cutoff time.Time) (int, int64, error) {
	base := s.key("deleted") + "/"
	resp, err := s.cli.Get(ctx, base, clientv3.WithPrefix(), clientv3.WithSerializable())
	if err != nil {
		return 0, 0, etcdErr("prune: read deletions", err)
	}
	var (
		drops []clientv3.Op
		errs  []error
	)
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), base)
		var d deletion
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrUnreadable, kv.Key, err))
			continue
		}
		if !d.At.Before(cutoff) {
			continue
		}
		// Only while the index key is unchanged; and if an instance of
		// that id exists again, its history is live: drop the index
		// key only.
		drops = append(drops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)},
			[]clientv3.Op{clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.stateKey(id)), "=", 0)},
				[]clientv3.Op{clientv3.OpDelete(s.historyPrefix(id), clientv3.WithPrefix()), clientv3.OpDelete(string(kv.Key))},
				[]clientv3.Op{clientv3.OpDelete(string(kv.Key))},
			)},
			nil))
	}
	var (
		n    int
		recs int64
	)
	err = s.removeBatched(ctx, "drop deleted histories", drops, func(r *pb.TxnResponse) {
		if inner := r.Responses[0].GetResponseTxn(); inner.Succeeded {
			n++
			recs += inner.Responses[0].GetResponseDeleteRange().Deleted
		}
	})
	if err != nil {
		errs = append(errs, err)
	}
	return n, recs, errors.Join(errs...)
}

// IndexDeletions finds deleted instances whose history has no deleted/<id>
// index key (deleted by a Lucid that wrote none) and writes the key, with
// the time of the instance's DELETED record, so that PruneHistory removes
// their history in time. A history without state whose last record is not
// DELETED (or cannot be read) is left alone and not indexed. It reads one
// key per instance that has a history, not every record, and returns how
// many keys it wrote. Run it once at start; later deletions write their
// own index key. Safe to run on several nodes at once: each write is
// guarded on the state and the index key being absent.
func (s *Store) IndexDeletions(ctx context.Context) (int, error) {
	base := s.key("history") + "/"
	end := clientv3.GetPrefixRangeEnd(base)
	from := base
	written := 0
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(1), clientv3.WithSerializable())
		if err != nil {
			return written, etcdErr("index deletions: scan history", err)
		}
		if len(resp.Kvs) == 0 {
			return written, nil
		}
		id, _, ok := strings.Cut(strings.TrimPrefix(string(resp.Kvs[0].Key), base), "/")
		if !ok {
			from = string(resp.Kvs[0].Key) + "\x00"
			continue
		}
		from = clientv3.GetPrefixRangeEnd(s.historyPrefix(id)) // the next id
		ok, err = s.indexDeletion(ctx, id)
		if err != nil {
			return written, err
		}
		if ok {
			written++
		}
	}
}

// indexDeletion writes deleted/<id> if id has no state, no index key and
// its last history record is DELETED.
func (s *Store) indexDeletion(ctx context.Context, id string) (bool, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.stateKey(id), clientv3.WithCountOnly()),
		clientv3.OpGet(s.deletedKey(id), clientv3.WithCountOnly()),
		clientv3.OpGet(s.historyPrefix(id), clientv3.WithPrefix(), clientv3.WithLimit(1),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)),
	).Commit()
	if err != nil {
		return false, etcdErr("index deletion of "+id, err)
	}
	rs := resp.Responses
	if rs[0].GetResponseRange().Count != 0 || rs[1].GetResponseRange().Count != 0 || len(rs[2].GetResponseRange().Kvs) == 0 {
		return false, nil
	}
	last := rs[2].GetResponseRange().Kvs[0]
	h, err := instance.DecodeHistory(last.Value)
	if err != nil || h.To != instance.StatusDeleted {
		return false, nil
	}
	seq, _ := s.historySeq(id, last.Key)
	b, err := json.Marshal(deletion{At: h.At, Seq: seq})
	if err != nil {
		return false, err
	}
	put, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(s.stateKey(id)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.deletedKey(id)), "=", 0),
	).Then(clientv3.OpPut(s.deletedKey(id), string(b))).Commit()
	if err != nil {
		return false, etcdErr("index deletion of "+id, err)
	}
	return put.Succeeded, nil
}
