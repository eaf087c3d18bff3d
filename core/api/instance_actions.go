package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/lucid-project/lucid/core/instance"
)

// Nova's instance actions (os-instance-actions), derived from history:
// one action per request id, one event per step of the action. History
// outlives the instance, so a deleted server's actions are still listed.

// instanceAction is Nova's instanceAction view.
type instanceAction struct {
	Action       string        `json:"action"`
	InstanceUUID string        `json:"instance_uuid"`
	Message      *string       `json:"message"`
	ProjectID    string        `json:"project_id"`
	RequestID    string        `json:"request_id"`
	StartTime    string        `json:"start_time"`
	UserID       string        `json:"user_id"`
	Events       []actionEvent `json:"events,omitempty"`
}

// actionEvent is one step: finish_time and result are null while it runs.
type actionEvent struct {
	Event      string  `json:"event"`
	StartTime  string  `json:"start_time"`
	FinishTime *string `json:"finish_time"`
	Result     *string `json:"result"`
}

// novaActions maps Lucid's actions to Nova's action names where they
// differ: Nova has one reboot action for both types.
var novaActions = map[instance.Action]string{instance.ActionHardReboot: "reboot"}

// actionTime is Nova's instance action time format, in UTC, to the
// microsecond so that events order.
func actionTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// derivedAction is the history of one request, read as steps.
type derivedAction struct {
	action    instance.Action
	requestID string
	user      string
	start     time.Time
	message   string
	events    []derivedEvent
	open      *time.Time // start of the step running, if any
}

type derivedEvent struct {
	name   string
	start  time.Time
	finish *time.Time
	failed bool
}

// stepName names the n-th step of the action by its driver operation.
func (d *derivedAction) stepName(n int) string {
	if spec, err := instance.Lookup(d.action); err == nil && n < len(spec.Steps) {
		return string(spec.Steps[n].Op)
	}
	return fmt.Sprintf("step_%d", n+1)
}

// close ends the running step at t.
func (d *derivedAction) close(t time.Time, failed bool) {
	start := t
	if d.open != nil {
		start = *d.open
	}
	d.events = append(d.events, derivedEvent{name: d.stepName(len(d.events)), start: start, finish: &t, failed: failed})
	d.open = nil
}

// deriveActions reads history as actions, oldest first. A record that
// starts an action (see starts) opens its first step; any other record
// (the driver's, the policy's, the reconciler's) ends the open step,
// failed when it carries a message (the fault), and the next step starts
// when the record moves to it. A step still open
// when another request's record arrives was pre-empted (by a delete).
// inFlight is the instance's transition, nil if none or if it is gone: an
// action that wrote no record yet (confirmResize shows no step) is listed
// from it.
func deriveActions(h []instance.HistoryRecord, inFlight *instance.Transition) []*derivedAction {
	var out []*derivedAction
	byReq := map[string]*derivedAction{}
	for _, rec := range h {
		d := byReq[rec.RequestID]
		if d == nil {
			d = &derivedAction{action: rec.Action, requestID: rec.RequestID, user: rec.User, start: rec.At}
			byReq[rec.RequestID] = d
			out = append(out, d)
		}
		if d.user == "" {
			d.user = rec.User
		}
		if starts(rec, len(d.events) == 0 && d.open == nil) {
			for _, other := range out {
				if other != d && other.open != nil {
					other.close(rec.At, true)
					other.message = fmt.Sprintf("pre-empted by %s (request %s)", rec.Action, rec.RequestID)
				}
			}
			at := rec.At
			d.open = &at
			continue
		}
		failed := rec.Message != ""
		d.close(rec.At, failed)
		if failed {
			d.message = rec.Message
			continue
		}
		if spec, err := instance.Lookup(d.action); err == nil {
			if n := len(d.events); n < len(spec.Steps) && spec.Steps[n].Status == rec.To && rec.To != "" {
				at := rec.At
				d.open = &at
			}
		}
	}
	if t := inFlight; t != nil && byReq[t.RequestID] == nil {
		at := t.StepStartedAt
		out = append(out, &derivedAction{action: t.Action, requestID: t.RequestID, start: t.StartedAt, open: &at})
	}
	return out
}

// starts reports whether rec starts its action's first step rather than
// ending one: every record the API writes does, and so does the first
// record of an action someone else began (the reconciler enforcing the
// record) when it moves to the action's first status.
func starts(rec instance.HistoryRecord, first bool) bool {
	if rec.Cause == instance.CauseAPI {
		return true
	}
	spec, err := instance.Lookup(rec.Action)
	return first && err == nil && len(spec.Steps) > 0 && spec.Steps[0].Status != "" && spec.Steps[0].Status == rec.To
}

// view is the Nova view of d; events only when asked.
func (d *derivedAction) view(id, project, user string, events bool) instanceAction {
	name := string(d.action)
	if n, ok := novaActions[d.action]; ok {
		name = n
	}
	if d.user != "" {
		user = d.user
	}
	v := instanceAction{Action: name, InstanceUUID: id, ProjectID: project, RequestID: d.requestID, StartTime: actionTime(d.start), UserID: user}
	if d.message != "" {
		msg := d.message
		v.Message = &msg
	}
	if !events {
		return v
	}
	v.Events = []actionEvent{}
	all := d.events
	if d.open != nil {
		all = append(slices.Clone(all), derivedEvent{name: d.stepName(len(d.events)), start: *d.open})
	}
	for _, e := range all {
		ev := actionEvent{Event: e.name, StartTime: actionTime(e.start)}
		if e.finish != nil {
			f, result := actionTime(*e.finish), "Success"
			if e.failed {
				result = "Error"
			}
			ev.FinishTime, ev.Result = &f, &result
		}
		v.Events = append(v.Events, ev)
	}
	return v
}

// instanceActions reads the history of instance id and derives its
// actions; an id with no history and no record is ErrNotFound. It
// returns the project the instance belongs to.
func (s *Server) instanceActions(r *http.Request, id string) ([]*derivedAction, string, error) {
	rec, err := s.lc.Get(r.Context(), id)
	gone := errors.Is(err, instance.ErrNotFound)
	if err != nil && !gone {
		return nil, "", err
	}
	h, err := s.lc.History(r.Context(), id)
	if err != nil {
		return nil, "", err
	}
	if gone && len(h) == 0 {
		return nil, "", fmt.Errorf("%w: instance %s could not be found", instance.ErrNotFound, id)
	}
	project := s.project
	if !gone && rec.State.Project != "" {
		project = rec.State.Project
	} else if i := slices.IndexFunc(h, func(r instance.HistoryRecord) bool { return r.Project != "" }); i >= 0 {
		project = h[i].Project
	}
	if !visible(r, project) {
		return nil, "", notFound(id)
	}
	return deriveActions(h, rec.Transition), project, nil
}

func (s *Server) listInstanceActions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	acts, project, err := s.instanceActions(r, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]instanceAction, 0, len(acts))
	for i := len(acts) - 1; i >= 0; i-- { // newest first, as Nova
		out = append(out, acts[i].view(id, project, s.user, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"instanceActions": out})
}

func (s *Server) showInstanceAction(w http.ResponseWriter, r *http.Request) {
	id, req := r.PathValue("id"), r.PathValue("request")
	acts, project, err := s.instanceActions(r, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, a := range acts {
		if a.requestID == req {
			writeJSON(w, http.StatusOK, map[string]any{"instanceAction": a.view(id, project, s.user, true)})
			return
		}
	}
	s.writeError(w, r, fmt.Errorf("%w: Action for request_id %s on instance %s not found", instance.ErrNotFound, req, id))
}
