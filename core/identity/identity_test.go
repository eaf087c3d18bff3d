package identity_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lucid-project/lucid/core/identity"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// newStore is a Store on a fresh embedded etcd member.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	m := testenv.Etcd(t)
	return store.New(m.Client(), "/lucid")
}

func alice(t testing.TB) identity.User {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return identity.User{Name: "alice", PasswordHash: h, Roles: map[string]identity.Role{"p1": identity.Member, "p2": identity.Reader}}
}

// clock is a settable clock for the expiry checks.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func newClock(t time.Time) *clock    { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func start(t testing.TB, cfg identity.Config) *identity.Service {
	t.Helper()
	s, err := identity.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Two services on one store stand for two nodes: a token issued on one is
// valid on the other at once (read from etcd on a miss), a revocation on
// one is seen by the other through its watch, and a service started later
// (a restarted node) loads the tokens that live.
func TestTokensAcrossNodes(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	cfg := identity.Config{Store: st, Users: []identity.User{alice(t)}, Projects: []string{"p1", "p2"}}
	a, b := start(t, cfg), start(t, cfg)

	tok, p, err := a.Password(ctx, "alice", "pw", "p1")
	if err != nil || p.User != "alice" || p.Project != "p1" || p.Role != identity.Member || len(tok) != 43 {
		t.Fatalf("password: %q %+v %v", tok, p, err)
	}
	if p, err := b.Validate(ctx, tok); err != nil || p.Project != "p1" || p.Role != identity.Member {
		t.Fatalf("the other node validates at once: %+v %v", p, err)
	}
	reader, _, err := a.Password(ctx, "alice", "pw", "p2")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b.Validate(ctx, reader); err != nil || p.MayWrite() {
		t.Fatalf("a reader's token: %+v %v", p, err)
	}
	if err := a.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(ctx, tok); !errors.Is(err, identity.ErrUnauthorized) {
		t.Fatalf("revoked on this node: %v", err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err := b.Validate(ctx, tok)
		return errors.Is(err, identity.ErrUnauthorized)
	}, "the other node still accepts a revoked token")
	if err := b.Revoke(ctx, tok); !errors.Is(err, identity.ErrUnauthorized) {
		t.Fatalf("revoking twice: %v", err)
	}
	c := start(t, cfg)
	if _, err := c.Validate(ctx, reader); err != nil {
		t.Fatalf("a node started later: %v", err)
	}
	if _, err := c.Validate(ctx, tok); !errors.Is(err, identity.ErrUnauthorized) {
		t.Fatalf("a node started later accepts the revoked token: %v", err)
	}
}

// Refusals are all ErrUnauthorized, with one message for a wrong user,
// password or project, so a caller learns nothing of which was wrong.
func TestPasswordRefusals(t *testing.T) {
	s := start(t, identity.Config{Store: newStore(t), Users: []identity.User{alice(t)}, Projects: []string{"p1", "p2", "p3"}})
	ctx := context.Background()
	for _, c := range []struct{ user, password, project string }{
		{"alice", "wrong", "p1"}, {"bob", "pw", "p1"}, {"alice", "pw", "p3"}, {"alice", "pw", "nope"},
	} {
		_, _, err := s.Password(ctx, c.user, c.password, c.project)
		if !errors.Is(err, identity.ErrUnauthorized) || err.Error() != "unauthorized: the user name, password or project is wrong" {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, _, err := s.Password(ctx, "alice", "pw", ""); !errors.Is(err, identity.ErrUnauthorized) {
		t.Errorf("no scope for a user of two projects: %v", err)
	}
	for _, tok := range []string{"", "garbage"} {
		if _, err := s.Validate(ctx, tok); !errors.Is(err, identity.ErrUnauthorized) {
			t.Errorf("validate %q: %v", tok, err)
		}
	}
}

// A token is refused from its expiry on (the clock's), and its key goes
// with its lease.
func TestTokenExpiry(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	clk := newClock(time.Now())
	s := start(t, identity.Config{Store: st, Users: []identity.User{alice(t)}, Projects: []string{"p1", "p2"}, TokenTTL: time.Second, Now: clk.now})
	tok, p, err := s.Password(ctx, "alice", "pw", "p1")
	if err != nil || p.Expires.Sub(p.Issued) != time.Second {
		t.Fatalf("password: %+v %v", p, err)
	}
	clk.add(999 * time.Millisecond)
	if _, err := s.Validate(ctx, tok); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	clk.add(time.Millisecond)
	if _, err := s.Validate(ctx, tok); !errors.Is(err, identity.ErrUnauthorized) {
		t.Fatalf("at expiry: %v", err)
	}
	// The token method keeps the expiry of the token it started from.
	clk.add(-500 * time.Millisecond)
	again, p2, err := s.Rescope(ctx, tok, "p2")
	if err != nil || !p2.Expires.Equal(p.Expires) || p2.Project != "p2" || p2.Role != identity.Reader {
		t.Fatalf("rescope: %+v %v", p2, err)
	}
	_ = again
	testenv.Eventually(t, 10*time.Second, func() bool {
		toks, _, err := st.Tokens(ctx)
		return err == nil && len(toks) == 0
	}, "the expired tokens' keys outlived their leases")
}

// Bootstrap creates the admin once, and only after its credentials are
// written; a config that declares an admin gets none.
func TestBootstrap(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	s := start(t, identity.Config{Store: st})
	path := filepath.Join(t.TempDir(), "data", "clouds.yaml")
	save := func(pw string) (func() error, func(), error) {
		return identity.PrepareCloudsYAML(path, identity.PasswordCloud("http://h/identity/v3", identity.AdminUser, pw, identity.AdminProject))
	}
	created, err := s.Bootstrap(ctx, save)
	if err != nil || !created {
		t.Fatalf("first bootstrap: %v %v", created, err)
	}
	c, err := identity.ReadCloud(path, identity.CloudName)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("clouds.yaml mode %v", fi.Mode())
	}
	if _, p, err := s.Password(ctx, "admin", c.Auth.Password, "admin"); err != nil || !p.Admin() {
		t.Fatalf("the admin logs in with clouds.yaml: %+v %v", p, err)
	}
	if created, err := start(t, identity.Config{Store: st}).Bootstrap(ctx, save); err != nil || created {
		t.Fatalf("second bootstrap: %v %v", created, err)
	}
	if c2, _ := identity.ReadCloud(path, identity.CloudName); c2.Auth.Password != c.Auth.Password {
		t.Fatal("the second bootstrap rewrote the password")
	}
	// A failing save stores nothing.
	st2 := newStore(t)
	boom := errors.New("disk full")
	if _, err := start(t, identity.Config{Store: st2}).Bootstrap(ctx, func(string) (func() error, func(), error) { return nil, nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("bootstrap with a failing save: %v", err)
	}
	if _, found, _ := st2.User(ctx, "admin"); found {
		t.Fatal("the admin was stored though its password could not be saved")
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	declared := start(t, identity.Config{Store: st2, Users: []identity.User{{Name: "admin", PasswordHash: h, Roles: map[string]identity.Role{"admin": identity.Admin}}}})
	if created, err := declared.Bootstrap(ctx, save); err != nil || created {
		t.Fatalf("bootstrap with a declared admin: %v %v", created, err)
	}
}

// BenchmarkValidate is a cached token's validation (a hash and a map
// lookup) beside the etcd read a cache miss costs, in the same run.
func BenchmarkValidate(b *testing.B) {
	st := newStore(b)
	ctx := context.Background()
	s := start(b, identity.Config{Store: st, Users: []identity.User{alice(b)}, Projects: []string{"p1", "p2"}})
	tok, _, err := s.Password(ctx, "alice", "pw", "p1")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	per := float64(b.Elapsed()) / float64(b.N)
	t0 := time.Now()
	const reads = 200
	for range reads {
		if _, _, _, err := st.Token(ctx, "0000"); err != nil {
			b.Fatal(err)
		}
	}
	get := float64(time.Since(t0)) / reads
	b.ReportMetric(get/1e3, "etcd_get_us")
	b.ReportMetric(per/get, "x_etcd_get")
}
