package store

import (
	"context"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// op is one operation of a commit's transaction: a put, a delete or a
// (prefix) read. Commits describe their operations this way so that the
// transaction can go either through clientv3's builder or, on an
// embedded member, straight to etcd's KV service (txn).
type op struct {
	kind opKind
	key  string
	// value is a put's value. It is handed to etcd as it is, not copied:
	// nothing may change it after the op is made.
	value  []byte
	prefix bool // get: every key under key
}

type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opGet
)

func putOp(key string, value []byte) op { return op{kind: opPut, key: key, value: value} }
func deleteOp(key string) op            { return op{kind: opDelete, key: key} }

func (o op) client() clientv3.Op {
	switch o.kind {
	case opPut:
		return clientv3.OpPut(o.key, string(o.value))
	case opDelete:
		return clientv3.OpDelete(o.key)
	}
	if o.prefix {
		return clientv3.OpGet(o.key, clientv3.WithPrefix())
	}
	return clientv3.OpGet(o.key)
}

func (o op) request() *pb.RequestOp {
	switch o.kind {
	case opPut:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(o.key), Value: o.value}}}
	case opDelete:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(o.key)}}}
	}
	r := &pb.RangeRequest{Key: []byte(o.key)}
	if o.prefix {
		r.RangeEnd = []byte(clientv3.GetPrefixRangeEnd(o.key))
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

// WithKV has s send its commits' transactions to kv, etcd's KV service
// itself (an embedded member's: embedded.Member.KV), instead of through
// clientv3's transaction builder, which copies every compare with
// reflection-based proto.Clone: 3.6 % of lucid serve's CPU on a
// stop/start load (internal/throughput/RATIONALE.md). The requests and
// answers are the same; only the copying is gone. It returns s.
func (s *Store) WithKV(kv pb.KVClient) *Store {
	s.kv = kv
	s.group = &grouper{kv: kv}
	return s
}

// groupTxn runs one guarded transaction with no else branch, as txn
// does, but through the grouper, which may send it in one request with
// others (group.go). Its compares and operations must be on single keys.
func (s *Store) groupTxn(ctx context.Context, cmps []clientv3.Cmp, then []op) (*clientv3.TxnResponse, error) {
	if s.group == nil {
		return s.txn(ctx, cmps, then, nil)
	}
	req := txnRequest(cmps, then, nil)
	// The keys it touches: its writes' (a commit writes the keys it
	// compares, so those are rarely new, and need no string made).
	keys := make([]string, 0, len(cmps)+len(then))
	size := 0
	for _, o := range then {
		keys = append(keys, o.key)
		size += len(o.key) + len(o.value)
	}
	for _, c := range req.Compare {
		if !slices.ContainsFunc(then, func(o op) bool { return o.key == string(c.Key) }) {
			keys = append(keys, string(c.Key))
		}
		size += len(c.Key)
	}
	resp, err := s.group.txn(ctx, req, keys, size)
	if err != nil {
		return nil, clientv3.ContextError(ctx, err)
	}
	return (*clientv3.TxnResponse)(resp), nil
}

// txn runs one guarded transaction: then if every compare holds, else
// els. Answers and errors are as clientv3 gives them.
func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, then, els []op) (*clientv3.TxnResponse, error) {
	if s.kv == nil {
		return s.cli.Txn(ctx).If(cmps...).Then(clientOps(then)...).Else(clientOps(els)...).Commit()
	}
	resp, err := s.kv.Txn(ctx, txnRequest(cmps, then, els))
	if err != nil {
		return nil, clientv3.ContextError(ctx, err)
	}
	return (*clientv3.TxnResponse)(resp), nil
}

// txnRequest is the request of a transaction: then if every compare
// holds, else els.
func txnRequest(cmps []clientv3.Cmp, then, els []op) *pb.TxnRequest {
	req := &pb.TxnRequest{Compare: make([]*pb.Compare, len(cmps)), Success: requestOps(then), Failure: requestOps(els)}
	for i := range cmps {
		req.Compare[i] = cmps[i].GetCompare()
	}
	return req
}

func clientOps(ops []op) []clientv3.Op {
	out := make([]clientv3.Op, len(ops))
	for i, o := range ops {
		out[i] = o.client()
	}
	return out
}

func requestOps(ops []op) []*pb.RequestOp {
	out := make([]*pb.RequestOp, len(ops))
	for i, o := range ops {
		out[i] = o.request()
	}
	return out
}
