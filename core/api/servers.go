package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
)

// Nova's limits on server metadata: the metadata_items quota's default,
// and the length of keys and values.
const (
	maxMetadataItems  = 128
	maxMetadataLength = 255
)

// diskConfig is what Lucid does with a server's disk: it never
// repartitions it, which Nova calls MANUAL.
const diskConfig = "MANUAL"

func (s *Server) createServer(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseCreate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, err := s.lc.Create(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", selfAndBookmark(r, "servers", rec.State.ID)[0].Href)
	// Prefer: wait=N (RFC 7240): answer when the build has ended, 200
	// with the server as it came out (ACTIVE, or ERROR with its fault)
	// and its generated adminPass; else the ordinary 202.
	if d := preferWait(r.Header); d > 0 {
		if settled, ok := s.settle(w, r, rec, d); ok {
			v := serverDetail(r, settled)
			v.AdminPass = adminPass()
			preferenceApplied(w, d)
			writeJSON(w, http.StatusOK, map[string]any{"server": v})
			return
		}
		if r.Context().Err() != nil {
			return // the client left; nobody reads an answer
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"server": map[string]any{
		"id":                rec.State.ID,
		"links":             selfAndBookmark(r, "servers", rec.State.ID),
		"adminPass":         adminPass(),
		"OS-DCF:diskConfig": diskConfig,
		"security_groups":   []any{},
	}})
}

// parseCreate reads a create body. Every field is either honoured or
// refused with 400 naming it; none is silently dropped.
func (s *Server) parseCreate(w http.ResponseWriter, r *http.Request) (lifecycle.CreateRequest, error) {
	var top map[string]json.RawMessage
	if err := decode(w, r, &top); err != nil {
		return lifecycle.CreateRequest{}, err
	}
	raw, ok := top["server"]
	if !ok || string(raw) == "null" {
		return lifecycle.CreateRequest{}, fmt.Errorf("%w: body must be {\"server\": {...}}", instance.ErrInvalid)
	}
	if err := unsupported("", top, "server"); err != nil {
		return lifecycle.CreateRequest{}, err
	}
	fields, err := object("server", raw)
	if err != nil {
		return lifecycle.CreateRequest{}, err
	}
	if err := unsupported("server.", fields, "name", "flavorRef", "imageRef", "metadata", "min_count", "max_count", "networks"); err != nil {
		return lifecycle.CreateRequest{}, err
	}
	p := principal(r)
	req := lifecycle.CreateRequest{RequestID: requestID(r), Project: p.Project, User: p.User}
	if v, ok := fields["name"]; ok {
		if err := json.Unmarshal(v, &req.Name); err != nil {
			return req, fmt.Errorf("%w: server.name must be a string", instance.ErrInvalid)
		}
	}
	if req.FlavorRef, err = ref("flavorRef", fields["flavorRef"]); err != nil {
		return req, err
	}
	if req.ImageRef, err = ref("imageRef", fields["imageRef"]); err != nil {
		return req, err
	}
	if req.Metadata, err = metadata(fields["metadata"]); err != nil {
		return req, err
	}
	for _, k := range []string{"min_count", "max_count"} {
		if err := oneInstance(k, fields[k]); err != nil {
			return req, err
		}
	}
	if err := noNetworks(fields["networks"]); err != nil {
		return req, err
	}
	return req, nil
}

// object decodes a JSON object into its fields; anything else is
// ErrInvalid naming where.
func object(where string, raw json.RawMessage) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("%w: %s must be an object", instance.ErrInvalid, where)
	}
	return fields, nil
}

// unsupported fails when fields has a key outside allowed, naming every
// such key with prefix.
func unsupported(prefix string, fields map[string]json.RawMessage, allowed ...string) error {
	var bad []string
	for k := range fields {
		if !slices.Contains(allowed, k) {
			bad = append(bad, prefix+k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %s not supported by Lucid", instance.ErrInvalid, strings.Join(bad, ", "))
}

// ref reads an id-or-link that may be a JSON string or number; absent or
// empty is left for the lifecycle to report with the other missing fields.
func ref(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return lastSegment(s), nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("%w: %s must be a string or a number", instance.ErrInvalid, field)
}

// metadata reads server metadata within Nova's limits: string values, at
// most 128 items, keys of 1 to 255 characters, values of at most 255.
func metadata(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var md map[string]string
	if err := json.Unmarshal(raw, &md); err != nil || md == nil {
		return nil, fmt.Errorf("%w: server.metadata must be an object of string values", instance.ErrInvalid)
	}
	if len(md) > maxMetadataItems {
		return nil, fmt.Errorf("%w: server.metadata has %d items; at most %d are allowed", instance.ErrInvalid, len(md), maxMetadataItems)
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch n := utf8.RuneCountInString(k); {
		case n == 0:
			return nil, fmt.Errorf("%w: server.metadata has an empty key", instance.ErrInvalid)
		case n > maxMetadataLength:
			return nil, fmt.Errorf("%w: server.metadata key %.20q… is %d characters long; at most %d are allowed", instance.ErrInvalid, k, n, maxMetadataLength)
		}
		if n := utf8.RuneCountInString(md[k]); n > maxMetadataLength {
			return nil, fmt.Errorf("%w: server.metadata[%q] is %d characters long; at most %d are allowed", instance.ErrInvalid, k, n, maxMetadataLength)
		}
	}
	return md, nil
}

// oneInstance checks min_count or max_count: Lucid creates one server per
// request, so anything but 1 is refused rather than half done.
func oneInstance(field string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	n, ok := 0, false
	switch x := v.(type) {
	case float64:
		n, ok = int(x), x == float64(int(x))
	case string:
		i, err := strconv.Atoi(x)
		n, ok = i, err == nil
	}
	if !ok || n < 1 {
		return fmt.Errorf("%w: server.%s must be an integer of at least 1, not %s", instance.ErrInvalid, field, raw)
	}
	if n != 1 {
		return fmt.Errorf("%w: server.%s is %d; Lucid creates one server per request, so it must be 1", instance.ErrInvalid, field, n)
	}
	return nil
}

// noNetworks accepts the requests that ask for no particular network:
// Lucid has no networking yet, so a server gets no addresses.
func noNetworks(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && (s == "auto" || s == "none") {
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil && len(list) == 0 {
		return nil
	}
	return fmt.Errorf("%w: server.networks %s not supported by Lucid, which has no networking yet; omit it or send \"none\"", instance.ErrInvalid, raw)
}

// adminPass is a fresh random password, returned on create and rebuild as
// Nova does. Lucid's drivers do not inject it into the guest.
func adminPass() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// getVisible reads instance id if the caller may see it; another
// project's instance is ErrNotFound, as if it did not exist.
func (s *Server) getVisible(r *http.Request, id string) (store.Record, error) {
	rec, err := s.lc.Get(r.Context(), id)
	if err == nil && !visible(r, rec.State.Project) {
		return store.Record{}, notFound(id)
	}
	return rec, err
}

func (s *Server) showServer(w http.ResponseWriter, r *http.Request) {
	rec, err := s.getVisible(r, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": serverDetail(r, rec)})
}

func (s *Server) listServers(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := parseServerQuery(r.URL.Query(), s.lc.Catalog(), s.maxLimit)
		if err == nil {
			err = q.scope(r)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		recs, err := s.lc.List(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		page, more, err := q.page(recs)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var next []link
		if more && len(page) > 0 {
			next = nextLink(r, page[len(page)-1].State.ID)
		}
		if detail {
			s.writeServerDetails(w, r, page, next)
			s.bodies.prune(recs)
			return
		}
		out := make([]serverSummary, 0, len(page))
		for _, rec := range page {
			out = append(out, serverSummary{ID: rec.State.ID, Links: selfAndBookmark(r, "servers", rec.State.ID), Name: rec.State.Name})
		}
		body := map[string]any{"servers": out}
		if next != nil {
			body["servers_links"] = next
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request) {
	if _, err := s.lc.Begin(r.Context(), r.PathValue("id"), instance.ActionDelete, actionRequest(r)); err != nil {
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
	if err := decode(w, r, &body); err != nil {
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
	caller := actionRequest(r)
	req.RequestID, req.User, req.Project = caller.RequestID, caller.User, caller.Project
	rec, err := s.lc.Begin(r.Context(), r.PathValue("id"), action, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ab.body {
		v := serverBasic(r, rec)
		v.AdminPass = adminPass()
		writeJSON(w, ab.code, map[string]any{"server": v})
		return
	}
	// Prefer: wait=N (RFC 7240): answer when the action has ended, with
	// the server as it left it (200), instead of 202 and a client that
	// polls. If it has not ended within N seconds (or the instance went
	// away), the answer is the ordinary 202, without Preference-Applied.
	if d := preferWait(r.Header); d > 0 {
		if settled, ok := s.settle(w, r, rec, d); ok {
			preferenceApplied(w, d)
			writeJSON(w, http.StatusOK, map[string]any{"server": serverDetail(r, settled)})
			return
		}
		if r.Context().Err() != nil {
			return // the client left; nobody reads an answer
		}
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

// fixed is an action whose value carries nothing: null, as Nova's schema
// says, or an empty object.
func fixed(a instance.Action) func(json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
	return func(v json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		if s := strings.Join(strings.Fields(string(v)), ""); s != "null" && s != "{}" {
			return "", lifecycle.ActionRequest{}, fmt.Errorf("the value must be null, not %s", v)
		}
		return a, lifecycle.ActionRequest{}, nil
	}
}

// fieldsOf decodes an action's value, refusing keys outside allowed.
func fieldsOf(v json.RawMessage, allowed ...string) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(v, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("the value must be an object")
	}
	var bad []string
	for k := range fields {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return nil, fmt.Errorf("%s not supported by Lucid", strings.Join(bad, ", "))
	}
	return fields, nil
}

var actionBodies = map[string]actionBody{
	"os-stop":       {parse: fixed(instance.ActionStop), code: http.StatusAccepted},
	"os-start":      {parse: fixed(instance.ActionStart), code: http.StatusAccepted},
	"confirmResize": {parse: fixed(instance.ActionConfirmResize), code: http.StatusNoContent},
	"revertResize":  {parse: fixed(instance.ActionRevertResize), code: http.StatusAccepted},
	"reboot": {code: http.StatusAccepted, parse: func(v json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		f, err := fieldsOf(v, "type")
		if err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		var typ string
		_ = json.Unmarshal(f["type"], &typ)
		switch strings.ToUpper(typ) {
		case "SOFT":
			return instance.ActionReboot, lifecycle.ActionRequest{}, nil
		case "HARD":
			return instance.ActionHardReboot, lifecycle.ActionRequest{}, nil
		}
		return "", lifecycle.ActionRequest{}, fmt.Errorf("reboot type must be SOFT or HARD, not %s", orNothing(f["type"]))
	}},
	"rebuild": {code: http.StatusAccepted, body: true, parse: func(v json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		f, err := fieldsOf(v, "imageRef", "name")
		if err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		img, err := ref("imageRef", f["imageRef"])
		if err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		if img == "" {
			return "", lifecycle.ActionRequest{}, fmt.Errorf("imageRef is required")
		}
		req := lifecycle.ActionRequest{ImageRef: img}
		if n, ok := f["name"]; ok {
			if err := json.Unmarshal(n, &req.Name); err != nil {
				return "", lifecycle.ActionRequest{}, fmt.Errorf("name must be a string")
			}
		}
		return instance.ActionRebuild, req, nil
	}},
	"resize": {code: http.StatusAccepted, parse: func(v json.RawMessage) (instance.Action, lifecycle.ActionRequest, error) {
		f, err := fieldsOf(v, "flavorRef")
		if err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		fl, err := ref("flavorRef", f["flavorRef"])
		if err != nil {
			return "", lifecycle.ActionRequest{}, err
		}
		if fl == "" {
			return "", lifecycle.ActionRequest{}, fmt.Errorf("flavorRef is required")
		}
		return instance.ActionResize, lifecycle.ActionRequest{FlavorRef: fl}, nil
	}},
}

func orNothing(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	return string(raw)
}

// serverSummary is a server in a listing without details; its fields in
// their keys' byte order, as serverBody's.
type serverSummary struct {
	ID    string `json:"id"`
	Links []link `json:"links"`
	Name  string `json:"name"`
}

// serverBody is Nova's server view, basic or detailed, as a struct so a
// listing of a thousand servers encodes without building and sorting a
// map per server (see core/api/RATIONALE.md, "Listing"). Its fields
// are in the byte order of their JSON keys, the order encoding/json gave
// the map this replaced, so the bytes on the wire did not change. A field
// only some answers carry is omitempty: a pointer, or a json.RawMessage
// where the answer's value is null.
type serverBody struct {
	DiskConfig string `json:"OS-DCF:diskConfig"`
	// Detail only.
	Host       *string         `json:"OS-EXT-SRV-ATTR:host,omitempty"`
	PowerState *int            `json:"OS-EXT-STS:power_state,omitempty"`
	TaskState  json.RawMessage `json:"OS-EXT-STS:task_state,omitempty"`
	VMState    *string         `json:"OS-EXT-STS:vm_state,omitempty"`

	AccessIPv4 string   `json:"accessIPv4"`
	AccessIPv6 string   `json:"accessIPv6"`
	Addresses  struct{} `json:"addresses"`
	// AdminPass: rebuild's answer only.
	AdminPass string `json:"adminPass,omitempty"`
	Created   string `json:"created"`
	// Description: from 2.19, always null.
	Description json.RawMessage `json:"description,omitempty"`
	Fault       *serverFault    `json:"fault,omitempty"`
	Flavor      serverRef       `json:"flavor"`
	HostID      string          `json:"hostId"`
	ID          string          `json:"id"`
	Image       serverRef       `json:"image"`
	// KeyName: detail only, always null.
	KeyName json.RawMessage `json:"key_name,omitempty"`
	Links   []link          `json:"links"`
	// Locked: from 2.9, always false.
	Locked   *bool             `json:"locked,omitempty"`
	Metadata map[string]string `json:"metadata"`
	Name     string            `json:"name"`
	// Volumes: detail only, always empty.
	Volumes  *[0]struct{} `json:"os-extended-volumes:volumes_attached,omitempty"`
	Status   string       `json:"status"`
	TenantID string       `json:"tenant_id"`
	Updated  string       `json:"updated"`
	UserID   string       `json:"user_id"`
}

// serverRef is a server's flavor or image: its id and bookmark link.
type serverRef struct {
	ID    string `json:"id"`
	Links []link `json:"links"`
}

type serverFault struct {
	Code    int    `json:"code"`
	Created string `json:"created"`
	Message string `json:"message"`
}

var (
	jsonNull = json.RawMessage("null")
	isFalse  = false
)

// serverBasic is Nova's basic server view (what rebuild answers with):
// only keys of tempest's common_show_server schema, and from 2.9 locked
// (false: Lucid has no locking), from 2.19 description (null: Lucid
// stores none).
func serverBasic(r *http.Request, rec store.Record) *serverBody {
	st := rec.State
	md := st.Metadata
	if md == nil {
		md = map[string]string{}
	}
	v := &serverBody{
		ID:         st.ID,
		Name:       st.Name,
		Status:     string(rec.Status()),
		TenantID:   st.Project,
		UserID:     st.User,
		Metadata:   md,
		HostID:     hostID(st.Project, st.Node),
		Image:      serverRef{ID: st.Image.ID, Links: bookmark(r, "images", st.Image.ID)},
		Flavor:     serverRef{ID: st.Flavor.ID, Links: bookmark(r, "flavors", st.Flavor.ID)},
		Created:    timestamp(st.CreatedAt),
		Updated:    timestamp(st.UpdatedAt),
		Links:      selfAndBookmark(r, "servers", st.ID),
		DiskConfig: diskConfig,
	}
	if atLeast(r, versionLocked) {
		v.Locked = &isFalse
	}
	if atLeast(r, versionDescription) {
		v.Description = jsonNull
	}
	if rec.Err != nil {
		v.Fault = &serverFault{Code: 500, Message: "the stored record cannot be read; see /v1/instances/" + st.ID, Created: timestamp(st.UpdatedAt)}
	} else if f := st.Fault; f != nil {
		v.Fault = &serverFault{Code: f.Code, Message: f.Message, Created: timestamp(f.At)}
	}
	return v
}

// serverDetail is Nova's detailed server view (show, list detail): the
// basic view plus the extended status and host attributes. The transition
// in flight, flags and the full fault are in /v1/instances.
func serverDetail(r *http.Request, rec store.Record) *serverBody {
	v := serverBasic(r, rec)
	st := rec.State
	v.TaskState = jsonNull
	if ts := instance.TaskState(rec.Transition); ts != "" {
		v.TaskState, _ = json.Marshal(ts) // a string always encodes
	}
	vm := string(st.VMState)
	if rec.Err != nil {
		vm = string(instance.Error)
	}
	power := instance.PowerCode(st.PowerState)
	host := st.Node
	v.VMState, v.PowerState, v.Host = &vm, &power, &host
	v.KeyName = jsonNull
	v.Volumes = &[0]struct{}{}
	return v
}

// hostID is Nova's opaque host id: sha224 of project and host, so users
// can tell whether two of their servers share a host without learning
// its name; "" when the server has no host.
func hostID(project, host string) string {
	if host == "" {
		return ""
	}
	sum := sha256.Sum224([]byte(project + host))
	return hex.EncodeToString(sum[:])
}

// bookmark is the unversioned link Nova puts in a server's image and
// flavor.
func bookmark(r *http.Request, collection, id string) []link {
	return selfAndBookmark(r, collection, id)[1:]
}
