package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/lucid-project/lucid/core/identity"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
)

// Authenticator is what the API needs from core/identity.
type Authenticator interface {
	Password(ctx context.Context, user, password, project string) (string, identity.Principal, error)
	Rescope(ctx context.Context, token, project string) (string, identity.Principal, error)
	Validate(ctx context.Context, token string) (identity.Principal, error)
	Revoke(ctx context.Context, token string) error
	ProjectsOf(ctx context.Context, user string) ([]string, error)
	KnownProject(project string) bool
}

var _ Authenticator = (*identity.Service)(nil)

type principalKey struct{}

// principal is who r speaks for: the token's user, project and role, or,
// with auth disabled, an admin of the configured default project.
func principal(r *http.Request) identity.Principal {
	p, _ := r.Context().Value(principalKey{}).(identity.Principal)
	return p
}

// scope is the project the caller may act in: "" for an admin (every
// project), else the token's project.
func scope(r *http.Request) string {
	if p := principal(r); !p.Admin() {
		return p.Project
	}
	return ""
}

// visible reports whether the caller may see an instance of project: an
// admin sees every project's, anyone else only its own.
func visible(r *http.Request, project string) bool {
	p := principal(r)
	return p.Admin() || p.Project == project
}

// public reports whether a request needs no token: the version documents
// clients read before they authenticate, asking for a token, and
// /metrics when the config opens it.
func (s *Server) public(r *http.Request) bool {
	if r.Method == http.MethodPost {
		return r.URL.Path == "/identity/v3/auth/tokens"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "", "/v2.1", "/image", "/identity", "/identity/v3":
		return true
	case "/metrics":
		return s.metricsPublic
	}
	return false
}

var (
	errUnauthorized = identity.ErrUnauthorized
	errForbidden    = identity.ErrForbidden
)

// authenticate decides who r speaks for and whether it may go on: a
// request without a valid token is 401 (unless public), /v1 and /metrics
// are an admin's, a reader may only read the compute API, and the
// /v2.1/{project_id}/… form must name the token's project, as in Nova.
// It returns r with its principal, or the error to answer.
func (s *Server) authenticate(r *http.Request, pathProject string) (*http.Request, error) {
	if s.auth == nil {
		p := identity.Principal{User: s.user, Project: s.project, Role: identity.Admin}
		return r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), nil
	}
	if s.public(r) {
		return r, nil
	}
	p, err := s.auth.Validate(r.Context(), r.Header.Get("X-Auth-Token"))
	if err != nil {
		return r, err
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/v1/") || path == "/v1" || path == "/metrics":
		if !p.Admin() {
			return r, fmt.Errorf("%w: %s is for admins; user %s is %s in project %s", errForbidden, path, p.User, p.Role, p.Project)
		}
	case isCompute(path):
		if pathProject != "" && pathProject != p.Project {
			return r, fmt.Errorf("%w: Malformed request URL: URL's project_id '%s' doesn't match Context's project_id '%s'", instance.ErrInvalid, pathProject, p.Project)
		}
		if !p.MayWrite() && r.Method != http.MethodGet && r.Method != http.MethodHead {
			return r, fmt.Errorf("%w: user %s is a reader in project %s and may not %s %s", errForbidden, p.User, p.Project, r.Method, path)
		}
	}
	return r, nil
}

// actionRequest is the caller's part of an action request: who asks, and
// the project the instance must belong to (none for an admin).
func actionRequest(r *http.Request) lifecycle.ActionRequest {
	p := principal(r)
	return lifecycle.ActionRequest{RequestID: requestID(r), User: p.User, Project: scope(r)}
}

// notFound is the answer for an instance the caller may not see: the
// same as for one that does not exist, so ids of other projects leak
// nothing.
func notFound(id string) error {
	return fmt.Errorf("%w: instance %s could not be found", instance.ErrNotFound, id)
}

// isAuthError reports whether err is identity's 401 or 403.
func isAuthError(err error) bool {
	return errors.Is(err, errUnauthorized) || errors.Is(err, errForbidden)
}
