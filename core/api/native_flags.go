package api

import (
	"net/http"

	"github.com/lucid-project/lucid/core/api/client"
)

// nativeFlags lists what the reconcilers noticed and, by policy, did not
// correct: flagged instances, and VMs no record names.
func (s *Server) nativeFlags(w http.ResponseWriter, r *http.Request) {
	flagged, unmanaged, err := s.lc.Flagged(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := client.Flags{Instances: []client.Instance{}, Unmanaged: []client.UnmanagedVM{}}
	for _, rec := range flagged {
		out.Instances = append(out.Instances, instanceView(rec))
	}
	for _, u := range unmanaged {
		out.Unmanaged = append(out.Unmanaged, client.UnmanagedVM{Node: u.Node, Driver: u.Driver, ID: u.ID, Power: u.Power, Since: u.Since, Reason: u.Reason})
	}
	writeJSON(w, http.StatusOK, out)
}

// nativeUnflag clears an instance's flags: the operator has seen them.
func (s *Server) nativeUnflag(w http.ResponseWriter, r *http.Request) {
	rec, err := s.lc.Unflag(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"instance": instanceView(rec)})
}
