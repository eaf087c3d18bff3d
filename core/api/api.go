// Package api serves Lucid over HTTP: a faithful subset of the OpenStack
// compute API at microversion 2.1 under /v2.1 (servers, server actions,
// instance actions, flavors and Nova's image proxy), a read-only Glance v2
// subset under /image, so that existing clients work unmodified, and a
// native /v1 for what OpenStack has no words for (the transition in
// flight with its steps, flags, the full fault, history that outlives the
// instance).
//
// /v2.1 bodies carry only Nova's keys, so they validate against tempest's
// response schemas; Lucid's own views live in /v1. Handlers only validate
// and hand requests to the lifecycle Service; they never call a driver.
// Errors are translated to HTTP in exactly one place (writeError), in
// Nova's error body shape. See RATIONALE.md beside this file for the
// choices that are not obvious.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/metrics"
	"github.com/lucid-project/lucid/core/store"
)

// maxBody bounds request bodies; compute requests are small. A larger
// body is 413.
const maxBody = 1 << 20

// DefaultMaxLimit is the most items one page of a list holds, as Nova's
// [api] max_limit.
const DefaultMaxLimit = 1000

// Lifecycle is what the API needs from core/lifecycle.
type Lifecycle interface {
	Create(ctx context.Context, req lifecycle.CreateRequest) (store.Record, error)
	Begin(ctx context.Context, id string, action instance.Action, req lifecycle.ActionRequest) (store.Record, error)
	Get(ctx context.Context, id string) (store.Record, error)
	List(ctx context.Context) ([]store.Record, error)
	History(ctx context.Context, id string) ([]instance.HistoryRecord, error)
	Usage(ctx context.Context, project string) (store.Usage, error)
	Catalog() *lifecycle.Catalog
	Flagged(ctx context.Context) ([]store.Record, []store.Unmanaged, error)
	Unflag(ctx context.Context, id string) (store.Record, error)
}

var _ Lifecycle = (*lifecycle.Service)(nil)

// Feed is what the API needs from core/feed: waiting, without polling,
// until an instance has no transition in flight (GET
// /v1/instances/{id}?wait=settled). Settled returns the settled record,
// instance.ErrNotFound once the instance is gone, or, when it stops
// waiting first (ctx ends, the feed stops), the newest record it knows
// with an error; a zero record with an error means it knows none.
type Feed interface {
	Settled(ctx context.Context, id string) (store.Record, error)
	// SettledSince is Settled right after the caller's own write, wrote
	// (it spares a read while the node has not seen that write yet).
	SettledSince(ctx context.Context, id string, wrote store.Record) (store.Record, error)
}

// Options configure the API. The zero value is usable.
type Options struct {
	// Logger receives one access-log line per request (info) and internal
	// errors; nil discards.
	Logger *slog.Logger
	// Auth checks every request's token (see auth.go); nil disables
	// authentication, and every request then acts as an admin of Project.
	Auth Authenticator
	// Quotas are the projects' limits, shown by os-quota-sets; nil shows
	// every limit as unlimited (-1).
	Quotas Quotas
	// Metrics counts requests by route and code; MetricsHandler serves
	// /metrics (nil: no such route).
	Metrics        *metrics.Set
	MetricsHandler http.Handler
	// MetricsPublic lets /metrics be read without a token.
	MetricsPublic bool
	// Project and User are who a request acts as while auth is disabled:
	// the owner (tenant_id, user_id) of new instances; "" means "lucid".
	Project string
	User    string
	// MaxLimit bounds one page of a list; 0 means DefaultMaxLimit.
	MaxLimit int
	// CatalogTime is shown as the created and updated time of catalog
	// entries (flavors and images have none of their own); the zero value
	// means the time New was called, i.e. when the node loaded its config.
	CatalogTime time.Time
	// RateLimit bounds each client's changing requests (429 beyond it);
	// the zero value is off. See RateLimit.
	RateLimit RateLimit
	// Feed answers long-polls (?wait=settled on GET /v1/instances/{id});
	// nil refuses them with 400.
	Feed Feed
}

// Server is the HTTP handler.
type Server struct {
	lc            Lifecycle
	auth          Authenticator
	quotas        Quotas
	metricsPublic bool
	metrics       *metrics.Set
	logger        *slog.Logger
	mux           *http.ServeMux
	project       string
	user          string
	maxLimit      int
	catalogTime   time.Time
	limiter       *limiter // nil: no rate limit
	feed          Feed     // nil: no long-polls
	bodies        serverBodies
}

// New returns the API handler.
func New(lc Lifecycle, opts Options) *Server {
	s := &Server{lc: lc, auth: opts.Auth, quotas: opts.Quotas, metricsPublic: opts.MetricsPublic, metrics: opts.Metrics, logger: opts.Logger, mux: http.NewServeMux(), project: opts.Project, user: opts.User,
		maxLimit: opts.MaxLimit, catalogTime: opts.CatalogTime, limiter: newLimiter(opts.RateLimit), feed: opts.Feed}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.project == "" {
		s.project = "lucid"
	}
	if s.user == "" {
		s.user = "lucid"
	}
	if s.maxLimit <= 0 {
		s.maxLimit = DefaultMaxLimit
	}
	if s.catalogTime.IsZero() {
		s.catalogTime = time.Now()
	}
	s.catalogTime = s.catalogTime.UTC().Truncate(time.Second)
	for _, rt := range s.routes() {
		s.mux.HandleFunc(rt.pattern, rt.handler)
	}
	if opts.MetricsHandler != nil {
		s.mux.Handle("GET /metrics", opts.MetricsHandler)
	}
	s.mux.HandleFunc("/", s.noRoute)
	return s
}

type route struct {
	pattern string
	handler http.HandlerFunc
}

// routes is every endpoint. A GET route also answers HEAD.
func (s *Server) routes() []route {
	return []route{
		{"GET /{$}", s.versions},
		{"GET /v2.1", s.version},
		{"GET /v2.1/{$}", s.version},
		{"POST /v2.1/servers", s.createServer},
		{"GET /v2.1/servers", s.listServers(false)},
		{"GET /v2.1/servers/detail", s.listServers(true)},
		{"GET /v2.1/servers/{id}", s.showServer},
		{"DELETE /v2.1/servers/{id}", s.deleteServer},
		{"POST /v2.1/servers/{id}/action", s.serverAction},
		{"GET /v2.1/servers/{id}/os-instance-actions", s.listInstanceActions},
		{"GET /v2.1/servers/{id}/os-instance-actions/{request}", s.showInstanceAction},
		{"GET /v2.1/flavors", s.listFlavors(false)},
		{"GET /v2.1/flavors/detail", s.listFlavors(true)},
		{"GET /v2.1/flavors/{id}", s.showFlavor},
		{"GET /v2.1/flavors/{id}/os-extra_specs", s.flavorExtraSpecs},
		{"GET /v2.1/images", s.listImages(false)},
		{"GET /v2.1/images/detail", s.listImages(true)},
		{"GET /v2.1/images/{id}", s.showImage},
		{"GET /image", s.glanceVersions},
		{"GET /image/{$}", s.glanceVersions},
		{"GET /image/v2/images", s.glanceListImages},
		{"GET /image/v2/images/{id}", s.glanceShowImage},
		{"GET /v2.1/os-quota-sets/{project}", s.showQuota(false)},
		{"GET /v2.1/os-quota-sets/{project}/detail", s.showQuota(true)},
		{"GET /identity", s.identityVersions},
		{"GET /identity/{$}", s.identityVersions},
		{"GET /identity/v3", s.identityV3},
		{"GET /identity/v3/{$}", s.identityV3},
		{"POST /identity/v3/auth/tokens", s.issueToken},
		{"GET /identity/v3/auth/tokens", s.validateToken},
		{"DELETE /identity/v3/auth/tokens", s.revokeToken},
		{"GET /identity/v3/auth/catalog", s.authCatalog},
		{"GET /identity/v3/auth/projects", s.authProjects},
		{"GET /v1/instances", s.nativeList},
		{"GET /v1/instances/{id}", s.nativeShow},
		{"GET /v1/instances/{id}/history", s.history},
		{"GET /v1/flavors", s.nativeFlavors},
		{"GET /v1/images", s.nativeImages},
		{"GET /v1/flags", s.nativeFlags},
		{"POST /v1/instances/{id}/unflag", s.nativeUnflag},
	}
}

// methods are the methods the 405 check tries.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// noRoute answers what no route matched: 405 with Allow when the path
// exists with other methods, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range methods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		s.writeError(w, r, &methodError{method: r.Method, path: r.URL.Path, allow: allow})
		return
	}
	s.writeError(w, r, fmt.Errorf("%w: no route for %s %s", errNoRoute, r.Method, r.URL.Path))
}

type ctxKey struct{}

// ServeHTTP assigns the request id, negotiates the compute microversion
// for /v2.1, routes, and writes one access-log line.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := r.Header.Get("X-Openstack-Request-Id")
	if !strings.HasPrefix(rid, "req-") || len(rid) > 64 {
		rid = lifecycle.NewRequestID()
	}
	w.Header().Set("X-Openstack-Request-Id", rid)
	w.Header().Set("X-Compute-Request-Id", rid)
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, rid))
	pathProject := stripProject(r)
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	if isCompute(r.URL.Path) {
		v, err := negotiate(r.Header)
		setVersionHeaders(w.Header(), v)
		r = r.WithContext(context.WithValue(r.Context(), versionKey{}, v))
		if err != nil {
			s.writeError(sw, r, err)
			s.logAccess(r, sw.code, start, rid)
			return
		}
	}
	r, err := s.authenticate(r, pathProject)
	if err != nil {
		s.writeError(sw, r, err)
		s.logAccess(r, sw.code, start, rid)
		return
	}
	// After authentication, which names the user the limit is kept for;
	// before the handler, so a refused request costs no more than that
	// (and a held one nothing but its goroutine and connection).
	if err := s.throttle(r); err != nil {
		if r.Context().Err() == nil {
			s.writeError(sw, r, err)
		} else {
			sw.code = 499 // the client went away while its request was held
		}
		_, route := s.mux.Handler(r)
		s.logAccess(r, sw.code, start, rid)
		s.metrics.Request(route, sw.code, time.Since(start))
		return
	}
	s.mux.ServeHTTP(sw, r)
	s.logAccess(r, sw.code, start, rid)
	// The mux set the route it matched on r: no second lookup.
	s.metrics.Request(r.Pattern, sw.code, time.Since(start))
}

func (s *Server) logAccess(r *http.Request, code int, start time.Time, rid string) {
	s.logger.Info("http", "method", r.Method, "path", r.URL.Path, "status", code,
		"duration", time.Since(start).Round(time.Microsecond), "request_id", rid, "user", principal(r).User)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (a long-poll
// moves its write deadline).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}

// collections are the /v2.1 top-level resources; a path segment before
// one of them is a project id.
var collections = []string{"servers", "flavors", "images", "os-quota-sets"}

// stripProject maps project-scoped paths, as OpenStack clients often build
// them, to the plain ones: /v2.1/<project>/servers/... is
// /v2.1/servers/..., and returns the project named ("" for a plain path);
// authenticate checks it is the token's.
func stripProject(r *http.Request) string {
	parts := strings.SplitN(r.URL.Path, "/", 5) // "", "v2.1", project, collection, rest
	if len(parts) >= 4 && parts[1] == "v2.1" && !slices.Contains(collections, parts[2]) && slices.Contains(collections, parts[3]) {
		r.URL.Path = "/v2.1/" + strings.Join(parts[3:], "/")
		r.URL.RawPath = ""
		return parts[2]
	}
	return ""
}

func isCompute(path string) bool { return path == "/v2.1" || strings.HasPrefix(path, "/v2.1/") }

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	v := versionDoc(r)
	delete(v, "media-types")
	writeJSON(w, http.StatusOK, map[string]any{"versions": []any{v}})
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": versionDoc(r)})
}

// versionDoc states the microversion range Lucid serves.
func versionDoc(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v2.1", "status": "CURRENT", "version": maxVersion.String(), "min_version": minVersion.String(),
		"updated": "2013-07-23T11:33:21Z",
		"links":   []any{map[string]string{"rel": "self", "href": baseURL(r) + "/v2.1/"}},
		"media-types": []any{map[string]string{"base": "application/json",
			"type": "application/vnd.openstack.compute+json;version=2.1"}},
	}
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// decode reads a JSON body strictly enough to catch garbage and trailing
// data: over maxBody bytes is 413, a Content-Type other than JSON is 415.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%w: Content-Type must be application/json, not %q (curl: -H 'Content-Type: application/json')", errUnsupportedMedia, ct)
	}
	if r.ContentLength > maxBody {
		return fmt.Errorf("%w: the request body is %d bytes; at most %d are accepted", errTooLarge, r.ContentLength, maxBody)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	if err == nil {
		_, err = dec.Token()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case !errors.As(err, &tooBig):
			err = errors.New("data after the JSON value")
		}
	}
	switch {
	case errors.As(err, &tooBig):
		return fmt.Errorf("%w: the request body is over %d bytes", errTooLarge, maxBody)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: empty request body", instance.ErrInvalid)
	}
	return fmt.Errorf("%w: malformed request body: %v", instance.ErrInvalid, err)
}

var (
	errNoRoute           = errors.New("not found")
	errUnsupportedMedia  = errors.New("unsupported media type")
	errTooLarge          = errors.New("request entity too large")
	errMethodNotAllowed  = errors.New("method not allowed")
	errVersionNotAllowed = errors.New("version not acceptable")
)

// methodError is a method the path does not accept; writeError sends its
// Allow header.
type methodError struct {
	method, path string
	allow        []string
}

func (e *methodError) Error() string {
	return fmt.Sprintf("%s is not allowed on %s; allowed: %s", e.method, e.path, strings.Join(e.allow, ", "))
}

func (e *methodError) Is(target error) bool { return target == errMethodNotAllowed }

// writeError is the one place errors become HTTP: status code and Nova's
// {"<kind>": {"code": ..., "message": ...}} body, with Nova's kind names
// (Keystone's {"error": {"code", "message", "title"}} under /identity). A
// 401 says where to get a token (WWW-Authenticate); a 429 says when to
// come back (Retry-After, in whole seconds, and Nova's retryAfter).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, kind := http.StatusInternalServerError, "computeFault"
	var me *methodError
	var re *rateError
	switch {
	case errors.Is(err, errUnauthorized):
		code, kind = http.StatusUnauthorized, "unauthorized"
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", baseURL(r)+"/identity/v3"))
	case errors.Is(err, errForbidden), errors.Is(err, store.ErrQuota):
		code, kind = http.StatusForbidden, "forbidden"
	case errors.Is(err, instance.ErrInvalid):
		code, kind = http.StatusBadRequest, "badRequest"
	case errors.Is(err, instance.ErrNotFound), errors.Is(err, errNoRoute):
		code, kind = http.StatusNotFound, "itemNotFound"
	case errors.As(err, &me):
		code, kind = http.StatusMethodNotAllowed, "badMethod"
		w.Header().Set("Allow", strings.Join(me.allow, ", "))
	case errors.Is(err, errVersionNotAllowed):
		// Nova has no kind name for 406 and says computeFault.
		code = http.StatusNotAcceptable
	case errors.Is(err, instance.ErrConflict), errors.Is(err, store.ErrStale), errors.Is(err, instance.ErrUnsupported):
		code, kind = http.StatusConflict, "conflictingRequest"
	case errors.Is(err, instance.ErrRefused):
		code, kind = http.StatusForbidden, "forbidden"
	case errors.Is(err, errUnsupportedMedia):
		code, kind = http.StatusUnsupportedMediaType, "badMediaType"
	case errors.Is(err, errTooLarge):
		code, kind = http.StatusRequestEntityTooLarge, "overLimit"
	case errors.Is(err, errRateLimited) && errors.As(err, &re):
		code, kind = http.StatusTooManyRequests, "overLimit"
		w.Header().Set("Retry-After", strconv.Itoa(re.retryAfter))
	case errors.Is(err, store.ErrNoSpace):
		code, kind = http.StatusServiceUnavailable, "serviceUnavailable"
		s.logger.Error("api: store full; write refused", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		s.logger.Error("api: internal error", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
		msg = "The server has either erred or is incapable of performing the requested operation. Request " + requestID(r)
	}
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		msg = qe.Error() // Nova's message, without Lucid's wrapping
	}
	if strings.HasPrefix(r.URL.Path, "/identity") {
		writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg, "title": http.StatusText(code)}})
		return
	}
	body := map[string]any{"code": code, "message": msg}
	if re != nil {
		body["retryAfter"] = strconv.Itoa(re.retryAfter) // a string, as in Nova
	}
	writeJSON(w, code, map[string]any{kind: body})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// link is one entry of an OpenStack links array.
type link struct {
	Href string `json:"href"`
	Rel  string `json:"rel"`
	Type string `json:"type,omitempty"`
}

// selfAndBookmark are the links of a /v2.1 resource: self is versioned,
// bookmark is not.
func selfAndBookmark(r *http.Request, collection, id string) []link {
	p := collection + "/" + url.PathEscape(id)
	return []link{
		{Rel: "self", Href: baseURL(r) + "/v2.1/" + p},
		{Rel: "bookmark", Href: baseURL(r) + "/" + p},
	}
}

// nextLink is the link to the page after the one that ended with id: the
// request's own query with the marker set.
func nextLink(r *http.Request, id string) []link {
	q := r.URL.Query()
	q.Set("marker", id)
	return []link{{Rel: "next", Href: baseURL(r) + r.URL.Path + "?" + q.Encode()}}
}

// timestamp formats t as Nova does: UTC, whole seconds, Z.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
