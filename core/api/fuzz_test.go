package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
)

// The fuzz targets feed arbitrary requests to the API's request decoders.
// None may panic; every refusal must be a client error (400, 413 or 415,
// never a 500); and what is accepted must keep the decoders' promises and
// read the same when encoded again. Seeds are in testdata/fuzz/<target>
// (go test runs them, and any crash the fuzzer finds lands there as a
// regression test); `make test` fuzzes each target for a few seconds.

// clientError reports whether err is one writeError turns into a 4xx.
func clientError(err error) bool {
	return errors.Is(err, instance.ErrInvalid) || errors.Is(err, errTooLarge) || errors.Is(err, errUnsupportedMedia)
}

func postRequest(path string, body []byte, contentType string) (*httptest.ResponseRecorder, *http.Request) {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return httptest.NewRecorder(), r
}

// FuzzCreateBody: POST /v2.1/servers bodies.
func FuzzCreateBody(f *testing.F) {
	for _, seed := range []string{
		`{"server":{"name":"web-1","flavorRef":"m1.small","imageRef":"cirros"}}`,
		`{"server":{"name":"w","flavorRef":1,"imageRef":"http://h/v2.1/images/cirros","metadata":{"k":"v"},"min_count":"1","max_count":1,"networks":"none"}}`,
		`{"server":{"name":"w","flavorRef":"f","imageRef":"i","networks":[]}}`,
		`{"server":{"name":"w","metadata":{"":"x"}}}`, `{"server":null}`, `{"server":{}}`, `{"servers":{}}`,
		`{"server":{"name":"w"}} trailing`, `[]`, `null`, ``, `{"server":{"name":"\ud800"}}`,
	} {
		f.Add([]byte(seed), "application/json")
	}
	f.Add([]byte(`{"server":{}}`), "text/plain")
	s := New(nil, Options{})
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req, err := s.parseCreate(postRequest("/v2.1/servers", body, contentType))
		if err != nil {
			if !clientError(err) {
				t.Fatalf("refused with %v: not a client error", err)
			}
			return
		}
		if len(body) > maxBody {
			t.Fatalf("accepted a %d-byte body", len(body))
		}
		for _, ref := range []string{req.FlavorRef, req.ImageRef} {
			if strings.Contains(ref, "/") {
				t.Fatalf("reference %q still holds a link's path", ref)
			}
		}
		if len(req.Metadata) > maxMetadataItems {
			t.Fatalf("accepted %d metadata items", len(req.Metadata))
		}
		for k, v := range req.Metadata {
			if n := utf8.RuneCountInString(k); n == 0 || n > maxMetadataLength || utf8.RuneCountInString(v) > maxMetadataLength {
				t.Fatalf("accepted metadata %q: %q", k, v)
			}
		}
		// Encoded again, it reads the same.
		server := map[string]any{"name": req.Name, "flavorRef": req.FlavorRef, "imageRef": req.ImageRef}
		if req.Metadata != nil {
			server["metadata"] = req.Metadata
		}
		again, err := json.Marshal(map[string]any{"server": server})
		if err != nil {
			t.Fatal(err)
		}
		req2, err := s.parseCreate(postRequest("/v2.1/servers", again, "application/json"))
		if err != nil {
			t.Fatalf("%s was accepted as %+v, but %s is refused: %v", body, req, again, err)
		}
		req.RequestID, req2.RequestID = "", ""
		if !reflect.DeepEqual(req, req2) {
			t.Fatalf("%s reads as %+v, encoded again as %+v", body, req, req2)
		}
	})
}

// parseAction is serverAction's reading of a body: one key naming the
// action, its value read by that action's parser.
func parseAction(w http.ResponseWriter, r *http.Request) (instance.Action, lifecycle.ActionRequest, error) {
	var body map[string]json.RawMessage
	if err := decode(w, r, &body); err != nil {
		return "", lifecycle.ActionRequest{}, err
	}
	if len(body) != 1 {
		return "", lifecycle.ActionRequest{}, instance.ErrInvalid
	}
	for key, raw := range body {
		ab, ok := actionBodies[key]
		if !ok {
			return "", lifecycle.ActionRequest{}, instance.ErrInvalid
		}
		a, req, err := ab.parse(raw)
		if err != nil {
			return "", lifecycle.ActionRequest{}, errors.Join(instance.ErrInvalid, err)
		}
		return a, req, nil
	}
	panic("unreachable")
}

// FuzzActionBody: POST /v2.1/servers/{id}/action bodies.
func FuzzActionBody(f *testing.F) {
	for _, seed := range []string{
		`{"os-stop":null}`, `{"os-start":{}}`, `{"reboot":{"type":"HARD"}}`, `{"reboot":{"type":"soft"}}`,
		`{"rebuild":{"imageRef":"cirros","name":"new"}}`, `{"rebuild":{"imageRef":7}}`, `{"resize":{"flavorRef":"m1.medium"}}`,
		`{"confirmResize":null}`, `{"revertResize":null}`, `{"os-stop":null,"os-start":null}`, `{"evacuate":{}}`,
		`{"resize":{"flavorRef":"http://h/flavors/2","OS-DCF:diskConfig":"AUTO"}}`, `{"reboot":null}`, `{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, req, err := parseAction(postRequest("/v2.1/servers/x/action", body, "application/json"))
		if err != nil {
			if !clientError(err) {
				t.Fatalf("refused with %v: not a client error", err)
			}
			return
		}
		if _, err := instance.Lookup(a); err != nil {
			t.Fatalf("accepted as action %q: %v", a, err)
		}
		var again map[string]any
		switch a {
		case instance.ActionRebuild:
			if req.ImageRef == "" || strings.Contains(req.ImageRef, "/") {
				t.Fatalf("rebuild accepted with imageRef %q", req.ImageRef)
			}
			again = map[string]any{"rebuild": map[string]any{"imageRef": req.ImageRef, "name": req.Name}}
		case instance.ActionResize:
			if req.FlavorRef == "" || strings.Contains(req.FlavorRef, "/") {
				t.Fatalf("resize accepted with flavorRef %q", req.FlavorRef)
			}
			again = map[string]any{"resize": map[string]any{"flavorRef": req.FlavorRef}}
		default:
			if req != (lifecycle.ActionRequest{}) {
				t.Fatalf("%s accepted with arguments %+v", a, req)
			}
			return
		}
		b, _ := json.Marshal(again)
		a2, req2, err := parseAction(postRequest("/v2.1/servers/x/action", b, "application/json"))
		if err != nil || a2 != a || req2 != req {
			t.Fatalf("%s reads as %s %+v, encoded again as %s %+v (%v)", body, a, req, a2, req2, err)
		}
	})
}

// FuzzServerListQuery: the query of GET /v2.1/servers[/detail] and
// /v1/instances, and the page it selects from a fixed set of records.
func FuzzServerListQuery(f *testing.F) {
	for _, seed := range []string{
		"", "name=web&status=ACTIVE&status=shutoff", "flavor=small&image=http://x/images/i1", "host=n2&changes-since=2026-01-01T00:03:00",
		"sort_key=display_name&sort_dir=asc&sort_key=uuid", "limit=2&marker=d", "limit=-1", "limit=99999999999999999999",
		"name=(", "sort_dir=asc", "sort_key=launched_at", "changes-since=yesterday", "bogus=1", "all_tenants=1&project_id=p",
		"name=%ff%fe", "status=&limit=0", "marker=nope",
	} {
		f.Add(seed)
	}
	catalog := &lifecycle.Catalog{
		Flavors: []instance.Flavor{{ID: "f1", Name: "tiny"}, {ID: "f2", Name: "small"}},
		Images:  []lifecycle.CatalogImage{{Image: instance.Image{ID: "i1", Name: "cirros"}}},
	}
	all := []struct {
		id, name string
		created  int
		vm       instance.VMState
		flavor   string
		image    string
		node     string
	}{
		{"a", "web-1", 1, instance.Active, "f1", "i1", "n1"}, {"b", "web-2", 2, instance.Stopped, "f2", "i1", "n1"},
		{"c", "db-1", 3, instance.Active, "f1", "i2", "n2"}, {"d", "Web-3", 4, instance.Error, "f2", "i2", "n2"},
		{"e", "cache", 4, instance.Active, "f1", "i1", "n1"},
	}
	recs := make([]store.Record, 0, len(all))
	for _, r := range all {
		recs = append(recs, rec(r.id, r.name, r.created, r.vm, r.flavor, r.image, r.node))
	}
	const maxLimit = 3
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // as r.URL.Query() does: bad pairs are dropped
		sq, err := parseServerQuery(q, catalog, maxLimit)
		if err != nil {
			if !errors.Is(err, instance.ErrInvalid) {
				t.Fatalf("refused with %v: not ErrInvalid", err)
			}
			return
		}
		if sq.limit < 0 || sq.limit > maxLimit {
			t.Fatalf("limit %d outside 0..%d", sq.limit, maxLimit)
		}
		page, _, err := sq.page(recs)
		if err != nil {
			if !errors.Is(err, instance.ErrInvalid) || sq.marker == "" {
				t.Fatalf("page: %v", err)
			}
			return
		}
		if len(page) > sq.limit {
			t.Fatalf("%d records on a page of %d", len(page), sq.limit)
		}
		seen := map[string]bool{}
		for i, r := range page {
			if !sq.match(&r) || seen[r.State.ID] || r.State.ID == sq.marker || i > 0 && sq.compare(&page[i-1], &r) > 0 {
				t.Fatalf("page %v: %s does not match, repeats, is the marker or is out of order", ids(page), r.State.ID)
			}
			seen[r.State.ID] = true
		}
	})
}

// FuzzImageListQuery: the queries of Nova's image proxy and Glance's
// image list, through the handler with a real lifecycle catalog: 200 or
// 400, always a JSON body.
func FuzzImageListQuery(f *testing.F) {
	for _, seed := range []string{
		"", "name=cirros", "status=ACTIVE&minRam=512&minDisk=1", "limit=1&marker=cirros", "minRam=-1", "os_hidden=maybe",
		"visibility=private", "visibility=nobody", "status=active&visibility=all&os_hidden=false", "marker=nope", "limit=x",
	} {
		f.Add(seed)
	}
	svc := lifecycle.NewService(lifecycle.Config{Catalog: &lifecycle.Catalog{Images: []lifecycle.CatalogImage{
		{Image: instance.Image{ID: "cirros", Name: "cirros"}, MinRAMMB: 64},
		{Image: instance.Image{ID: "debian-12", Name: "Debian 12"}, MinDiskGB: 2},
	}}})
	s := New(svc, Options{MaxLimit: 1})
	f.Fuzz(func(t *testing.T, raw string) {
		for _, path := range []string{"/v2.1/images", "/v2.1/images/detail", "/image/v2/images"} {
			u := &url.URL{Path: path, RawQuery: raw}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.URL, r.RequestURI = u, u.RequestURI()
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
				t.Fatalf("GET %s?%s: %d %s", path, raw, w.Code, w.Body)
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("GET %s?%s: body is not JSON: %q", path, raw, w.Body)
			}
			if w.Code == http.StatusOK {
				var body struct{ Images []json.RawMessage }
				if json.Unmarshal(w.Body.Bytes(), &body); len(body.Images) > 1 {
					t.Fatalf("GET %s?%s: %d images on a page of at most 1", path, raw, len(body.Images))
				}
			}
		}
	})
}
