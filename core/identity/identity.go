// Package identity is who may do what in Lucid: users, projects, roles
// and tokens, the part of Keystone that OpenStack clients need.
//
// Users and their roles are declared in the operator's config (with a
// bcrypt hash or a secret file, never a plaintext password); the first
// start also creates an admin in etcd with a generated password
// (Bootstrap). A password or a token buys a project-scoped token: 32
// random bytes, given to the client once and stored only as its sha256,
// under an etcd lease that expires with it, so a token is valid on every
// node, survives restarts and vanishes by itself. Revoking deletes the key.
//
// Validation happens on every request, so it costs a map lookup: each
// Service keeps every live token in memory, kept right by an etcd watch on
// the token keys (a revocation on one node reaches the others as fast as
// etcd tells them). A token the watch has not delivered yet (issued on
// another node a moment ago) is read from etcd once.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lucid-project/lucid/core/store"
)

// Errors, translated to HTTP by core/api: ErrUnauthorized is 401 (who are
// you?), ErrForbidden 403 (you may not).
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
)

// Role is what a user may do in a project.
type Role string

// The roles, weakest first.
const (
	// Reader reads its project's instances and acts on none.
	Reader Role = "reader"
	// Member reads and acts on its project's instances.
	Member Role = "member"
	// Admin acts on every project's instances (listing all of them with
	// all_tenants), reads the native /v1 API and /metrics.
	Admin Role = "admin"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r == Reader || r == Member || r == Admin }

// AdminProject and AdminUser are the project and user Bootstrap creates.
const (
	AdminProject = "admin"
	AdminUser    = "admin"
)

// DefaultTokenTTL is how long a token is valid when the config says
// nothing: as Keystone's default.
const DefaultTokenTTL = time.Hour

// User is a user declared in the config.
type User struct {
	Name         string
	PasswordHash []byte          // bcrypt
	Roles        map[string]Role // project -> role
}

// Principal is who a request speaks for: the user, the project its token
// is scoped to and its role there.
type Principal struct {
	User    string
	Project string
	Role    Role
	Methods []string
	Issued  time.Time
	Expires time.Time
}

// Admin reports whether p may act on every project.
func (p Principal) Admin() bool { return p.Role == Admin }

// MayWrite reports whether p may change instances (a reader may not).
func (p Principal) MayWrite() bool { return p.Role == Admin || p.Role == Member }

// Config configures a Service.
type Config struct {
	Store *store.Store
	// Users are the config's users; Projects the projects declared there
	// (AdminProject always exists).
	Users    []User
	Projects []string
	// TokenTTL is how long issued tokens are valid; zero means
	// DefaultTokenTTL.
	TokenTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service issues and validates tokens. Start it with New; Close stops its
// watch. It is safe for concurrent use.
type Service struct {
	store    *store.Store
	users    map[string]User
	projects []string
	ttl      time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu       sync.RWMutex
	tokens   map[string]store.Token // by sha256 hex
	watchRev int64                  // the last revision the cache reflects
	stored   map[string]User        // users read from etcd (Bootstrap's admin)

	cancel context.CancelFunc
	done   chan struct{}
}

// New loads every live token and starts watching for more. Close stops
// the watch.
func New(ctx context.Context, cfg Config) (*Service, error) {
	s := &Service{store: cfg.Store, users: map[string]User{}, ttl: cfg.TokenTTL, now: cfg.Now, logger: cfg.Logger,
		stored: map[string]User{}, done: make(chan struct{})}
	if s.ttl <= 0 {
		s.ttl = DefaultTokenTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	for _, u := range cfg.Users {
		s.users[u.Name] = u
	}
	s.projects = append([]string{AdminProject}, cfg.Projects...)
	slices.Sort(s.projects)
	s.projects = slices.Compact(s.projects)
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.watch(wctx)
	return s, nil
}

// Close stops the watch and waits for it.
func (s *Service) Close() {
	s.cancel()
	<-s.done
}

// Projects lists the projects: the config's and the admin project.
func (s *Service) Projects() []string { return slices.Clone(s.projects) }

// KnownProject reports whether p is a project of this cloud.
func (s *Service) KnownProject(p string) bool { return slices.Contains(s.projects, p) }

// load replaces the cache with what etcd holds now.
func (s *Service) load(ctx context.Context) error {
	toks, rev, err := s.store.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("identity: load tokens: %w", err)
	}
	s.mu.Lock()
	s.tokens, s.watchRev = toks, rev
	s.mu.Unlock()
	return nil
}

// watch keeps the cache in step with etcd until ctx ends; when the watch
// breaks (compaction, a lost leader) it loads everything again and
// resumes from there.
func (s *Service) watch(ctx context.Context) {
	defer close(s.done)
	for {
		s.mu.RLock()
		rev := s.watchRev
		s.mu.RUnlock()
		err := s.store.WatchTokens(ctx, rev, s.apply)
		if ctx.Err() != nil {
			return
		}
		s.logger.Warn("identity: token watch broke; reloading tokens", "err", err)
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.load(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("identity: reload tokens", "err", err)
		}
	}
}

func (s *Service) apply(ev store.TokenEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Token == nil {
		delete(s.tokens, ev.Hash)
	} else {
		s.tokens[ev.Hash] = *ev.Token
	}
	s.watchRev = max(s.watchRev, ev.Revision)
}

// hash is the key a token is stored under.
func hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newToken is 32 random bytes, URL-safe.
func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// dummyHash is compared against when the user is unknown, so that an
// unknown user takes as long to refuse as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("lucid: no such user"), bcrypt.DefaultCost)

// Password checks user's password and issues a token scoped to project
// ("" means the user's only project). A wrong user, password or a project
// where the user has no role is ErrUnauthorized, with one message for all
// (which of them was wrong is not told to the caller).
func (s *Service) Password(ctx context.Context, user, password, project string) (string, Principal, error) {
	u, ok, err := s.user(ctx, user)
	if err != nil {
		return "", Principal{}, err
	}
	h := dummyHash
	if ok {
		h = u.PasswordHash
	}
	if bcrypt.CompareHashAndPassword(h, []byte(password)) != nil || !ok {
		return "", Principal{}, fmt.Errorf("%w: the user name, password or project is wrong", ErrUnauthorized)
	}
	now := s.now().UTC()
	return s.issue(ctx, u, project, store.Token{Methods: []string{"password"}, Issued: now, Expires: now.Add(s.ttl)})
}

// Rescope issues a new token for the holder of token, scoped to project
// ("" means the same project), expiring when token does, as Keystone's
// token method does.
func (s *Service) Rescope(ctx context.Context, token, project string) (string, Principal, error) {
	p, err := s.Validate(ctx, token)
	if err != nil {
		return "", Principal{}, err
	}
	u, ok, err := s.user(ctx, p.User)
	if err != nil {
		return "", Principal{}, err
	}
	if !ok {
		return "", Principal{}, fmt.Errorf("%w: user %s no longer exists", ErrUnauthorized, p.User)
	}
	if project == "" {
		project = p.Project
	}
	return s.issue(ctx, u, project, store.Token{Methods: []string{"token"}, Issued: s.now().UTC(), Expires: p.Expires})
}

func (s *Service) issue(ctx context.Context, u User, project string, tok store.Token) (string, Principal, error) {
	if project == "" {
		if len(u.Roles) != 1 {
			return "", Principal{}, fmt.Errorf("%w: user %s has roles in %d projects; name one as the scope", ErrUnauthorized, u.Name, len(u.Roles))
		}
		for p := range u.Roles {
			project = p
		}
	}
	role, ok := u.Roles[project]
	if !ok {
		return "", Principal{}, fmt.Errorf("%w: the user name, password or project is wrong", ErrUnauthorized)
	}
	tok.User, tok.Project = u.Name, project
	token := newToken()
	if err := s.store.PutToken(ctx, hash(token), tok); err != nil {
		return "", Principal{}, fmt.Errorf("identity: issue token: %w", err)
	}
	return token, principal(tok, role), nil
}

func principal(tok store.Token, role Role) Principal {
	return Principal{User: tok.User, Project: tok.Project, Role: role, Methods: tok.Methods, Issued: tok.Issued, Expires: tok.Expires}
}

// Validate says who token speaks for. A token that was never issued, has
// expired or was revoked, or whose user no longer has a role in its
// project, is ErrUnauthorized.
func (s *Service) Validate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, fmt.Errorf("%w: the request carries no token (X-Auth-Token)", ErrUnauthorized)
	}
	h := hash(token)
	s.mu.RLock()
	tok, ok := s.tokens[h]
	s.mu.RUnlock()
	if !ok {
		var err error
		if tok, ok, err = s.miss(ctx, h); err != nil {
			return Principal{}, err
		}
	}
	if !ok {
		return Principal{}, fmt.Errorf("%w: the token is unknown, expired or revoked", ErrUnauthorized)
	}
	if !s.now().Before(tok.Expires) {
		return Principal{}, fmt.Errorf("%w: the token expired at %s", ErrUnauthorized, tok.Expires.UTC().Format(time.RFC3339))
	}
	role, err := s.role(ctx, tok.User, tok.Project)
	if err != nil {
		return Principal{}, err
	}
	return principal(tok, role), nil
}

// miss reads a token the cache does not hold from etcd: it may have been
// issued on another node a moment ago, before the watch delivered it. It
// is cached only if the watch has not yet passed the read's revision (so
// the watch will deliver a later revocation).
func (s *Service) miss(ctx context.Context, h string) (store.Token, bool, error) {
	tok, found, rev, err := s.store.Token(ctx, h)
	if err != nil {
		return store.Token{}, false, fmt.Errorf("identity: validate token: %w", err)
	}
	if found {
		s.mu.Lock()
		if s.watchRev < rev {
			s.tokens[h] = tok
		}
		s.mu.Unlock()
	}
	return tok, found, nil
}

// role is user's role in project now: the config and the stored users
// decide at every validation, so a role taken away in the config ends the
// user's tokens at the next start.
func (s *Service) role(ctx context.Context, user, project string) (Role, error) {
	u, ok, err := s.user(ctx, user)
	if err != nil {
		return "", err
	}
	role, has := u.Roles[project]
	if !ok || !has {
		return "", fmt.Errorf("%w: user %s has no role in project %s", ErrUnauthorized, user, project)
	}
	return role, nil
}

// user finds a user in the config, else among the stored users (read from
// etcd once, then remembered: a stored user is only ever created).
func (s *Service) user(ctx context.Context, name string) (User, bool, error) {
	if u, ok := s.users[name]; ok {
		return u, true, nil
	}
	s.mu.RLock()
	u, ok := s.stored[name]
	s.mu.RUnlock()
	if ok {
		return u, true, nil
	}
	su, found, err := s.store.User(ctx, name)
	if err != nil || !found {
		return User{}, false, err
	}
	u = User{Name: su.Name, PasswordHash: []byte(su.PasswordHash), Roles: map[string]Role{}}
	for p, r := range su.Roles {
		u.Roles[p] = Role(r)
	}
	s.mu.Lock()
	s.stored[name] = u
	s.mu.Unlock()
	return u, true, nil
}

// Revoke ends token at once on every node: its key is deleted, and every
// node's watch drops it. A token that was not stored (never issued,
// expired, revoked) is ErrUnauthorized.
func (s *Service) Revoke(ctx context.Context, token string) error {
	h := hash(token)
	found, err := s.store.DeleteToken(ctx, h)
	if err != nil {
		return fmt.Errorf("identity: revoke: %w", err)
	}
	s.mu.Lock()
	delete(s.tokens, h)
	s.mu.Unlock()
	if !found {
		return fmt.Errorf("%w: the token is unknown, expired or revoked", ErrUnauthorized)
	}
	return nil
}

// Bootstrap creates the admin user (role admin in project admin) with a
// generated password, unless the config declares a user called admin or
// the admin was created before. It returns the password only when this
// call created the user; the caller must hand it to the operator (node
// writes clouds.yaml) before anything else, as it is stored only hashed.
// save is called with the password before the user is stored, so that a
// password nobody could read is never stored: if save fails nothing is
// created.
func (s *Service) Bootstrap(ctx context.Context, save func(password string) (commit func() error, abort func(), err error)) (created bool, err error) {
	if _, ok := s.users[AdminUser]; ok {
		return false, nil
	}
	if _, found, err := s.store.User(ctx, AdminUser); err != nil || found {
		return false, err
	}
	password := newPassword()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return false, err
	}
	commit, abort, err := save(password)
	if err != nil {
		return false, err
	}
	created, err = s.store.CreateUser(ctx, store.StoredUser{Name: AdminUser, PasswordHash: string(h),
		Roles: map[string]string{AdminProject: string(Admin)}, Created: s.now().UTC()})
	if err != nil || !created {
		abort()
		return false, err
	}
	return true, commit()
}

// newPassword is 24 characters from an alphabet without look-alikes: 139
// bits.
func newPassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	for i := range b {
		b[i] = alphabet[randIntn(len(alphabet))]
	}
	return string(b)
}

// randIntn is a uniform random number in [0, n) from crypto/rand.
func randIntn(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		_, _ = rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// ProjectsOf lists the projects user has a role in, sorted.
func (s *Service) ProjectsOf(ctx context.Context, user string) ([]string, error) {
	u, ok, err := s.user(ctx, user)
	if err != nil || !ok {
		return nil, err
	}
	out := make([]string, 0, len(u.Roles))
	for p := range u.Roles {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
