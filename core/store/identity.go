package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Token is an issued token as stored: who it speaks for, in which project,
// and until when. The token itself is never stored, only its sha256 (the
// key), so a copy of etcd cannot be replayed as credentials.
type Token struct {
	User    string    `json:"user"`
	Project string    `json:"project"`
	Methods []string  `json:"methods"`
	Issued  time.Time `json:"issued_at"`
	Expires time.Time `json:"expires_at"`
}

// StoredUser is a user Lucid created itself (the admin of the first
// start), as opposed to those declared in the config.
type StoredUser struct {
	Name         string            `json:"name"`
	PasswordHash string            `json:"password_hash"` // bcrypt
	Roles        map[string]string `json:"roles"`         // project -> role
	Created      time.Time         `json:"created_at"`
}

func (s *Store) tokenPrefix() string         { return s.key("identity", "tokens") + "/" }
func (s *Store) tokenKey(hash string) string { return s.tokenPrefix() + hash }
func (s *Store) userKey(name string) string  { return s.key("identity", "users", name) }

// PutToken stores a token under its hash, bound to a lease that expires
// with it, so an expired token's key vanishes by itself on every node.
// The lease TTL is whole seconds, rounded up.
func (s *Store) PutToken(ctx context.Context, hash string, tok Token) error {
	ttl := time.Until(tok.Expires)
	if ttl <= 0 {
		return fmt.Errorf("store: token expires at %s, in the past", tok.Expires)
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	lease, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return fmt.Errorf("store: lease for token: %w", err)
	}
	b, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.tokenKey(hash), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("store: put token: %w", err)
	}
	return nil
}

// Token reads the token stored under hash. found is false when there is
// none (never issued, expired or revoked). rev is the revision the read
// saw, for callers that keep a watched cache.
func (s *Store) Token(ctx context.Context, hash string) (tok Token, found bool, rev int64, err error) {
	resp, err := s.cli.Get(ctx, s.tokenKey(hash))
	if err != nil {
		return Token{}, false, 0, fmt.Errorf("store: get token: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Token{}, false, resp.Header.Revision, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &tok); err != nil {
		return Token{}, false, 0, fmt.Errorf("store: decode token: %w", err)
	}
	return tok, true, resp.Header.Revision, nil
}

// DeleteToken revokes the token stored under hash; found is false when
// there was none. Every node's watch sees the deletion.
func (s *Store) DeleteToken(ctx context.Context, hash string) (found bool, err error) {
	resp, err := s.cli.Delete(ctx, s.tokenKey(hash))
	if err != nil {
		return false, fmt.Errorf("store: revoke token: %w", err)
	}
	return resp.Deleted > 0, nil
}

// Tokens lists every live token by hash and the revision of the read, so
// that WatchTokens can continue from there without a gap. A value that
// does not decode is skipped: it can authenticate nobody.
func (s *Store) Tokens(ctx context.Context) (map[string]Token, int64, error) {
	resp, err := s.cli.Get(ctx, s.tokenPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("store: list tokens: %w", err)
	}
	out := make(map[string]Token, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var tok Token
		if json.Unmarshal(kv.Value, &tok) == nil {
			out[strings.TrimPrefix(string(kv.Key), s.tokenPrefix())] = tok
		}
	}
	return out, resp.Header.Revision, nil
}

// TokenEvent is a token stored (Token set) or gone (nil: revoked or
// expired) at Revision.
type TokenEvent struct {
	Hash     string
	Token    *Token
	Revision int64
}

// WatchTokens calls fn for every token stored or removed after revision
// after, in order, until ctx ends (ctx.Err()) or the watch breaks. A
// compacted revision is ErrCompacted: list again and resume from there.
// fn runs on the watching goroutine.
func (s *Store) WatchTokens(ctx context.Context, after int64, fn func(TokenEvent)) error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	prefix := s.tokenPrefix()
	for resp := range s.cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(after+1)) {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return fmt.Errorf("%w: at %d (compacted through %d)", ErrCompacted, after, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("store: watch tokens: %w", err)
		}
		for _, ev := range resp.Events {
			te := TokenEvent{Hash: strings.TrimPrefix(string(ev.Kv.Key), prefix), Revision: ev.Kv.ModRevision}
			if ev.Type == mvccpb.PUT {
				var tok Token
				if json.Unmarshal(ev.Kv.Value, &tok) != nil {
					continue
				}
				te.Token = &tok
			}
			fn(te)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("store: token watch closed")
}

// CreateUser stores u unless a user of that name is already stored;
// created says whether this call stored it. Two nodes starting at once
// create one admin, not two.
func (s *Store) CreateUser(ctx context.Context, u StoredUser) (created bool, err error) {
	b, err := json.Marshal(u)
	if err != nil {
		return false, err
	}
	k := s.userKey(u.Name)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(b))).Commit()
	if err != nil {
		return false, fmt.Errorf("store: create user %s: %w", u.Name, err)
	}
	return resp.Succeeded, nil
}

// User reads a stored user; found is false when there is none.
func (s *Store) User(ctx context.Context, name string) (u StoredUser, found bool, err error) {
	resp, err := s.cli.Get(ctx, s.userKey(name))
	if err != nil {
		return StoredUser{}, false, fmt.Errorf("store: user %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return StoredUser{}, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &u); err != nil {
		return StoredUser{}, false, fmt.Errorf("store: decode user %s: %w", name, err)
	}
	return u, true, nil
}
