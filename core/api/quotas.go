package api

import (
	"fmt"
	"net/http"

	"github.com/lucid-project/lucid/core/store"
)

// Quotas is what the API needs to show a project's quota: its limits and
// what its instances hold.
type Quotas interface {
	Limits(project string) store.Limits
}

// quotaResources are Nova's quota-set keys at 2.1 that Lucid has no such
// thing for (no key pairs, security groups, floating IPs, injected
// files): their limit is 0, since none can be made. metadata_items is the
// 128 Lucid enforces on every server.
var quotaResources = map[string]int{
	"floating_ips": 0, "fixed_ips": 0, "metadata_items": maxMetadataItems, "key_pairs": 0,
	"security_groups": 0, "security_group_rules": 0, "server_groups": 0, "server_group_members": 0,
	"injected_files": 0, "injected_file_content_bytes": 0, "injected_file_path_bytes": 0,
}

// quotaProject is the project of a quota-set request, if the caller may
// see it: its own, or any known project for an admin (another project's
// is 403, as in Nova; an unknown one 404).
func (s *Server) quotaProject(r *http.Request) (string, error) {
	project := r.PathValue("project")
	p := principal(r)
	if !p.Admin() && project != p.Project {
		return "", fmt.Errorf("%w: user %s may read the quota of project %s only", errForbidden, p.User, p.Project)
	}
	known := project == s.project
	if s.auth != nil {
		known = s.auth.KnownProject(project)
	}
	if !known {
		return "", fmt.Errorf("%w: project %s is not a project of this cloud", errNoRoute, project)
	}
	return project, nil
}

// showQuota answers GET /os-quota-sets/{project}[/detail]: Nova's
// quota_set, with in_use and reserved (always 0: Lucid reserves nothing,
// it counts in the same transaction) in the detail.
func (s *Server) showQuota(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		project, err := s.quotaProject(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		l := store.Unlimited
		if s.quotas != nil {
			l = s.quotas.Limits(project)
		}
		set := map[string]any{"id": project}
		var used store.Usage
		if detail {
			if used, err = s.lc.Usage(r.Context(), project); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		add := func(key string, limit, inUse int) {
			if detail {
				set[key] = map[string]int{"limit": limit, "in_use": inUse, "reserved": 0}
			} else {
				set[key] = limit
			}
		}
		add("instances", l.Instances, used.Instances)
		add("cores", l.Cores, used.Cores)
		add("ram", l.RAMMB, used.RAMMB)
		for k, v := range quotaResources {
			add(k, v, 0)
		}
		writeJSON(w, http.StatusOK, map[string]any{"quota_set": set})
	}
}
