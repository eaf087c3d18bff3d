package api

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    string
		err     error
	}{
		{"none", nil, "2.1", nil},
		{"legacy", map[string]string{"X-OpenStack-Nova-API-Version": "2.1"}, "2.1", nil},
		{"legacy latest", map[string]string{"X-OpenStack-Nova-API-Version": "latest"}, "2.21", nil},
		{"new", map[string]string{"OpenStack-API-Version": "compute 2.1"}, "2.1", nil},
		{"new among others", map[string]string{"OpenStack-API-Version": "volume 3.5, compute latest"}, "2.21", nil},
		{"new wins", map[string]string{"OpenStack-API-Version": "compute 2.1", "X-OpenStack-Nova-API-Version": "2.99"}, "2.1", nil},
		{"other service only", map[string]string{"OpenStack-API-Version": "volume 3.5"}, "2.1", nil},
		{"in range", map[string]string{"X-OpenStack-Nova-API-Version": "2.9"}, "2.9", nil},
		{"highest", map[string]string{"OpenStack-API-Version": "compute 2.21"}, "2.21", nil},
		{"too new", map[string]string{"X-OpenStack-Nova-API-Version": "2.22"}, "", errVersionNotAllowed},
		{"too old", map[string]string{"OpenStack-API-Version": "compute 2.0"}, "", errVersionNotAllowed},
		{"major 3", map[string]string{"X-OpenStack-Nova-API-Version": "3.1"}, "", errVersionNotAllowed},
		{"garbage", map[string]string{"X-OpenStack-Nova-API-Version": "two"}, "", instance.ErrInvalid},
		{"no minor", map[string]string{"OpenStack-API-Version": "compute 2"}, "", instance.ErrInvalid},
		{"leading zero", map[string]string{"X-OpenStack-Nova-API-Version": "2.01"}, "", instance.ErrInvalid},
		{"sign", map[string]string{"X-OpenStack-Nova-API-Version": "+2.1"}, "", instance.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.headers {
				h.Set(k, v)
			}
			v, err := negotiate(h)
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("negotiate: %v, want %v", err, c.err)
			}
			if c.err == nil && v.String() != c.want {
				t.Fatalf("negotiate: %s, want %s", v, c.want)
			}
		})
	}
}

func rec(id, name string, created int, status instance.VMState, flavor, image, node string) store.Record {
	at := time.Date(2026, 1, 1, 0, 0, created, 0, time.UTC)
	return store.Record{State: instance.State{ID: id, Name: name, VMState: status, Flavor: instance.Flavor{ID: flavor},
		Image: instance.Image{ID: image}, Node: node, CreatedAt: at, UpdatedAt: at.Add(time.Duration(created) * time.Minute)}}
}

func ids(recs []store.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.State.ID)
	}
	return strings.Join(s, ",")
}

// Filters, sort orders and page boundaries over a fixed set of records,
// exact answers.
func TestServerQuery(t *testing.T) {
	catalog := &lifecycle.Catalog{
		Flavors: []instance.Flavor{{ID: "f1", Name: "tiny"}, {ID: "f2", Name: "small"}},
		Images:  []lifecycle.CatalogImage{{Image: instance.Image{ID: "i1", Name: "cirros"}}},
	}
	all := []store.Record{
		rec("a", "web-1", 1, instance.Active, "f1", "i1", "n1"),
		rec("b", "web-2", 2, instance.Stopped, "f2", "i1", "n1"),
		rec("c", "db-1", 3, instance.Active, "f1", "i2", "n2"),
		rec("d", "Web-3", 4, instance.Error, "f2", "i2", "n2"),
		rec("e", "cache", 4, instance.Active, "f1", "i1", "n1"),
	}
	cases := []struct {
		query string
		want  string
		more  bool
	}{
		{"", "e,d,c,b,a", false}, // created_at desc, uuid desc breaks the tie
		{"name=web", "d,b,a", false},
		{"name=^web-[12]$", "b,a", false},
		{"status=ACTIVE", "e,c,a", false},
		{"status=active&status=shutoff", "e,c,b,a", false},
		{"status=BOGUS", "", false},
		{"flavor=small", "d,b", false},
		{"flavor=f1&image=cirros", "e,a", false},
		{"image=http://x/images/i2", "d,c", false},
		{"host=n2", "d,c", false},
		{"changes-since=2026-01-01T00:03:00Z", "e,d,c", false},
		{"changes-since=2026-01-01T00:03:00", "e,d,c", false},
		{"sort_key=display_name&sort_dir=asc", "d,e,c,a,b", false},
		{"sort_key=uuid&sort_dir=asc", "a,b,c,d,e", false},
		{"sort_key=created_at&sort_dir=asc&sort_key=display_name", "a,b,c,e,d", false},
		{"limit=2", "e,d", true},
		{"limit=2&marker=d", "c,b", true},
		{"limit=2&marker=b", "a", false},
		{"limit=2&marker=a", "", false},
		{"limit=0", "", true},
		{"limit=5000", "e,d,c,b,a", false},
		// The marker is found among all instances, filtered or not.
		{"status=ACTIVE&limit=1&marker=d", "c", true},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			q, _ := url.ParseQuery(c.query)
			sq, err := parseServerQuery(q, catalog, 1000)
			if err != nil {
				t.Fatal(err)
			}
			page, more, err := sq.page(all)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page); got != c.want || more != c.more {
				t.Fatalf("got %q more=%v, want %q more=%v", got, more, c.want, c.more)
			}
		})
	}
}

func TestServerQueryErrors(t *testing.T) {
	cases := []struct{ query, says string }{
		{"limit=-1", `limit must be an integer of at least 0, not "-1"`},
		{"limit=ten", `limit must be an integer of at least 0, not "ten"`},
		{"sort_key=launched_at", `sort_key "launched_at" is not supported`},
		{"sort_key=uuid&sort_dir=up", `sort_dir "up" must be asc or desc`},
		{"sort_dir=asc", `1 sort_dir values for 0 sort_key values`},
		{"name=web(", `name "web(" is not a valid regular expression`},
		{"changes-since=yesterday", `changes-since "yesterday" is not an ISO 8601 time`},
		{"ip=10.0.0.1&deleted=true", `query parameter "deleted", "ip" not supported`},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			q, _ := url.ParseQuery(c.query)
			_, err := parseServerQuery(q, nil, 1000)
			if !errors.Is(err, instance.ErrInvalid) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("%v, want ErrInvalid saying %s", err, c.says)
			}
		})
	}
	q, _ := url.ParseQuery("marker=nobody")
	sq, _ := parseServerQuery(q, nil, 1000)
	if _, _, err := sq.page(nil); !errors.Is(err, instance.ErrInvalid) || !strings.Contains(err.Error(), "marker [nobody] not found") {
		t.Fatalf("unknown marker: %v", err)
	}
}

// Instance actions read from history, one table row per scenario: the
// actions (Nova's names), their messages and their events.
func TestDeriveActions(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	h := func(s int, from, to instance.Status, a instance.Action, c instance.Cause, req, msg string) instance.HistoryRecord {
		return instance.HistoryRecord{At: at(s), From: from, To: to, Action: a, Cause: c, RequestID: req, Message: msg}
	}
	cases := []struct {
		name     string
		history  []instance.HistoryRecord
		inFlight *instance.Transition
		want     string
	}{
		{"create and stop", []instance.HistoryRecord{
			h(1, "", "BUILD", "create", "api", "r1", ""),
			h(2, "BUILD", "ACTIVE", "create", "driver", "r1", ""),
			h(3, "ACTIVE", "STOPPING", "stop", "api", "r2", ""),
			h(4, "STOPPING", "SHUTOFF", "stop", "driver", "r2", ""),
		}, nil, "create r1 <nil> [spawn 1-2 Success]; stop r2 <nil> [power_off 3-4 Success]"},
		{"resize steps, then confirm with no step shown", []instance.HistoryRecord{
			h(1, "ACTIVE", "QUEUE_RESIZE", "resize", "api", "r1", ""),
			h(2, "QUEUE_RESIZE", "PREP_RESIZE", "resize", "driver", "r1", ""),
			h(3, "PREP_RESIZE", "RESIZE", "resize", "driver", "r1", ""),
			h(4, "RESIZE", "VERIFY_RESIZE", "resize", "driver", "r1", ""),
			h(6, "VERIFY_RESIZE", "ACTIVE", "confirmResize", "driver", "r2", ""),
		}, nil, "resize r1 <nil> [resize_queue 1-2 Success, resize_prepare 2-3 Success, resize_finish 3-4 Success]; confirmResize r2 <nil> [confirm_resize 6-6 Success]"},
		{"a failed stop goes back with a fault", []instance.HistoryRecord{
			h(1, "ACTIVE", "STOPPING", "stop", "api", "r1", ""),
			h(2, "STOPPING", "ACTIVE", "stop", "driver", "r1", "no power"),
		}, nil, "stop r1 no power [power_off 1-2 Error]"},
		{"hard reboot is Nova's reboot", []instance.HistoryRecord{
			h(1, "ACTIVE", "HARD_REBOOT", "hardReboot", "api", "r1", ""),
			h(2, "HARD_REBOOT", "ACTIVE", "hardReboot", "driver", "r1", ""),
		}, nil, "reboot r1 <nil> [hard_reboot 1-2 Success]"},
		{"a delete pre-empts a create", []instance.HistoryRecord{
			h(1, "", "BUILD", "create", "api", "r1", ""),
			h(5, "BUILD", "DELETING", "delete", "api", "r2", ""),
			h(6, "DELETING", "DELETED", "delete", "driver", "r2", ""),
		}, nil, "create r1 pre-empted by delete (request r2) [spawn 1-5 Error]; delete r2 <nil> [destroy 5-6 Success]"},
		{"the reconciler enforcing a stop", []instance.HistoryRecord{
			{At: at(1), From: "ACTIVE", To: "STOPPING", Action: "stop", Cause: "reconciler", RequestID: "r1", Message: "enforce: the VM is off"},
			h(2, "STOPPING", "SHUTOFF", "stop", "driver", "r1", ""),
		}, nil, "stop r1 <nil> [power_off 1-2 Success]"},
		{"a step in flight has no finish", []instance.HistoryRecord{
			h(1, "", "BUILD", "create", "api", "r1", ""),
		}, &instance.Transition{Action: "create", RequestID: "r1", StartedAt: at(1), StepStartedAt: at(1)},
			"create r1 <nil> [spawn 1-… <nil>]"},
		{"a confirm in flight has no record yet", []instance.HistoryRecord{
			h(4, "RESIZE", "VERIFY_RESIZE", "resize", "driver", "r1", ""),
		}, &instance.Transition{Action: "confirmResize", RequestID: "r2", StartedAt: at(7), StepStartedAt: at(7)},
			"resize r1 <nil> [resize_queue 4-4 Success]; confirmResize r2 <nil> [confirm_resize 7-… <nil>]"},
	}
	sec := func(s *string) string {
		if s == nil {
			return "…"
		}
		t, _ := time.Parse("2006-01-02T15:04:05.000000Z", *s)
		return fmt.Sprint(t.Second())
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, d := range deriveActions(c.history, c.inFlight) {
				v := d.view("id", "p", "u", true)
				msg := "<nil>"
				if v.Message != nil {
					msg = *v.Message
				}
				var evs []string
				for _, e := range v.Events {
					res := "<nil>"
					if e.Result != nil {
						res = *e.Result
					}
					evs = append(evs, fmt.Sprintf("%s %s-%s %s", e.Event, sec(&e.StartTime), sec(e.FinishTime), res))
				}
				got = append(got, fmt.Sprintf("%s %s %s [%s]", v.Action, v.RequestID, msg, strings.Join(evs, ", ")))
			}
			if g := strings.Join(got, "; "); g != c.want {
				t.Fatalf("\n got %s\nwant %s", g, c.want)
			}
		})
	}
}

// One access-log line per request: method, path, status, duration and
// request id, for the requests no handler answered too.
func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	s := New(nil, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	for _, r := range []*http.Request{
		httptest.NewRequest("GET", "/", nil),
		httptest.NewRequest("POST", "/v2.1/flavors", strings.NewReader("{}")),
		httptest.NewRequest("GET", "/v2.1/", nil),
	} {
		r.Header.Set("X-OpenStack-Request-Id", "req-00000000-0000-0000-0000-000000000001")
		if r.URL.Path == "/v2.1/" {
			r.Header.Set("X-OpenStack-Nova-API-Version", "9.9")
		}
		s.ServeHTTP(httptest.NewRecorder(), r)
	}
	line := regexp.MustCompile(`(?m)^time=\S+ level=INFO msg=http method=(\S+) path=(\S+) status=(\d+) duration=\S+s request_id=req-00000000-0000-0000-0000-000000000001 user=\S+$`)
	var got []string
	for _, m := range line.FindAllStringSubmatch(buf.String(), -1) {
		got = append(got, strings.Join(m[1:], " "))
	}
	if want := "[GET / 200 POST /v2.1/flavors 405 GET /v2.1/ 406]"; fmt.Sprint(got) != want || strings.Count(buf.String(), "\n") != 3 {
		t.Fatalf("access log:\n%s\nparsed %v, want %s", buf.String(), got, want)
	}
}

// The server bodies' fields are in the byte order of their JSON keys, the
// order encoding/json gave the maps they replaced: what clients get is the
// same bytes.
func TestServerBodyFieldsInKeyOrder(t *testing.T) {
	for _, v := range []any{serverBody{}, serverSummary{}, serverRef{}, serverFault{}} {
		typ := reflect.TypeOf(v)
		var keys []string
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			keys = append(keys, name)
		}
		if !slices.IsSorted(keys) {
			t.Errorf("%s's JSON keys are not in byte order: %v", typ.Name(), keys)
		}
	}
}

func TestPreferWaitParsing(t *testing.T) {
	for _, tt := range []struct {
		values []string
		want   time.Duration
	}{
		{nil, 0},
		{[]string{"wait=5"}, 5 * time.Second},
		{[]string{"WAIT = 7"}, 7 * time.Second},
		{[]string{`wait="9"`}, 9 * time.Second},
		{[]string{"respond-async", "wait=2;foo=bar"}, 2 * time.Second},
		{[]string{"handling=lenient, wait=4"}, 4 * time.Second},
		{[]string{"wait=100000"}, MaxWaitTimeout},
		{[]string{"wait=0"}, 0},
		{[]string{"wait=-3"}, 0},
		{[]string{"wait=soon"}, 0},
		{[]string{"wait"}, 0},
		{[]string{"waiting=5"}, 0},
		{[]string{"return=minimal"}, 0},
	} {
		h := http.Header{}
		for _, v := range tt.values {
			h.Add("Prefer", v)
		}
		if got := preferWait(h); got != tt.want {
			t.Errorf("Prefer %q: %v, want %v", tt.values, got, tt.want)
		}
	}
}
