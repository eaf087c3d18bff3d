package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
)

// The native /v1 API shows what Nova's bodies have no words for: the
// transition in flight with its steps and current step, flags, the full
// fault, the node, the flavor and image as built, and history that
// outlives the instance. Its wire types are in core/api/client.

// nativeShow shows one instance. With ?wait=settled it is a long-poll: it
// answers as soon as the instance has no transition in flight (200, the
// same body), 404 once it is deleted, or, when timeout (default
// DefaultWaitTimeout, at most MaxWaitTimeout) passes first, the current
// view with its transition still set, for the client to ask again. The
// waiting is core/feed's: one watch per node, no polling.
func (s *Server) nativeShow(w http.ResponseWriter, r *http.Request) {
	wait, err := waitQuery(r.URL.Query())
	if err == nil && wait > 0 && s.feed == nil {
		err = fmt.Errorf("%w: wait: this server cannot wait for instances (no feed)", instance.ErrInvalid)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if wait == 0 {
		rec, err := s.lc.Get(r.Context(), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"instance": instanceView(rec)})
		return
	}
	// The answer may come up to wait from now: keep the server's write
	// timeout from cutting it off.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	rec, err := s.feed.Settled(ctx, id)
	switch {
	case r.Context().Err() != nil:
		return // the client left; nobody reads an answer
	case err != nil && rec.StateRev == 0:
		s.writeError(w, r, err) // gone (404), or nothing read
		return
	case err != nil && ctx.Err() == nil:
		// Waiting stopped early (the node is stopping, a re-read
		// failed): the current view, as at the timeout.
		s.logger.Warn("api: long-poll ended early", "instance", id, "request_id", requestID(r), "err", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"instance": instanceView(rec)})
}

// DefaultWaitTimeout is how long GET /v1/instances/{id}?wait=settled waits
// when the request names no timeout; MaxWaitTimeout is the most it waits
// whatever the request asks (a longer timeout is cut to it), so a waiter
// holds its connection for a bounded time.
const (
	DefaultWaitTimeout = 30 * time.Second
	MaxWaitTimeout     = 60 * time.Second
)

// waitQuery reads the long-poll parameters of GET /v1/instances/{id}:
// wait=settled, and timeout, a Go duration ("30s", "1m") above zero, cut
// to MaxWaitTimeout. It returns how long to wait, 0 for a plain GET. A
// timeout without wait, or a value it does not know, is ErrInvalid naming
// the parameter.
func waitQuery(q url.Values) (time.Duration, error) {
	wait, hasWait := q["wait"]
	timeout, hasTimeout := q["timeout"]
	switch {
	case !hasWait && !hasTimeout:
		return 0, nil
	case !hasWait:
		return 0, fmt.Errorf("%w: timeout: only a long-poll (wait=settled) takes a timeout", instance.ErrInvalid)
	case len(wait) != 1 || wait[0] != "settled":
		return 0, fmt.Errorf("%w: wait: %q is not a condition to wait for; the one there is is wait=settled", instance.ErrInvalid, strings.Join(wait, ","))
	case !hasTimeout:
		return DefaultWaitTimeout, nil
	case len(timeout) != 1:
		return 0, fmt.Errorf("%w: timeout: given %d times", instance.ErrInvalid, len(timeout))
	}
	d, err := time.ParseDuration(timeout[0])
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: timeout: %q is not a duration above zero, such as 30s", instance.ErrInvalid, timeout[0])
	}
	return min(d, MaxWaitTimeout), nil
}

// nativeList takes the query of the compute API's server list (filters,
// sort_key/sort_dir, limit and marker); "next" is the next page's URL
// while more remain.
func (s *Server) nativeList(w http.ResponseWriter, r *http.Request) {
	q, err := parseServerQuery(r.URL.Query(), s.lc.Catalog(), s.maxLimit)
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
	out := client.InstanceList{Instances: make([]client.Instance, len(page))}
	for i, rec := range page {
		out.Instances[i] = instanceView(rec)
	}
	if more && len(page) > 0 {
		out.Next = nextLink(r, page[len(page)-1].State.ID)[0].Href
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) nativeFlavors(w http.ResponseWriter, r *http.Request) {
	c := s.lc.Catalog()
	out := make([]client.Flavor, 0, len(c.Flavors))
	for _, f := range c.Flavors {
		out = append(out, flavorView(f))
	}
	writeJSON(w, http.StatusOK, map[string]any{"flavors": out})
}

func (s *Server) nativeImages(w http.ResponseWriter, r *http.Request) {
	c := s.lc.Catalog()
	out := make([]client.Image, 0, len(c.Images))
	for _, i := range c.Images {
		v := imageView(i.Image)
		v.MinRAMMB, v.MinDiskGB = i.MinRAMMB, i.MinDiskGB
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": out})
}

func instanceView(rec store.Record) client.Instance {
	st := rec.State
	v := client.Instance{
		ID: st.ID, Name: st.Name, Status: string(rec.Status()), VMState: string(st.VMState), PowerState: string(st.PowerState),
		TaskState: instance.TaskState(rec.Transition), Flavor: flavorView(st.Flavor), Image: imageView(st.Image),
		Node: st.Node, Driver: st.Driver, Project: st.Project, User: st.User, Metadata: st.Metadata,
		CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt,
	}
	if rec.Err != nil {
		v.Unreadable = rec.Err.Error()
		v.Fault = &client.Fault{Code: 500, Message: "the stored record cannot be read: " + rec.Err.Error()}
		return v
	}
	if st.OldFlavor != nil {
		f := flavorView(*st.OldFlavor)
		v.OldFlavor = &f
	}
	if f := st.Fault; f != nil {
		v.Fault = &client.Fault{Code: f.Code, Message: f.Message, At: f.At, During: string(f.During)}
	}
	for _, f := range st.Flags {
		v.Flags = append(v.Flags, client.Flag{Kind: f.Kind, Message: f.Message, Since: f.Since, Recorded: string(f.Recorded), Observed: f.Observed})
	}
	if t := rec.Transition; t != nil {
		tv := &client.Transition{
			Action: string(t.Action), RequestID: t.RequestID, Step: t.Step, Current: string(t.Current()),
			Origin: string(t.Origin), Target: string(t.Target), StartedAt: t.StartedAt, StepStartedAt: t.StepStartedAt,
			Attempt: t.Attempt, Node: t.Node, Name: t.Name, Steps: []string{},
		}
		for _, s := range t.Steps {
			tv.Steps = append(tv.Steps, string(s))
		}
		if t.Flavor != nil {
			f := flavorView(*t.Flavor)
			tv.Flavor = &f
		}
		if t.Image != nil {
			i := imageView(*t.Image)
			tv.Image = &i
		}
		v.Transition = tv
	}
	return v
}

func flavorView(f instance.Flavor) client.Flavor {
	return client.Flavor{ID: f.ID, Name: f.Name, VCPUs: f.VCPUs, RAMMB: f.RAMMB, DiskGB: f.DiskGB}
}

func imageView(i instance.Image) client.Image {
	return client.Image{ID: i.ID, Name: i.Name, Source: i.Source, DiskFormat: i.DiskFormat}
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
