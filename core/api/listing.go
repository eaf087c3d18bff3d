package api

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
)

// serverQuery is a parsed server list request: filters, sort order and
// page. /v2.1/servers[/detail] and /v1/instances take the same query.
type serverQuery struct {
	name         *regexp.Regexp
	statuses     []instance.Status // any of them; nil: no status filter
	image        string
	flavor       string
	host         string
	project      string
	user         string
	changesSince time.Time
	allTenants   bool
	only         string // the caller's project, when it may see no other
	order        []sortKey
	limit        int
	marker       string
}

// sortKey is one sort_key with its direction.
type sortKey struct {
	name string
	desc bool
	cmp  func(a, b *store.Record) int
}

// sortKeys are the sort_key values Lucid implements, Nova's names. Nova
// knows more (launched_at, key_name, …); asking for one of those is 400.
var sortKeys = map[string]func(a, b *store.Record) int{
	"created_at":   func(a, b *store.Record) int { return a.State.CreatedAt.Compare(b.State.CreatedAt) },
	"updated_at":   func(a, b *store.Record) int { return a.State.UpdatedAt.Compare(b.State.UpdatedAt) },
	"display_name": func(a, b *store.Record) int { return cmp.Compare(a.State.Name, b.State.Name) },
	"uuid":         func(a, b *store.Record) int { return cmp.Compare(a.State.ID, b.State.ID) },
	"host":         func(a, b *store.Record) int { return cmp.Compare(a.State.Node, b.State.Node) },
	"node":         func(a, b *store.Record) int { return cmp.Compare(a.State.Node, b.State.Node) },
	"vm_state":     func(a, b *store.Record) int { return cmp.Compare(a.State.VMState, b.State.VMState) },
	"task_state": func(a, b *store.Record) int {
		return cmp.Compare(instance.TaskState(a.Transition), instance.TaskState(b.Transition))
	},
	"power_state": func(a, b *store.Record) int {
		return cmp.Compare(instance.PowerCode(a.State.PowerState), instance.PowerCode(b.State.PowerState))
	},
	"image_ref":        func(a, b *store.Record) int { return cmp.Compare(a.State.Image.ID, b.State.Image.ID) },
	"instance_type_id": func(a, b *store.Record) int { return cmp.Compare(a.State.Flavor.ID, b.State.Flavor.ID) },
	"project_id":       func(a, b *store.Record) int { return cmp.Compare(a.State.Project, b.State.Project) },
	"user_id":          func(a, b *store.Record) int { return cmp.Compare(a.State.User, b.State.User) },
}

// serverParams are the query parameters a server list accepts. Any other
// is 400 naming it: a filter Lucid ignored would answer a question the
// client did not ask.
var serverParams = []string{"name", "status", "image", "flavor", "host", "changes-since", "project_id", "tenant_id",
	"user_id", "all_tenants", "limit", "marker", "sort_key", "sort_dir"}

// parseServerQuery reads a list request's query. Unknown parameters, an
// invalid regex, a bad limit, changes-since or sort_dir and an unknown
// sort_key are ErrInvalid; an unknown status is not (it matches nothing,
// as in Nova).
func parseServerQuery(q url.Values, catalog *lifecycle.Catalog, maxLimit int) (serverQuery, error) {
	var sq serverQuery
	if err := onlyParams(q, serverParams); err != nil {
		return sq, err
	}
	if v, ok := single(q, "name"); ok {
		re, err := regexp.Compile("(?i)" + v)
		if err != nil {
			return sq, fmt.Errorf("%w: name %q is not a valid regular expression: %v", instance.ErrInvalid, v, err)
		}
		sq.name = re
	}
	for _, st := range q["status"] {
		sq.statuses = append(sq.statuses, instance.Status(strings.ToUpper(strings.TrimSpace(st))))
	}
	if v, ok := single(q, "image"); ok {
		sq.image = lastSegment(v)
		if img, found := catalog.Image(sq.image); found {
			sq.image = img.ID
		}
	}
	if v, ok := single(q, "flavor"); ok {
		sq.flavor = lastSegment(v)
		if f, found := catalog.Flavor(sq.flavor); found {
			sq.flavor = f.ID
		}
	}
	sq.host, _ = single(q, "host")
	if v, ok := single(q, "project_id"); ok {
		sq.project = v
	}
	if v, ok := single(q, "tenant_id"); ok {
		sq.project = v
	}
	sq.user, _ = single(q, "user_id")
	if v, ok := single(q, "all_tenants"); ok {
		switch strings.ToLower(v) {
		case "1", "t", "true", "on", "y", "yes":
			sq.allTenants = true
		case "0", "f", "false", "off", "n", "no":
		default:
			return sq, fmt.Errorf("%w: all_tenants %q is not a boolean such as true or false", instance.ErrInvalid, v)
		}
	}
	if v, ok := single(q, "changes-since"); ok {
		t, err := parseTime(v)
		if err != nil {
			return sq, fmt.Errorf("%w: changes-since %q is not an ISO 8601 time such as 2026-01-02T15:04:05Z", instance.ErrInvalid, v)
		}
		sq.changesSince = t
	}
	order, err := parseSort(q)
	if err != nil {
		return sq, err
	}
	sq.order = order
	sq.limit, sq.marker, err = parsePage(q, maxLimit)
	return sq, err
}

// scope limits the list to what the caller may see, as Nova does: without
// all_tenants, the caller's own project (a project_id filter is replaced
// by it); all_tenants is an admin's, and lists every project (filtered by
// project_id if given). A non-admin asking for all_tenants is refused.
func (sq *serverQuery) scope(r *http.Request) error {
	p := principal(r)
	if !sq.allTenants {
		sq.project, sq.only = p.Project, p.Project
		return nil
	}
	if !p.Admin() {
		return fmt.Errorf("%w: all_tenants is for admins; user %s is %s in project %s", errForbidden, p.User, p.Role, p.Project)
	}
	return nil
}

// parsePage reads limit and marker: limit is a non-negative integer,
// capped at maxLimit; absent means maxLimit.
func parsePage(q url.Values, maxLimit int) (limit int, marker string, err error) {
	limit = maxLimit
	if v, ok := single(q, "limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "", fmt.Errorf("%w: limit must be an integer of at least 0, not %q", instance.ErrInvalid, v)
		}
		limit = min(n, maxLimit)
	}
	marker, _ = single(q, "marker")
	return limit, marker, nil
}

// parseSort reads sort_key/sort_dir pairs, as Nova: directions pair with
// keys in order, a missing direction is desc, and the default order is
// created_at desc. uuid in the first key's direction always breaks ties,
// so the order is total and paging by marker neither repeats nor skips.
func parseSort(q url.Values) ([]sortKey, error) {
	keys, dirs := q["sort_key"], q["sort_dir"]
	if len(dirs) > len(keys) {
		return nil, fmt.Errorf("%w: %d sort_dir values for %d sort_key values; give each sort_dir its sort_key", instance.ErrInvalid, len(dirs), len(keys))
	}
	if len(keys) == 0 {
		keys = []string{"created_at"}
	}
	var out []sortKey
	for i, k := range keys {
		c, ok := sortKeys[k]
		if !ok {
			names := make([]string, 0, len(sortKeys))
			for n := range sortKeys {
				names = append(names, n)
			}
			slices.Sort(names)
			return nil, fmt.Errorf("%w: sort_key %q is not supported; use one of %s", instance.ErrInvalid, k, strings.Join(names, ", "))
		}
		desc := true
		if i < len(dirs) {
			switch dirs[i] {
			case "asc":
				desc = false
			case "desc":
			default:
				return nil, fmt.Errorf("%w: sort_dir %q must be asc or desc", instance.ErrInvalid, dirs[i])
			}
		}
		out = append(out, sortKey{name: k, desc: desc, cmp: c})
	}
	if !slices.ContainsFunc(out, func(k sortKey) bool { return k.name == "uuid" }) {
		out = append(out, sortKey{name: "uuid", desc: out[0].desc, cmp: sortKeys["uuid"]})
	}
	return out, nil
}

func (sq serverQuery) compare(a, b *store.Record) int {
	for _, k := range sq.order {
		c := k.cmp(a, b)
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func (sq serverQuery) match(rec *store.Record) bool {
	st := &rec.State
	switch {
	case sq.name != nil && !sq.name.MatchString(st.Name),
		sq.statuses != nil && !slices.Contains(sq.statuses, rec.Status()),
		sq.image != "" && st.Image.ID != sq.image,
		sq.flavor != "" && st.Flavor.ID != sq.flavor,
		sq.host != "" && st.Node != sq.host,
		sq.project != "" && st.Project != sq.project,
		sq.user != "" && st.User != sq.user,
		!sq.changesSince.IsZero() && st.UpdatedAt.Before(sq.changesSince):
		return false
	}
	return true
}

// page sorts recs, skips to after the marker and returns at most limit
// matching records, and whether more match after them. The marker is
// found among all instances, not only the matching ones, so a page
// boundary survives the marker's instance changing status; an id that is
// no instance is ErrInvalid. It sorts pointers, not the records (each
// several hundred bytes), and copies only the page out.
func (sq serverQuery) page(recs []store.Record) ([]store.Record, bool, error) {
	ptrs := make([]*store.Record, 0, len(recs))
	for i := range recs {
		// Another project's instances are not there at all, not even as
		// a marker.
		if sq.only == "" || recs[i].State.Project == sq.only {
			ptrs = append(ptrs, &recs[i])
		}
	}
	slices.SortFunc(ptrs, sq.compare)
	start := 0
	if sq.marker != "" {
		i := slices.IndexFunc(ptrs, func(r *store.Record) bool { return r.State.ID == sq.marker })
		if i < 0 {
			return nil, false, fmt.Errorf("%w: marker [%s] not found", instance.ErrInvalid, sq.marker)
		}
		start = i + 1
	}
	var out []store.Record
	for _, rec := range ptrs[start:] {
		if !sq.match(rec) {
			continue
		}
		if len(out) == sq.limit {
			return out, true, nil
		}
		if out == nil {
			out = make([]store.Record, 0, min(sq.limit, len(ptrs)-start))
		}
		out = append(out, *rec)
	}
	return out, false, nil
}

// onlyParams fails on a query parameter not in allowed, naming it.
func onlyParams(q url.Values, allowed []string) error {
	var bad []string
	for k := range q {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: query parameter %s not supported; supported: %s", instance.ErrInvalid,
		strings.Join(quote(bad), ", "), strings.Join(allowed, ", "))
}

func quote(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// single returns a parameter's first value and whether it was given.
func single(q url.Values, key string) (string, bool) {
	vs, ok := q[key]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// lastSegment reduces a reference that may be a link to its id.
func lastSegment(ref string) string {
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		return ref[i+1:]
	}
	return ref
}

// parseTime reads an ISO 8601 time as OpenStack clients send it: with or
// without a zone (UTC then), with or without fractions, or a bare date.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time: %q", s)
}
