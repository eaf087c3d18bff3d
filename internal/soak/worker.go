package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
)

// maxFailures ends a run early: past it the server is plainly broken and
// the rest of the run would only repeat it.
const maxFailures = 100

// waitLimit bounds waiting for one action to end.
const waitLimit = time.Minute

// API is a small HTTP client for the calls a load generator makes (the
// soak's and lucid bench throughput's). Unlike client.Client it keeps a
// connection per worker alive, so millions of calls do not churn through
// the machine's ephemeral ports.
type API struct {
	Base string
	HTTP *http.Client
}

// NewAPI returns an API for base that keeps up to 2×workers idle
// connections.
func NewAPI(base string, workers int) *API {
	return &API{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			MaxIdleConns: 2 * workers, MaxIdleConnsPerHost: 2 * workers, IdleConnTimeout: time.Minute,
			DisableCompression: true,
		},
	}}
}

// Do makes one call; an answer other than want is a *CallError that
// quotes the answer. out, when not nil, receives the decoded body.
func (a *API) Do(ctx context.Context, method, path, body string, want int, out any) error {
	code, b, err := a.Send(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	if code != want {
		return &CallError{Method: method, Path: path, Status: code, Body: string(bytes.TrimSpace(b))}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Send makes one call with extra headers and returns the answer's status
// and body, whatever the status.
func (a *API) Send(ctx context.Context, method, path, body string, header http.Header) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// CallError is an answer the load did not expect.
type CallError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *CallError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Body)
}

// inst is one instance a worker owns, as the worker expects it to be.
type inst struct {
	id      string
	status  string // ACTIVE or SHUTOFF
	changes int64  // status changes made to it: its newest history seq
}

// worker drives the actions on its own instances, one at a time.
type worker struct {
	n      int
	api    *API
	cfg    *Config
	fail   *failureLog
	done   *atomic.Int64 // changes completed by all workers
	target int64
	insts  []*inst
	ops    int
	calls  int64
}

// failed records a failure, unless the run was interrupted: then the call
// failed because this process stopped it.
func (w *worker) failed(ctx context.Context, format string, args ...any) {
	if ctx.Err() == nil {
		w.fail.add(format, args...)
	}
}

func (w *worker) call(ctx context.Context, method, path, body string, want int, out any) error {
	w.calls++
	return w.api.Do(ctx, method, path, body, want, out)
}

// run drives actions until all workers together made the target number
// of changes.
func (w *worker) run(ctx context.Context) error {
	for w.done.Load() < w.target {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n, _ := w.fail.get(); n > maxFailures {
			return fmt.Errorf("soak: more than %d calls failed; stopping", maxFailures)
		}
		i := w.ops % len(w.insts)
		w.ops++
		in := w.insts[i]
		var err error
		switch {
		case w.ops%w.cfg.ReplaceEvery == 0:
			err = w.replace(ctx, i)
		case in.status == "ACTIVE":
			err = w.act(ctx, in, "stop", `{"os-stop": null}`, "SHUTOFF")
		default:
			err = w.act(ctx, in, "start", `{"os-start": null}`, "ACTIVE")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// act runs one action to its end and counts its two changes (the step,
// then the settled status). A call or an outcome that goes wrong is a
// failure; the instance is then read again to go on from where it is.
func (w *worker) act(ctx context.Context, in *inst, what, body, want string) error {
	if err := w.call(ctx, "POST", "/v2.1/servers/"+in.id+"/action", body, http.StatusAccepted, nil); err != nil {
		w.failed(ctx, "%s %s: %v", what, in.id, err)
		return w.resync(ctx, in)
	}
	got, err := w.wait(ctx, in.id)
	if err != nil {
		w.failed(ctx, "%s %s: %v", what, in.id, err)
		return w.resync(ctx, in)
	}
	if got.Status != want || got.Fault != nil {
		w.failed(ctx, "%s %s ended %s, want %s (fault %+v)", what, in.id, got.Status, want, got.Fault)
		return w.resync(ctx, in)
	}
	in.status = want
	in.changes += 2
	w.done.Add(2)
	return nil
}

// replace deletes the instance at i (DELETING, DELETED), checks its
// history right away, then creates a new one (BUILD, ACTIVE) instead.
func (w *worker) replace(ctx context.Context, i int) error {
	in := w.insts[i]
	if err := w.call(ctx, "DELETE", "/v2.1/servers/"+in.id, "", http.StatusNoContent, nil); err != nil {
		w.failed(ctx, "delete %s: %v", in.id, err)
		return w.resync(ctx, in)
	}
	if _, err := w.wait(ctx, in.id); err != errGone {
		w.failed(ctx, "delete %s: still there (%v)", in.id, err)
		return w.resync(ctx, in)
	}
	in.changes += 2
	w.done.Add(2)
	w.verifyOne(ctx, in, "DELETED")
	w.insts = append(w.insts[:i], w.insts[i+1:]...)
	if err := w.create(ctx); err != nil {
		return err
	}
	w.done.Add(2)
	return nil
}

// createTries is how often a worker tries to create an instance before
// it gives up: without its instances it cannot go on.
const createTries = 3

// create creates an instance, waits until it is ACTIVE and adds it to the
// worker's. Each failed try is a failure; after createTries it is an
// error.
func (w *worker) create(ctx context.Context) error {
	var err error
	for range createTries {
		if err = w.tryCreate(ctx); err == nil || ctx.Err() != nil {
			return err
		}
		w.failed(ctx, "%v", err)
	}
	return fmt.Errorf("soak: worker %d: %w", w.n, err)
}

func (w *worker) tryCreate(ctx context.Context) error {
	var out struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	body := fmt.Sprintf(`{"server":{"name":"soak-%d-%d","flavorRef":"m1.tiny","imageRef":"cirros"}}`, w.n, w.ops)
	if err := w.call(ctx, "POST", "/v2.1/servers", body, http.StatusAccepted, &out); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	got, err := w.wait(ctx, out.Server.ID)
	if err == nil && (got.Status != "ACTIVE" || got.Fault != nil) {
		err = fmt.Errorf("ended %s (fault %+v), want ACTIVE", got.Status, got.Fault)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", out.Server.ID, err)
	}
	w.insts = append(w.insts, &inst{id: out.Server.ID, status: "ACTIVE", changes: 2})
	return nil
}

var errGone = fmt.Errorf("instance gone")

// wait long-polls the instance (GET /v1/instances/{id}?wait=settled)
// until no action is in flight, and returns it then (errGone once it is
// deleted). The server answers when the action ends, or after 30s with
// the action still in flight, when wait asks again, up to waitLimit.
func (w *worker) wait(ctx context.Context, id string) (client.Instance, error) {
	deadline := time.Now().Add(waitLimit)
	for {
		var out struct {
			Instance client.Instance `json:"instance"`
		}
		err := w.call(ctx, "GET", "/v1/instances/"+id+"?wait=settled&timeout=30s", "", http.StatusOK, &out)
		if ce := (*CallError)(nil); errors.As(err, &ce) && ce.Status == http.StatusNotFound {
			return client.Instance{}, errGone
		}
		if err != nil {
			return client.Instance{}, err
		}
		if out.Instance.Transition == nil {
			return out.Instance, nil
		}
		if time.Now().After(deadline) {
			return out.Instance, fmt.Errorf("still %s after %v", out.Instance.Status, waitLimit)
		}
	}
}

// resync reads an instance after a failure, so the worker's count and
// expectation follow what the server did; an instance that is gone or
// stuck is replaced.
func (w *worker) resync(ctx context.Context, in *inst) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	got, err := w.wait(ctx, in.id)
	h, herr := w.history(ctx, in.id)
	if err == nil && herr == nil && len(h) > 0 && (got.Status == "ACTIVE" || got.Status == "SHUTOFF") {
		in.status, in.changes = got.Status, h[len(h)-1].Seq
		return nil
	}
	// Out of the game: put a fresh instance in its place.
	for i, x := range w.insts {
		if x == in {
			w.insts = append(w.insts[:i], w.insts[i+1:]...)
			break
		}
	}
	return w.create(ctx)
}

func (w *worker) history(ctx context.Context, id string) ([]client.HistoryRecord, error) {
	var out struct {
		History []client.HistoryRecord `json:"history"`
	}
	err := w.call(ctx, "GET", "/v1/instances/"+id+"/history", "", http.StatusOK, &out)
	return out.History, err
}

// verifyOne checks that the instance's newest history record is the
// change the worker counted last, with the status it expects.
func (w *worker) verifyOne(ctx context.Context, in *inst, status string) {
	h, err := w.history(ctx, in.id)
	if err != nil {
		w.failed(ctx, "history of %s: %v", in.id, err)
		return
	}
	if len(h) == 0 || h[len(h)-1].Seq != in.changes || h[len(h)-1].To != status {
		last := client.HistoryRecord{}
		if len(h) > 0 {
			last = h[len(h)-1]
		}
		w.failed(ctx, "history of %s ends with seq %d (%s), want seq %d (%s): a change was lost or doubled",
			in.id, last.Seq, last.To, in.changes, status)
	}
}

// verify checks every instance the worker still owns.
func (w *worker) verify(ctx context.Context) error {
	for _, in := range w.insts {
		w.verifyOne(ctx, in, in.status)
	}
	return ctx.Err()
}
