package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lucid-project/lucid/core/store"
)

// preferWait reads the wait preference of RFC 7240 (`Prefer: wait=10`:
// the client would rather the server answered when the request's work is
// done, within that many seconds). It returns how long to wait, cut to
// MaxWaitTimeout, or 0. A preference is a hint: one this server does not
// understand, or a malformed wait, is ignored, as the RFC asks, and the
// request is answered as if it had none.
func preferWait(h http.Header) time.Duration {
	for _, v := range h.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";") // parameters: none for wait
			name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			secs, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if err != nil || secs <= 0 {
				return 0
			}
			return min(time.Duration(secs)*time.Second, MaxWaitTimeout)
		}
	}
	return 0
}

// settle waits up to d for the instance of wrote, the record the
// request's own write left, to have no transition in flight and reports
// the settled record; false when it did not settle in time, went away,
// or the client left (the caller answers as without waiting). It is the
// long-poll's waiting (core/feed), and reads nothing while the node's
// view shows the action in flight or has not seen the write yet.
func (s *Server) settle(w http.ResponseWriter, r *http.Request, wrote store.Record, d time.Duration) (store.Record, bool) {
	if s.feed == nil {
		return store.Record{}, false
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	rec, err := s.feed.SettledSince(ctx, wrote.State.ID, wrote)
	return rec, err == nil
}

// preferenceApplied says which wait the answer honoured.
func preferenceApplied(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(d/time.Second)))
}
