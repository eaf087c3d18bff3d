package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lucid-project/lucid/core/identity"
	"github.com/lucid-project/lucid/core/instance"
)

// The Keystone v3 subset at /identity/v3: version discovery, tokens by
// password or by token, project-scoped, their validation and revocation,
// and a catalog whose compute, image and identity endpoints are this
// Lucid, as the client reached it. Users and projects have their name as
// their id, in the one domain "Default" (id "default").

const (
	domainID   = "default"
	domainName = "Default"
	region     = "RegionOne"
)

// identityVersion is Keystone v3's version document.
func identityVersion(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
		"links": []any{map[string]string{"rel": "self", "href": baseURL(r) + "/identity/v3/"}},
		"media-types": []any{map[string]string{"base": "application/json",
			"type": "application/vnd.openstack.identity-v3+json"}},
	}
}

func (s *Server) identityVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{identityVersion(r)}}})
}

func (s *Server) identityV3(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": identityVersion(r)})
}

// authRequest is the body of POST /auth/tokens.
type authRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User struct {
					ID       string  `json:"id"`
					Name     string  `json:"name"`
					Password string  `json:"password"`
					Domain   *domain `json:"domain"`
				} `json:"user"`
			} `json:"password"`
			Token *struct {
				ID string `json:"id"`
			} `json:"token"`
		} `json:"identity"`
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

type domain struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// checkDomain accepts the one domain Lucid has, by id or name; nil means
// the default.
func checkDomain(d *domain, what string) error {
	if d == nil || d.ID == domainID || d.Name == domainName || d.ID == "" && d.Name == "" {
		return nil
	}
	return fmt.Errorf("%w: %s domain %q: Lucid has only the domain %q (id %q)", errUnauthorized, what, d.Name+d.ID, domainName, domainID)
}

// scopeProject reads a project scope; "" when there is none (the user's
// only project is used). Domain and system scopes are refused: Lucid
// issues project-scoped tokens only.
func scopeProject(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" || strings.Trim(string(raw), `" `) == "unscoped" {
		return "", nil
	}
	var sc struct {
		Project *struct {
			ID     string  `json:"id"`
			Name   string  `json:"name"`
			Domain *domain `json:"domain"`
		} `json:"project"`
		Domain json.RawMessage `json:"domain"`
		System json.RawMessage `json:"system"`
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		return "", fmt.Errorf("%w: auth.scope must be an object: %v", instance.ErrInvalid, err)
	}
	if sc.Project == nil {
		return "", fmt.Errorf("%w: Lucid issues project-scoped tokens only; scope to a project", errUnauthorized)
	}
	if err := checkDomain(sc.Project.Domain, "project"); err != nil {
		return "", err
	}
	if sc.Project.ID != "" {
		return sc.Project.ID, nil
	}
	if sc.Project.Name == "" {
		return "", fmt.Errorf("%w: auth.scope.project needs an id or a name", instance.ErrInvalid)
	}
	return sc.Project.Name, nil
}

// issueToken is POST /auth/tokens: the password method (user by name or
// id, in the default domain) or the token method, scoped to a project.
// 201 with the token in X-Subject-Token and its body, catalog included.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	id := req.Auth.Identity
	project, err := scopeProject(req.Auth.Scope)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var token string
	var p identity.Principal
	switch {
	case len(id.Methods) != 1:
		err = fmt.Errorf("%w: auth.identity.methods must name one method, password or token; got %q", instance.ErrInvalid, id.Methods)
	case id.Methods[0] == "password" && id.Password != nil:
		u := id.Password.User
		name := u.Name
		if name == "" {
			name = u.ID
		}
		if err = checkDomain(u.Domain, "user"); err == nil {
			token, p, err = s.auth.Password(r.Context(), name, u.Password, project)
		}
	case id.Methods[0] == "token" && id.Token != nil:
		token, p, err = s.auth.Rescope(r.Context(), id.Token.ID, project)
	default:
		err = fmt.Errorf("%w: auth.identity must carry the %q object its method names; Lucid supports password and token", instance.ErrInvalid, strings.Join(id.Methods, ""))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("X-Subject-Token", token)
	writeJSON(w, http.StatusCreated, map[string]any{"token": tokenBody(r, token, p, true)})
}

// tokenBody is Keystone's token view. roles lists the implied roles too,
// as Keystone does (admin implies member implies reader).
func tokenBody(r *http.Request, token string, p identity.Principal, catalog bool) map[string]any {
	roles := []any{}
	for _, role := range []identity.Role{identity.Admin, identity.Member, identity.Reader} {
		if rank(p.Role) >= rank(role) {
			roles = append(roles, map[string]string{"id": string(role), "name": string(role)})
		}
	}
	dom := map[string]string{"id": domainID, "name": domainName}
	sum := sha256.Sum256([]byte(token))
	b := map[string]any{
		"methods":    p.Methods,
		"user":       map[string]any{"id": p.User, "name": p.User, "domain": dom, "password_expires_at": nil},
		"project":    map[string]any{"id": p.Project, "name": p.Project, "domain": dom},
		"roles":      roles,
		"is_domain":  false,
		"audit_ids":  []string{base64.RawURLEncoding.EncodeToString(sum[:16])},
		"issued_at":  keystoneTime(p.Issued),
		"expires_at": keystoneTime(p.Expires),
	}
	if catalog {
		b["catalog"] = serviceCatalog(r)
	}
	return b
}

func rank(r identity.Role) int {
	switch r {
	case identity.Admin:
		return 3
	case identity.Member:
		return 2
	case identity.Reader:
		return 1
	}
	return 0
}

func keystoneTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// serviceCatalog points compute, image and identity at this Lucid, at the
// address the client used.
func serviceCatalog(r *http.Request) []any {
	base := baseURL(r)
	entry := func(typ, name, path string) map[string]any {
		return map[string]any{"type": typ, "name": name, "id": name, "endpoints": []any{map[string]any{
			"id": name + "-public", "interface": "public", "region": region, "region_id": region, "url": base + path,
		}}}
	}
	return []any{entry("compute", "nova", "/v2.1"), entry("image", "glance", "/image"), entry("identity", "keystone", "/identity/v3")}
}

// subject validates the X-Subject-Token of a GET, HEAD or DELETE of
// /auth/tokens. Anyone may ask about their own token; an admin about any.
// An invalid subject is 404, as in Keystone.
func (s *Server) subject(r *http.Request) (string, identity.Principal, error) {
	token := r.Header.Get("X-Subject-Token")
	if token == "" {
		return "", identity.Principal{}, fmt.Errorf("%w: X-Subject-Token names the token to check", instance.ErrInvalid)
	}
	caller := principal(r)
	p, err := s.auth.Validate(r.Context(), token)
	if err != nil {
		return "", identity.Principal{}, fmt.Errorf("%w: %v", instance.ErrNotFound, err)
	}
	if !caller.Admin() && token != r.Header.Get("X-Auth-Token") {
		return "", identity.Principal{}, fmt.Errorf("%w: only an admin may check another user's token", errForbidden)
	}
	return token, p, nil
}

func (s *Server) validateToken(w http.ResponseWriter, r *http.Request) {
	token, p, err := s.subject(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("X-Subject-Token", token)
	_, nocatalog := r.URL.Query()["nocatalog"]
	writeJSON(w, http.StatusOK, map[string]any{"token": tokenBody(r, token, p, !nocatalog)})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	token, _, err := s.subject(r)
	if err == nil {
		err = s.auth.Revoke(r.Context(), token)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) authCatalog(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"catalog": serviceCatalog(r),
		"links": map[string]any{"self": baseURL(r) + r.URL.Path, "previous": nil, "next": nil}})
}

// authProjects lists the projects the caller's user may scope to.
func (s *Server) authProjects(w http.ResponseWriter, r *http.Request) {
	names, err := s.auth.ProjectsOf(r.Context(), principal(r).User)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]any, 0, len(names))
	for _, n := range names {
		out = append(out, map[string]any{"id": n, "name": n, "domain_id": domainID, "enabled": true, "is_domain": false,
			"parent_id": domainID, "description": "", "tags": []string{},
			"links": map[string]string{"self": baseURL(r) + "/identity/v3/projects/" + n}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": out,
		"links": map[string]any{"self": baseURL(r) + r.URL.Path, "previous": nil, "next": nil}})
}
