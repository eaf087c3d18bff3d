// Package client is a typed client for Lucid's HTTP API: the native /v1
// views (instances with their transitions and history) and the compute
// v2.1 calls the CLI makes. The lucid CLI and the end-to-end tests use it;
// its wire types are the native API's, so the server encodes with them.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one Lucid API endpoint. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client
	// Token, if set, is sent as X-Auth-Token.
	Token string
}

// New returns a client for the API at base, e.g. "http://127.0.0.1:8774".
func New(base string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 60 * time.Second}}
}

// Base is the endpoint the client talks to.
func (c *Client) Base() string { return c.base }

// Error is an error response from the API, in OpenStack's shape
// {"<kind>": {"code": ..., "message": ...}}.
type Error struct {
	Status  int
	Kind    string
	Message string
	// RequestID is the request's X-Openstack-Request-Id.
	RequestID string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Kind, e.Message) }

// IsNotFound reports whether err is a 404 from the API.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Response is what a call returned besides its body.
type Response struct {
	Status    int
	RequestID string
}

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (if not nil). An answer other than want is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, want int) (Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return Response{}, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return Response{}, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("X-Auth-Token", c.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w (is lucid serve running there?)", method, c.base+path, err)
	}
	defer resp.Body.Close()
	r := Response{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Openstack-Request-Id")}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return r, err
	}
	if resp.StatusCode != want {
		var eb map[string]struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &eb) == nil {
			for k, v := range eb {
				return r, &Error{Status: resp.StatusCode, Kind: k, Message: v.Message, RequestID: r.RequestID}
			}
		}
		return r, &Error{Status: resp.StatusCode, Kind: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(b)), RequestID: r.RequestID}
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return r, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return r, nil
}

// CreateRequest asks for a new instance.
type CreateRequest struct {
	Name      string            `json:"name"`
	FlavorRef string            `json:"flavorRef"`
	ImageRef  string            `json:"imageRef"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Create asks for a new instance and returns its id as soon as the API
// accepted the request.
func (c *Client) Create(ctx context.Context, req CreateRequest) (string, Response, error) {
	var out struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	r, err := c.Do(ctx, "POST", "/v2.1/servers", map[string]any{"server": req}, &out, http.StatusAccepted)
	return out.Server.ID, r, err
}

// Delete asks for an instance to be deleted.
func (c *Client) Delete(ctx context.Context, id string) (Response, error) {
	return c.Do(ctx, "DELETE", "/v2.1/servers/"+url.PathEscape(id), nil, nil, http.StatusNoContent)
}

// Action posts a compute action body such as {"os-stop": null} and
// expects want (202 for most, 204 for confirmResize).
func (c *Client) Action(ctx context.Context, id string, body any, want int) (Response, error) {
	return c.Do(ctx, "POST", "/v2.1/servers/"+url.PathEscape(id)+"/action", body, nil, want)
}

// Instance reads one instance through the native API: state, transition
// in flight, fault and flags.
func (c *Client) Instance(ctx context.Context, id string) (Instance, error) {
	var out struct {
		Instance Instance `json:"instance"`
	}
	_, err := c.Do(ctx, "GET", "/v1/instances/"+url.PathEscape(id), nil, &out, http.StatusOK)
	return out.Instance, err
}

// Instances lists every instance through the native API, following the
// pages.
func (c *Client) Instances(ctx context.Context) ([]Instance, error) {
	return c.ListInstances(ctx, nil)
}

// ListInstances lists the instances matching query (the compute API's
// server list filters: name, status, image, flavor, host, changes-since,
// sort_key, sort_dir, limit), following the pages until the last. A limit
// in query sets the page size, not the total.
func (c *Client) ListInstances(ctx context.Context, query url.Values) ([]Instance, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	var all []Instance
	for {
		path := "/v1/instances"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var page InstanceList
		if _, err := c.Do(ctx, "GET", path, nil, &page, http.StatusOK); err != nil {
			return all, err
		}
		all = append(all, page.Instances...)
		if page.Next == "" || len(page.Instances) == 0 {
			return all, nil
		}
		q.Set("marker", page.Instances[len(page.Instances)-1].ID)
	}
}

// History reads an instance's status changes, also after deletion.
func (c *Client) History(ctx context.Context, id string) ([]HistoryRecord, error) {
	var out struct {
		History []HistoryRecord `json:"history"`
	}
	_, err := c.Do(ctx, "GET", "/v1/instances/"+url.PathEscape(id)+"/history", nil, &out, http.StatusOK)
	return out.History, err
}

// Flavors lists the flavor catalog.
func (c *Client) Flavors(ctx context.Context) ([]Flavor, error) {
	var out struct {
		Flavors []Flavor `json:"flavors"`
	}
	_, err := c.Do(ctx, "GET", "/v1/flavors", nil, &out, http.StatusOK)
	return out.Flavors, err
}

// Images lists the image catalog.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	var out struct {
		Images []Image `json:"images"`
	}
	_, err := c.Do(ctx, "GET", "/v1/images", nil, &out, http.StatusOK)
	return out.Images, err
}

// WaitTimeout is how long each of Wait's long-polls asks the server to
// hold the request (below the client's own 60s timeout and the server's
// cap).
const WaitTimeout = 30 * time.Second

// Wait follows the action of request requestID on instance id until it
// has ended, calling seen with each status change it made, in order: the
// instance's history records of that request. Unlike polling the status,
// this misses no step however fast it passed. It returns the instance as
// the action left it, or ErrGone after a delete.
//
// It does not poll: it long-polls the instance (GET
// /v1/instances/{id}?wait=settled), which the server answers when no
// transition is in flight, or after WaitTimeout with the transition
// still set, when Wait asks again. So an action costs one long-poll and
// one history read, plus one more of each per WaitTimeout it lasts; with
// seen set, the history is also read once before waiting, so the first
// status shows at once, and the others when the action ends (or at each
// WaitTimeout). An action replaced by another (a delete pre-empting a
// create) has ended for Wait when an answer shows the other one: at the
// latest when that one settles, or at the next WaitTimeout.
func (c *Client) Wait(ctx context.Context, id, requestID string, seen func(HistoryRecord)) (Instance, error) {
	printed := 0
	report := func() error {
		if seen == nil {
			return nil
		}
		h, err := c.History(ctx, id)
		if err != nil {
			return err
		}
		var mine []HistoryRecord
		for _, r := range h {
			if r.RequestID == requestID {
				mine = append(mine, r)
			}
		}
		for ; printed < len(mine); printed++ {
			seen(mine[printed])
		}
		return nil
	}
	if err := report(); err != nil && !IsNotFound(err) {
		return Instance{}, err
	}
	path := "/v1/instances/" + url.PathEscape(id) + "?wait=settled&timeout=" + WaitTimeout.String()
	for {
		var out struct {
			Instance Instance `json:"instance"`
		}
		_, err := c.Do(ctx, "GET", path, nil, &out, http.StatusOK)
		in := out.Instance
		gone := IsNotFound(err)
		if err != nil && !gone {
			return Instance{}, err
		}
		done := gone || in.Transition == nil || in.Transition.RequestID != requestID
		if err := report(); err != nil {
			return in, err
		}
		switch {
		case gone:
			return Instance{}, ErrGone
		case done:
			return in, nil
		}
	}
}

// ErrGone is what Wait returns when the instance was deleted.
var ErrGone = errors.New("instance deleted")

// Flags lists the flagged instances and the unmanaged VMs.
func (c *Client) Flags(ctx context.Context) (Flags, error) {
	var out Flags
	_, err := c.Do(ctx, "GET", "/v1/flags", nil, &out, http.StatusOK)
	return out, err
}

// Unflag clears an instance's reconciler flags.
func (c *Client) Unflag(ctx context.Context, id string) (Instance, error) {
	var out struct {
		Instance Instance `json:"instance"`
	}
	_, err := c.Do(ctx, "POST", "/v1/instances/"+url.PathEscape(id)+"/unflag", nil, &out, http.StatusOK)
	return out.Instance, err
}

// Authenticate asks the identity API (/identity/v3) for a token for user
// in project, by password, and keeps it: the client's later calls send
// it. It returns the token.
func (c *Client) Authenticate(ctx context.Context, user, password, project string) (string, error) {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": user, "password": password, "domain": map[string]string{"name": "Default"}}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]string{"name": "Default"}}},
	}}
	b, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/identity/v3/auth/tokens", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("authenticate at %s: %w (is lucid serve running there?)", c.base, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		var eb struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		text := strings.TrimSpace(string(msg))
		if json.Unmarshal(msg, &eb) == nil && eb.Error.Message != "" {
			text = eb.Error.Message
		}
		return "", &Error{Status: resp.StatusCode, Kind: http.StatusText(resp.StatusCode), Message: text, RequestID: resp.Header.Get("X-Openstack-Request-Id")}
	}
	c.Token = resp.Header.Get("X-Subject-Token")
	return c.Token, nil
}
