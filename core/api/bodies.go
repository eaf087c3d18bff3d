package api

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/lucid-project/lucid/core/store"
)

// bodiesLimit bounds the encoded-body cache by servers (about 1 KB each).
const bodiesLimit = 1 << 17

// serverBodies keeps each server's detailed body as encoding/json wrote it
// for the record at its revisions and for one variant of the request
// (base URL and the microversions that change a body): a listing splices
// these bytes instead of building and encoding a body per server, which
// was most of a listing's CPU once records were no longer decoded again
// (core/api/RATIONALE.md, "Listing"). The bytes are exactly encoding/json's
// for that body, so the answer is the one writeJSON would give.
//
// One variant per server is kept: a request of another variant replaces
// it. Entries of servers that are gone are dropped once the cache holds
// more than the instances listed plus a margin; beyond bodiesLimit an
// arbitrary eighth is dropped. The zero value is ready to use.
type serverBodies struct {
	mu sync.Mutex
	m  map[string]encodedBody
}

// encodedBody is a server's body for the record at StateRev and
// TransitionRev, in variant. b is never written after it is stored.
type encodedBody struct {
	stateRev, transitionRev int64
	variant                 string
	b                       []byte
}

// bodyVariant is what of r, besides the record, a detailed server body
// depends on: the links' base URL and the microversions that add keys.
func bodyVariant(r *http.Request) string {
	v := baseURL(r) + " "
	if atLeast(r, versionLocked) {
		v += "l"
	}
	if atLeast(r, versionDescription) {
		v += "d"
	}
	return v
}

// appendDetail appends rec's detailed body for r (variant is
// bodyVariant(r)) to buf, encoding it only when the cache has no body for
// rec's revisions and variant.
func (c *serverBodies) appendDetail(buf []byte, r *http.Request, variant string, rec *store.Record) ([]byte, error) {
	id := rec.State.ID
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && e.stateRev == rec.StateRev && e.transitionRev == rec.TransitionRev && e.variant == variant {
		return append(buf, e.b...), nil
	}
	b, err := json.Marshal(serverDetail(r, *rec))
	if err != nil {
		return buf, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]encodedBody)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= bodiesLimit {
		n := len(c.m) / 8
		for k := range c.m {
			if n == 0 {
				break
			}
			delete(c.m, k)
			n--
		}
	}
	c.m[id] = encodedBody{stateRev: rec.StateRev, transitionRev: rec.TransitionRev, variant: variant, b: b}
	c.mu.Unlock()
	return append(buf, b...), nil
}

// prune drops the bodies of servers not in all (every instance, as just
// listed) once the cache holds over 1,024 more than that.
func (c *serverBodies) prune(all []store.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) <= len(all)+1024 {
		return
	}
	live := make(map[string]struct{}, len(all))
	for i := range all {
		live[all[i].State.ID] = struct{}{}
	}
	for id := range c.m {
		if _, ok := live[id]; !ok {
			delete(c.m, id)
		}
	}
}

// writeServerDetails answers a detailed server list: the bytes
// writeJSON(w, 200, {"servers": [serverDetail...], "servers_links": next})
// would write, spliced from the bodies cache. next is nil when no more
// pages follow.
func (s *Server) writeServerDetails(w http.ResponseWriter, r *http.Request, page []store.Record, next []link) {
	variant := bodyVariant(r)
	buf := make([]byte, 0, 64+len(page)*1024)
	buf = append(buf, `{"servers":[`...)
	var err error
	for i := range page {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, err = s.bodies.appendDetail(buf, r, variant, &page[i]); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	buf = append(buf, ']')
	if next != nil {
		lb, err := json.Marshal(next)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		buf = append(buf, `,"servers_links":`...)
		buf = append(buf, lb...)
	}
	buf = append(buf, "}\n"...) // json.Encoder ends a value with a newline
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}
