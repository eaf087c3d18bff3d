// Package api serves Lucid over HTTP: a subset of the OpenStack compute
// v2.1 API, so that existing clients work, and a native /v1 for what
// OpenStack has no words for (an instance's full status history).
//
// Handlers only validate and hand requests to the lifecycle Service; they
// never call a driver. Errors are translated to HTTP in exactly one place
// (writeError), in OpenStack's error body shape.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
)

// maxBody bounds request bodies; compute requests are small.
const maxBody = 1 << 20

// Lifecycle is what the API needs from core/lifecycle.
type Lifecycle interface {
	Create(ctx context.Context, req lifecycle.CreateRequest) (store.Record, error)
	Begin(ctx context.Context, id string, action instance.Action, req lifecycle.ActionRequest) (store.Record, error)
	Get(ctx context.Context, id string) (store.Record, error)
	List(ctx context.Context) ([]store.Record, error)
	History(ctx context.Context, id string) ([]instance.HistoryRecord, error)
	Catalog() *lifecycle.Catalog
}

var _ Lifecycle = (*lifecycle.Service)(nil)

// Server is the HTTP handler.
type Server struct {
	lc     Lifecycle
	logger *slog.Logger
	mux    *http.ServeMux
}

// New returns the API handler.
func New(lc Lifecycle, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{lc: lc, logger: logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /{$}", s.versions)
	s.mux.HandleFunc("GET /v2.1", s.version)
	s.mux.HandleFunc("GET /v2.1/{$}", s.version)
	s.mux.HandleFunc("POST /v2.1/servers", s.createServer)
	s.mux.HandleFunc("GET /v2.1/servers", s.listServers(false))
	s.mux.HandleFunc("GET /v2.1/servers/detail", s.listServers(true))
	s.mux.HandleFunc("GET /v2.1/servers/{id}", s.showServer)
	s.mux.HandleFunc("DELETE /v2.1/servers/{id}", s.deleteServer)
	s.mux.HandleFunc("POST /v2.1/servers/{id}/action", s.serverAction)
	s.mux.HandleFunc("GET /v1/instances", s.nativeList)
	s.mux.HandleFunc("GET /v1/instances/{id}", s.nativeShow)
	s.mux.HandleFunc("GET /v1/instances/{id}/history", s.history)
	s.mux.HandleFunc("GET /v1/flavors", s.nativeFlavors)
	s.mux.HandleFunc("GET /v1/images", s.nativeImages)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("%w: no route for %s %s", errNoRoute, r.Method, r.URL.Path))
	})
	return s
}

var errNoRoute = errors.New("not found")

type ctxKey struct{}

// ServeHTTP assigns the request id, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := r.Header.Get("X-Openstack-Request-Id")
	if !strings.HasPrefix(rid, "req-") || len(rid) > 64 {
		rid = lifecycle.NewRequestID()
	}
	w.Header().Set("X-Openstack-Request-Id", rid)
	w.Header().Set("X-Compute-Request-Id", rid)
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, rid))
	stripProject(r)
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, code: 200}
	s.mux.ServeHTTP(sw, r)
	s.logger.Debug("http", "method", r.Method, "path", r.URL.Path, "status", sw.code, "request_id", rid, "took", time.Since(start))
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}

// stripProject maps tenant-scoped paths, as OpenStack clients often build
// them, to the plain ones: /v2.1/<project>/servers/... is
// /v2.1/servers/.... Lucid has no tenants yet.
func stripProject(r *http.Request) {
	parts := strings.SplitN(r.URL.Path, "/", 5) // "", "v2.1", project, "servers", rest
	if len(parts) >= 4 && parts[1] == "v2.1" && parts[2] != "servers" && parts[3] == "servers" {
		r.URL.Path = "/v2.1/" + strings.Join(parts[3:], "/")
		r.URL.RawPath = ""
	}
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []any{versionDoc(r)}})
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": versionDoc(r)})
}

func versionDoc(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1",
		"updated": "2013-07-23T11:33:21Z",
		"links":   []any{map[string]string{"rel": "self", "href": baseURL(r) + "/v2.1/"}},
	}
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// createBody is the OpenStack create request; flavorRef and imageRef may
// be ids or links, strings or numbers.
type createBody struct {
	Server *struct {
		Name      string          `json:"name"`
		FlavorRef json.RawMessage `json:"flavorRef"`
		ImageRef  json.RawMessage `json:"imageRef"`
	} `json:"server"`
}

func (s *Server) createServer(w http.ResponseWriter, r *http.Request) {
	var body createBody
	if err := decode(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.Server == nil {
		s.writeError(w, r, fmt.Errorf("%w: body must be {\"server\": {...}}", instance.ErrInvalid))
		return
	}
	flavor, err := ref("flavorRef", body.Server.FlavorRef)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	image, err := ref("imageRef", body.Server.ImageRef)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, err := s.lc.Create(r.Context(), lifecycle.CreateRequest{Name: body.Server.Name, FlavorRef: flavor, ImageRef: image, RequestID: requestID(r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", serverURL(r, rec.State.ID))
	writeJSON(w, http.StatusAccepted, map[string]any{"server": map[string]any{
		"id":    rec.State.ID,
		"links": links(r, rec.State.ID),
	}})
}

// ref reads an id-or-link that may be a JSON string or number; absent or
// empty is left for the lifecycle to report with the other missing fields.
func ref(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if i := strings.LastIndex(s, "/"); i >= 0 {
			s = s[i+1:]
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("%w: %s must be a string or a number", instance.ErrInvalid, field)
}

func (s *Server) showServer(w http.ResponseWriter, r *http.Request) {
	rec, err := s.lc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": serverView(r, rec)})
}

func (s *Server) listServers(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		recs, err := s.lc.List(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]any, 0, len(recs))
		for _, rec := range recs {
			if detail {
				out = append(out, serverView(r, rec))
			} else {
				out = append(out, map[string]any{"id": rec.State.ID, "name": rec.State.Name, "links": links(r, rec.State.ID)})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"servers": out})
	}
}

func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request) {
	if _, err := s.lc.Begin(r.Context(), r.PathValue("id"), instance.ActionDelete, lifecycle.ActionRequest{RequestID: requestID(r)}); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serverAction handles POST /servers/{id}/action, whose body has exactly
// one key naming the action. The key decides the instance action and its
// arguments (see actionBodies); the lifecycle service decides the rest
// from the action table.
func (s *Server) serverAction(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := decode(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(body) != 1 {
		s.writeError(w, r, fmt.Errorf("%w: an action body has exactly one key, such as {\"os-stop\": null}", instance.ErrInvalid))
		return
	}
	var key string
	var raw json.RawMessage
	for key, raw = range body {
	}
	ab, ok := actionBodies[key]
	if !ok {
		s.writeError(w, r, fmt.Errorf("%w: unsupported action %q", instance.ErrInvalid, key))
		return
	}
	action, req, err := ab.parse(raw)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: %s: %w", instance.ErrInvalid, key, err))
		return
	}
	req.RequestID = requestID(r)
	rec, err := s.lc.Begin(r.Context(), r.PathValue("id"), action, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ab.body {
		writeJSON(w, ab.code, map[string]any{"server": serverView(r, rec)})
		return
	}
	w.WriteHeader(ab.code)
}

// actionBody maps one OpenStack action key to an instance action: how to
// read its value, the status code of the answer and whether the answer
// carries the server (rebuild does, as in Nova).
type actionBody struct {
	parse func(json.RawMessage) (instance.Action, lifecycle.ActionRequest, error)
	code  int
	body  bool
}

func fixed(a instance.Action) func(json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
	return func(json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		return a, lifecycle.ActionRequest{}, nil
	}
}

var actionBodies = map[string]actionBody{
	"os-stop":       {parse: fixed(instance.ActionStop), code: http.StatusAccepted},
	"os-start":      {parse: fixed(instance.ActionStart), code: http.StatusAccepted},
	"confirmResize": {parse: fixed(instance.ActionConfirmResize), code: http.StatusNoContent},
	"revertResize":  {parse: fixed(instance.ActionRevertResize), code: http.StatusAccepted},
	"reboot": {code: http.StatusAccepted, parse: func(v json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		var rb struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(v, &rb); err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		switch strings.ToUpper(rb.Type) {
		case "SOFT":
			return instance.ActionReboot, lifecycle.ActionRequest{}, nil
		case "HARD":
			return instance.ActionHardReboot, lifecycle.ActionRequest{}, nil
		}
		return "", lifecycle.ActionRequest{}, fmt.Errorf("reboot type must be SOFT or HARD, not %q", rb.Type)
	}},
	"rebuild": {code: http.StatusAccepted, body: true, parse: func(v json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		var rb struct {
			ImageRef json.RawMessage `json:"imageRef"`
			Name     *string         `json:"name"`
		}
		if err := json.Unmarshal(v, &rb); err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		img, err := ref("imageRef", rb.ImageRef)
		if err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		if img == "" {
			return "", lifecycle.ActionRequest{}, fmt.Errorf("imageRef is required")
		}
		req := lifecycle.ActionRequest{ImageRef: img}
		if rb.Name != nil {
			req.Name = *rb.Name
		}
		return instance.ActionRebuild, req, nil
	}},
	"resize": {code: http.StatusAccepted, parse: func(v json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		var rb struct {
			FlavorRef json.RawMessage `json:"flavorRef"`
		}
		if err := json.Unmarshal(v, &rb); err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		f, err := ref("flavorRef", rb.FlavorRef)
		if err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		if f == "" {
			return "", lifecycle.ActionRequest{}, fmt.Errorf("flavorRef is required")
		}
		return instance.ActionResize, lifecycle.ActionRequest{FlavorRef: f}, nil
	}},
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h, err := s.lc.History(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(h) == 0 {
		s.writeError(w, r, fmt.Errorf("%w: no history for %s", instance.ErrNotFound, id))
		return
	}
	out := make([]client.HistoryRecord, len(h))
	for i, rec := range h {
		out[i] = client.HistoryRecord{Seq: rec.Seq, At: rec.At.UTC(), From: string(rec.From), To: string(rec.To),
			Action: string(rec.Action), Cause: string(rec.Cause), RequestID: rec.RequestID, User: rec.User,
			Message: rec.Message, Policy: rec.Policy}
	}
	writeJSON(w, http.StatusOK, map[string]any{"history": out})
}

// decode reads a JSON body strictly enough to catch garbage and trailing
// data, with a size limit.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%w: Content-Type must be application/json, not %q (curl: -H 'Content-Type: application/json')", errUnsupportedMedia, ct)
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty request body", instance.ErrInvalid)
		}
		return fmt.Errorf("%w: malformed request body: %v", instance.ErrInvalid, err)
	}
	if dec.InputOffset() > maxBody {
		return fmt.Errorf("%w: request body over %d bytes", errTooLarge, maxBody)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: malformed request body: data after the JSON value", instance.ErrInvalid)
	}
	return nil
}

var (
	errUnsupportedMedia = errors.New("unsupported media type")
	errTooLarge         = errors.New("request entity too large")
)

// writeError is the one place errors become HTTP: status code and
// OpenStack's {"<kind>": {"code": ..., "message": ...}} body.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, kind := http.StatusInternalServerError, "computeFault"
	switch {
	case errors.Is(err, instance.ErrInvalid):
		code, kind = http.StatusBadRequest, "badRequest"
	case errors.Is(err, instance.ErrNotFound), errors.Is(err, errNoRoute):
		code, kind = http.StatusNotFound, "itemNotFound"
	case errors.Is(err, instance.ErrConflict), errors.Is(err, store.ErrStale), errors.Is(err, instance.ErrUnsupported):
		code, kind = http.StatusConflict, "conflictingRequest"
	case errors.Is(err, instance.ErrRefused):
		code, kind = http.StatusForbidden, "forbidden"
	case errors.Is(err, errUnsupportedMedia):
		code, kind = http.StatusUnsupportedMediaType, "unsupportedMediaType"
	case errors.Is(err, errTooLarge):
		code, kind = http.StatusRequestEntityTooLarge, "overLimit"
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		s.logger.Error("api: internal error", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
		msg = "The server has either erred or is incapable of performing the requested operation. Request " + requestID(r)
	}
	writeJSON(w, code, map[string]any{kind: map[string]any{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func serverURL(r *http.Request, id string) string {
	return baseURL(r) + "/v2.1/servers/" + id
}

func links(r *http.Request, id string) []map[string]string {
	return []map[string]string{
		{"rel": "self", "href": serverURL(r, id)},
		{"rel": "bookmark", "href": baseURL(r) + "/servers/" + id},
	}
}

func serverView(r *http.Request, rec store.Record) map[string]any {
	st := rec.State
	var task any
	if ts := instance.TaskState(rec.Transition); ts != "" {
		task = ts
	}
	v := map[string]any{
		"id":                     st.ID,
		"name":                   st.Name,
		"status":                 string(rec.Status()),
		"flavor":                 map[string]any{"id": st.Flavor.ID},
		"image":                  map[string]any{"id": st.Image.ID},
		"user_id":                st.User,
		"tenant_id":              st.Project,
		"created":                st.CreatedAt.UTC().Format(time.RFC3339),
		"updated":                st.UpdatedAt.UTC().Format(time.RFC3339),
		"OS-EXT-STS:vm_state":    string(st.VMState),
		"OS-EXT-STS:task_state":  task,
		"OS-EXT-STS:power_state": instance.PowerCode(st.PowerState),
		"OS-EXT-SRV-ATTR:host":   st.Node,
		"links":                  links(r, st.ID),
		"metadata":               map[string]string{},
	}
	if rec.Err != nil {
		v["fault"] = map[string]any{"code": 500, "message": "the stored record cannot be read: " + rec.Err.Error(), "created": st.UpdatedAt.UTC().Format(time.RFC3339)}
	} else if f := st.Fault; f != nil {
		v["fault"] = map[string]any{"code": f.Code, "message": f.Message, "created": f.At.UTC().Format(time.RFC3339), "details": "during " + string(f.During)}
	}
	if t := rec.Transition; t != nil {
		steps := make([]string, len(t.Steps))
		for i, s := range t.Steps {
			steps[i] = string(s)
		}
		v["lucid:transition"] = map[string]any{
			"action": string(t.Action), "request_id": t.RequestID, "steps": steps, "step": t.Step,
			"origin": string(t.Origin), "target": string(t.Target), "started_at": t.StartedAt.UTC().Format(time.RFC3339Nano),
		}
	}
	if len(st.Flags) > 0 {
		v["lucid:flags"] = st.Flags
	}
	return v
}
