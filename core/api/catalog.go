package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
)

// The operator's flavor and image catalogs, served three ways: as Nova's
// /v2.1/flavors, as Nova's 2.1 image proxy /v2.1/images (what openstack
// looks images up with when it has no catalog, --os-auth-type none), and
// as a read-only Glance v2 subset under /image for clients that find the
// image service in a catalog. Entries keep the operator's order; lookups
// by id in a path match the id only, as in Nova and Glance (a name is
// looked up with ?name=).

// pageOf cuts one page out of ids (in catalog order) after marker: the
// indexes of at most limit entries, and whether more follow. A marker
// that is no entry's id is ErrInvalid.
func pageOf(n int, id func(int) string, keep func(int) bool, marker string, limit int) ([]int, bool, error) {
	start := 0
	if marker != "" {
		i := -1
		for j := range n {
			if id(j) == marker {
				i = j
				break
			}
		}
		if i < 0 {
			return nil, false, fmt.Errorf("%w: marker [%s] not found", instance.ErrInvalid, marker)
		}
		start = i + 1
	}
	var out []int
	for j := start; j < n; j++ {
		if !keep(j) {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, j)
	}
	return out, false, nil
}

// intParam reads an optional non-negative integer parameter.
func intParam(q url.Values, key string) (int, bool, error) {
	v, ok := single(q, key)
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("%w: %s must be an integer of at least 0, not %q", instance.ErrInvalid, key, v)
	}
	return n, true, nil
}

func (s *Server) listFlavors(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := onlyParams(q, []string{"is_public", "minRam", "minDisk", "limit", "marker"}); err != nil {
			s.writeError(w, r, err)
			return
		}
		minRAM, _, err := intParam(q, "minRam")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		minDisk, _, err := intParam(q, "minDisk")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// Every flavor is public: is_public=false lists none, anything
		// else (true, none, all) lists them all.
		private := false
		if v, ok := single(q, "is_public"); ok {
			switch strings.ToLower(v) {
			case "false", "f", "0", "no", "off":
				private = true
			case "true", "t", "1", "yes", "on", "none", "all":
			default:
				s.writeError(w, r, fmt.Errorf("%w: is_public must be true, false or none, not %q", instance.ErrInvalid, v))
				return
			}
		}
		limit, marker, err := parsePage(q, s.maxLimit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		flavors := s.lc.Catalog().Flavors
		idx, more, err := pageOf(len(flavors), func(i int) string { return flavors[i].ID }, func(i int) bool {
			return !private && flavors[i].RAMMB >= minRAM && flavors[i].DiskGB >= minDisk
		}, marker, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]any, 0, len(idx))
		for _, i := range idx {
			if detail {
				out = append(out, flavorDetail(r, flavors[i]))
			} else {
				out = append(out, map[string]any{"id": flavors[i].ID, "name": flavors[i].Name, "links": selfAndBookmark(r, "flavors", flavors[i].ID)})
			}
		}
		body := map[string]any{"flavors": out}
		if more && len(idx) > 0 {
			body["flavors_links"] = nextLink(r, flavors[idx[len(idx)-1]].ID)
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func (s *Server) showFlavor(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.flavor(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"flavor": flavorDetail(r, f)})
	}
}

// flavorExtraSpecs answers a flavor's extra specs: Lucid's flavors have
// none. (openstack flavor list asks for them, flavor by flavor.)
func (s *Server) flavorExtraSpecs(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.flavor(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"extra_specs": map[string]string{}})
	}
}

// flavor finds the flavor the path names by id, or answers 404.
func (s *Server) flavor(w http.ResponseWriter, r *http.Request) (instance.Flavor, bool) {
	id := r.PathValue("id")
	for _, f := range s.lc.Catalog().Flavors {
		if f.ID == id {
			return f, true
		}
	}
	s.writeError(w, r, fmt.Errorf("%w: flavor %s could not be found", errNoRoute, id))
	return instance.Flavor{}, false
}

// flavorDetail is Nova's flavor view. Lucid's flavors have no swap and
// no ephemeral disk, are public and enabled.
func flavorDetail(r *http.Request, f instance.Flavor) map[string]any {
	return map[string]any{
		"id": f.ID, "name": f.Name, "vcpus": f.VCPUs, "ram": f.RAMMB, "disk": f.DiskGB,
		"swap": "", "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": false,
		"os-flavor-access:is_public": true, "rxtx_factor": 1.0,
		"links": selfAndBookmark(r, "flavors", f.ID),
	}
}

// imageFilter is the part of an image list query both image APIs share.
type imageFilter struct {
	name            string
	hasName         bool
	minRAM, minDisk int
	// nothing is set by a filter no catalog image matches: they are all
	// active, public and visible.
	nothing bool
}

func (f imageFilter) keep(i lifecycle.CatalogImage) bool {
	return !f.nothing && (!f.hasName || i.Name == f.name) && i.MinRAMMB >= f.minRAM && i.MinDiskGB >= f.minDisk
}

// boolParam reads an optional boolean parameter.
func boolParam(q url.Values, key string) (bool, error) {
	v, ok := single(q, key)
	if !ok {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s must be true or false, not %q", instance.ErrInvalid, key, v)
	}
	return b, nil
}

func (s *Server) listImages(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		// os_hidden is Glance's; openstacksdk sends it here when it looks
		// for an image it did not find among the visible ones.
		if err := onlyParams(q, []string{"name", "status", "minRam", "minDisk", "limit", "marker", "os_hidden"}); err != nil {
			s.writeError(w, r, err)
			return
		}
		var f imageFilter
		var err error
		f.name, f.hasName = single(q, "name")
		if f.minRAM, _, err = intParam(q, "minRam"); err == nil {
			f.minDisk, _, err = intParam(q, "minDisk")
		}
		var hidden bool
		if err == nil {
			hidden, err = boolParam(q, "os_hidden")
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if v, ok := single(q, "status"); hidden || ok && !strings.EqualFold(v, "ACTIVE") {
			f.nothing = true
		}
		s.writeImages(w, r, f, detail)
	}
}

func (s *Server) writeImages(w http.ResponseWriter, r *http.Request, f imageFilter, detail bool) {
	limit, marker, err := parsePage(r.URL.Query(), s.maxLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	images := s.lc.Catalog().Images
	idx, more, err := pageOf(len(images), func(i int) string { return images[i].ID }, func(i int) bool { return f.keep(images[i]) }, marker, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]any, 0, len(idx))
	for _, i := range idx {
		if detail {
			out = append(out, s.imageDetail(r, images[i]))
		} else {
			out = append(out, map[string]any{"id": images[i].ID, "name": images[i].Name, "links": imageLinks(r, images[i].ID)})
		}
	}
	body := map[string]any{"images": out}
	if more && len(idx) > 0 {
		body["images_links"] = nextLink(r, images[idx[len(idx)-1]].ID)
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) showImage(w http.ResponseWriter, r *http.Request) {
	if img, ok := s.image(r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"image": s.imageDetail(r, img)})
		return
	}
	s.writeError(w, r, fmt.Errorf("%w: image %s could not be found", errNoRoute, r.PathValue("id")))
}

func (s *Server) image(r *http.Request) (lifecycle.CatalogImage, bool) {
	id := r.PathValue("id")
	for _, i := range s.lc.Catalog().Images {
		if i.ID == id {
			return i, true
		}
	}
	return lifecycle.CatalogImage{}, false
}

// imageLinks are Nova's image links: self, bookmark, and the image in
// the Glance subset as the alternate.
func imageLinks(r *http.Request, id string) []link {
	return append(selfAndBookmark(r, "images", id),
		link{Rel: "alternate", Type: "application/vnd.openstack.image", Href: baseURL(r) + "/image/v2/images/" + url.PathEscape(id)})
}

// imageDetail is Nova's image proxy view.
func (s *Server) imageDetail(r *http.Request, i lifecycle.CatalogImage) map[string]any {
	return map[string]any{
		"id": i.ID, "name": i.Name, "status": "ACTIVE", "progress": 100,
		"minRam": i.MinRAMMB, "minDisk": i.MinDiskGB,
		"created": timestamp(s.catalogTime), "updated": timestamp(s.catalogTime),
		"metadata": map[string]any{},
		"links":    imageLinks(r, i.ID),
	}
}

func (s *Server) glanceVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
		"id": "v2.0", "status": "CURRENT",
		"links": []link{{Rel: "self", Href: baseURL(r) + "/image/v2/"}},
	}}})
}

func (s *Server) glanceListImages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyParams(q, []string{"name", "status", "visibility", "os_hidden", "limit", "marker"}); err != nil {
		s.writeError(w, r, err)
		return
	}
	var f imageFilter
	f.name, f.hasName = single(q, "name")
	hidden, err := boolParam(q, "os_hidden")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v, ok := single(q, "status"); hidden || ok && v != "active" {
		f.nothing = true
	}
	if v, ok := single(q, "visibility"); ok {
		switch v {
		case "public", "all":
		case "private", "shared", "community":
			f.nothing = true
		default:
			s.writeError(w, r, fmt.Errorf("%w: visibility must be public, private, shared, community or all, not %q", instance.ErrInvalid, v))
			return
		}
	}
	limit, marker, err := parsePage(q, s.maxLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	images := s.lc.Catalog().Images
	idx, more, err := pageOf(len(images), func(i int) string { return images[i].ID }, func(i int) bool { return f.keep(images[i]) }, marker, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]any, 0, len(idx))
	for _, i := range idx {
		out = append(out, s.glanceImage(images[i]))
	}
	body := map[string]any{"images": out, "first": "/v2/images", "schema": "/v2/schemas/images"}
	if more && len(idx) > 0 {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("marker", images[idx[len(idx)-1]].ID)
		body["next"] = "/v2/images?" + nq.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) glanceShowImage(w http.ResponseWriter, r *http.Request) {
	if img, ok := s.image(r); ok {
		writeJSON(w, http.StatusOK, s.glanceImage(img))
		return
	}
	s.writeError(w, r, fmt.Errorf("%w: image %s could not be found", errNoRoute, r.PathValue("id")))
}

// glanceImage is Glance v2's image view of a catalog entry: public,
// active, bare; Lucid does not know its size or checksum.
func (s *Server) glanceImage(i lifecycle.CatalogImage) map[string]any {
	self := "/v2/images/" + url.PathEscape(i.ID)
	return map[string]any{
		"id": i.ID, "name": i.Name, "status": "active", "visibility": "public", "protected": false, "os_hidden": false,
		"disk_format": i.DiskFormat, "container_format": "bare", "min_ram": i.MinRAMMB, "min_disk": i.MinDiskGB,
		"size": nil, "virtual_size": nil, "checksum": nil, "os_hash_algo": nil, "os_hash_value": nil,
		"owner": s.project, "tags": []string{},
		"created_at": timestamp(s.catalogTime), "updated_at": timestamp(s.catalogTime),
		"self": self, "file": self + "/file", "schema": "/v2/schemas/image",
	}
}
