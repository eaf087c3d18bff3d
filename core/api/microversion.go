package api

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/lucid-project/lucid/core/instance"
)

// microversion is a compute API microversion, 2.<minor>.
type microversion struct{ major, minor int }

func (v microversion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

func (v microversion) less(o microversion) bool {
	return v.major < o.major || v.major == o.major && v.minor < o.minor
}

// The microversions Lucid serves: 2.1 to 2.21. What changes in that
// range for the resources Lucid has: 2.9 adds "locked" to a server (Lucid
// has no locking: false), 2.19 adds "description" (Lucid stores none:
// null, and a request that sets one is refused), 2.21 lists a deleted
// server's instance actions (which Lucid does at every version, since
// history outlives the instance). The other changes of 2.2-2.21 concern
// resources Lucid does not serve, and the optional attributes of 2.3 and
// 2.16 are left out.
var (
	minVersion = microversion{2, 1}
	maxVersion = microversion{2, 21}
)

// Versions at which a server body changes.
var (
	versionLocked      = microversion{2, 9}
	versionDescription = microversion{2, 19}
)

type versionKey struct{}

// requestVersion is the microversion negotiated for r (the lowest for a
// request outside /v2.1).
func requestVersion(r *http.Request) microversion {
	if v, ok := r.Context().Value(versionKey{}).(microversion); ok {
		return v
	}
	return minVersion
}

// atLeast reports whether r was negotiated at v or later.
func atLeast(r *http.Request, v microversion) bool { return !requestVersion(r).less(v) }

// negotiate reads the requested microversion, as Nova does: the
// OpenStack-API-Version header ("compute 2.1", possibly among other
// services' entries) wins over the legacy X-OpenStack-Nova-API-Version
// ("2.1"); "latest" is the highest served; no header means the lowest.
// A malformed value is 400 (ErrInvalid); one outside the served range is
// 406. The version answered is returned even on error, for the response
// headers.
func negotiate(h http.Header) (microversion, error) {
	raw, header := "", ""
	for _, v := range h.Values("OpenStack-API-Version") {
		for _, entry := range strings.Split(v, ",") {
			f := strings.Fields(entry)
			if len(f) == 2 && strings.EqualFold(f[0], "compute") {
				raw, header = f[1], "OpenStack-API-Version"
			}
		}
	}
	if header == "" {
		if v := h.Get("X-OpenStack-Nova-API-Version"); v != "" {
			raw, header = strings.TrimSpace(v), "X-OpenStack-Nova-API-Version"
		}
	}
	if header == "" {
		return minVersion, nil
	}
	if strings.EqualFold(raw, "latest") {
		return maxVersion, nil
	}
	v, ok := parseMicroversion(raw)
	if !ok {
		return minVersion, fmt.Errorf("%w: %s: %q is not a microversion; use one such as \"2.1\", or \"latest\"", instance.ErrInvalid, header, raw)
	}
	if v.less(minVersion) || maxVersion.less(v) {
		return minVersion, fmt.Errorf("%w: Version %s is not supported by the API. Minimum is %s and maximum is %s.", errVersionNotAllowed, v, minVersion, maxVersion)
	}
	return v, nil
}

// versionPattern is Nova's: no leading zeros, no signs.
var versionPattern = regexp.MustCompile(`^([1-9][0-9]{0,3})\.([1-9][0-9]{0,3}|0)$`)

func parseMicroversion(s string) (microversion, bool) {
	m := versionPattern.FindStringSubmatch(s)
	if m == nil {
		return microversion{}, false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return microversion{a, b}, true
}

// setVersionHeaders answers with the version served, in both headers, and
// tells caches that the answer depends on them.
func setVersionHeaders(h http.Header, v microversion) {
	h.Set("OpenStack-API-Version", "compute "+v.String())
	h.Set("X-OpenStack-Nova-API-Version", v.String())
	h.Add("Vary", "OpenStack-API-Version")
	h.Add("Vary", "X-OpenStack-Nova-API-Version")
}
