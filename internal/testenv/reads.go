package testenv

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/core/store/embedded"
)

// ReadCountingStore returns a Store on m under prefix, through a client of
// its own whose key-value reads are counted in the returned counter: each
// Get, and each Do of a get, is one range request to etcd. (A guarded
// transaction's compares are not reads the client sends and are not
// counted; neither are watches.) A test gives it to the component whose
// reads it pins and another Store to everything else. Closed when the
// test ends.
func ReadCountingStore(t testing.TB, m *embedded.Member, prefix string) (*store.Store, *atomic.Int64) {
	t.Helper()
	return ReadCountingStoreKV(t, m, prefix, nil)
}

// ReadCountingStoreKV is ReadCountingStore whose client's KV calls, after
// being counted, go through what wrap makes of the client's KV (nil: the
// KV itself): a test watches or delays the real calls, passing them on.
func ReadCountingStoreKV(t testing.TB, m *embedded.Member, prefix string, wrap func(clientv3.KV) clientv3.KV) (*store.Store, *atomic.Int64) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("testenv: etcd client: %v", err)
	}
	inner := cli.KV
	if wrap != nil {
		inner = wrap(inner)
	}
	kv := &countingKV{KV: inner}
	cli.KV = kv
	s := store.New(cli, prefix)
	t.Cleanup(func() { s.Close() })
	return s, &kv.reads
}

// countingKV counts the range requests passing through an etcd KV.
type countingKV struct {
	clientv3.KV
	reads atomic.Int64
}

func (k *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	k.reads.Add(1)
	return k.KV.Get(ctx, key, opts...)
}

func (k *countingKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	if op.IsGet() {
		k.reads.Add(1)
	}
	return k.KV.Do(ctx, op)
}

// AfterTxn wraps kv so that every transaction's Commit, once etcd has
// answered, hands its context and answer to after, whose result the
// caller gets: a test holds or loses the answer to a write that etcd
// applied, as a slow or cancelled client would.
func AfterTxn(kv clientv3.KV, after func(ctx context.Context, resp *clientv3.TxnResponse, err error) (*clientv3.TxnResponse, error)) clientv3.KV {
	return &afterKV{KV: kv, after: after}
}

type afterKV struct {
	clientv3.KV
	after func(context.Context, *clientv3.TxnResponse, error) (*clientv3.TxnResponse, error)
}

func (k *afterKV) Txn(ctx context.Context) clientv3.Txn {
	return afterTxn{Txn: k.KV.Txn(ctx), ctx: ctx, after: k.after}
}

type afterTxn struct {
	clientv3.Txn
	ctx   context.Context
	after func(context.Context, *clientv3.TxnResponse, error) (*clientv3.TxnResponse, error)
}

func (t afterTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	return afterTxn{t.Txn.If(cs...), t.ctx, t.after}
}

func (t afterTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return afterTxn{t.Txn.Then(ops...), t.ctx, t.after}
}

func (t afterTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return afterTxn{t.Txn.Else(ops...), t.ctx, t.after}
}

func (t afterTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	return t.after(t.ctx, resp, err)
}
