package soak

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	cases := []struct {
		line string
		want map[string]string
	}{
		{`time=2026-11-28T07:33:07.268Z level=INFO msg="lucid ready" api=http://127.0.0.1:40123 node=soak etcd=http://127.0.0.1:40124 startup=212ms`,
			map[string]string{"time": "2026-11-28T07:33:07.268Z", "level": "INFO", "msg": "lucid ready", "api": "http://127.0.0.1:40123",
				"node": "soak", "etcd": "http://127.0.0.1:40124", "startup": "212ms"}},
		{`level=ERROR msg="a \"quoted\" word" err="x=y \\ z" n=3`,
			map[string]string{"level": "ERROR", "msg": `a "quoted" word`, "err": `x=y \ z`, "n": "3"}},
		{`level=WARN msg="unterminated`, map[string]string{"level": "WARN"}},
		{``, map[string]string{}},
	}
	for _, c := range cases {
		got := parseLogLine(c.line)
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.line, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", c.line, k, got[k], v)
			}
		}
	}
}

func TestServeLogCounts(t *testing.T) {
	l := newServeLog()
	for _, line := range []string{
		`level=INFO msg="lucid ready" api=http://a etcd=http://e`,
		`level=INFO msg="store maintenance: history retention removed records" component=store instances=3 records=120 deleted_instances=2 deleted_records=8 took=3ms`,
		`level=INFO msg="store maintenance: history retention removed records" component=store instances=1 records=5 deleted_instances=0 deleted_records=0 took=1ms`,
		`level=INFO msg="store maintenance: defragmented" size_before_mib=40 size_mib=12 blocked=420ms`,
		`level=ERROR msg="store full: etcd raised its NOSPACE alarm and refuses writes; reclaiming space"`,
		`level=ERROR msg="validate policy failed; its fallback answered"`,
		`level=ERROR msg="executor: write outcome" err=x`,
	} {
		l.line(line)
	}
	select {
	case <-l.readyCh:
	default:
		t.Fatal("ready line not seen")
	}
	got := l.stats()
	want := LogStats{Errors: 3, RetentionPasses: 2, RecordsRemoved: 125, HistoriesRemoved: 8, Defrags: 1,
		DefragBlocked: 420 * time.Millisecond, DefragBlockedMax: 420 * time.Millisecond, NoSpaceAlarms: 1, PolicyFailures: 1, ExecutorWriteFails: 1}
	if len(got.FirstErrors) != 3 {
		t.Errorf("first errors %q, want the 3 ERROR lines", got.FirstErrors)
	}
	got.FirstErrors = nil
	if !reflect.DeepEqual(got, want) || l.api != "http://a" || l.etcd != "http://e" {
		t.Fatalf("stats %+v (api %s etcd %s), want %+v", got, l.api, l.etcd, want)
	}
}

// steady is a 100-second run at 1000 changes/s, sampled every second,
// with a flat database and flat memory; edit changes one sample.
func steady(edit func(i int, s *Sample)) *Result {
	r := &Result{Config: Config{Changes: 100_000, QuotaMiB: 64}, Took: 100 * time.Second, Changes: 100_000, Calls: 200_000}
	for i := 1; i <= 100; i++ {
		s := Sample{At: time.Duration(i) * time.Second, Changes: int64(i) * 1000, DBSize: 20 << 20, DBInUse: 18 << 20,
			ServeRSS: 150 << 20, PluginRSS: 20 << 20, PluginPID: 42}
		if edit != nil {
			edit(i, &s)
		}
		r.Samples = append(r.Samples, s)
	}
	return r
}

func TestChecks(t *testing.T) {
	cases := []struct {
		name   string
		r      *Result
		failed []string // the checks that must fail, in order
	}{
		{"steady", steady(nil), nil},
		{"a failed call", func() *Result { r := steady(nil); r.Failed, r.Failures = 1, []string{"stop x: 403"}; return r }(), []string{"no failed calls"}},
		{"short of the target", func() *Result { r := steady(nil); r.Changes = 99_000; return r }(), []string{"no failed calls"}},
		{"db grows at the end", steady(func(i int, s *Sample) { s.DBSize += int64(max(i-75, 0)) << 20 }), []string{"etcd bounded"}},
		{"db grows a little", steady(func(i int, s *Sample) { s.DBSize += int64(max(i-75, 0)) << 18 }), nil},
		{"etcd full once", steady(func(i int, s *Sample) { s.NoSpace = i == 50 }), []string{"etcd bounded"}},
		{"serve leaks", steady(func(i int, s *Sample) { s.ServeRSS += int64(i) << 20 }), []string{"lucid serve RSS flat"}},
		{"serve warms up", steady(func(i int, s *Sample) { s.ServeRSS += int64(min(i, 20)) << 20 }), nil},
		{"plugin leaks", steady(func(i int, s *Sample) { s.PluginRSS += int64(i) << 19 }), []string{"plugin RSS flat"}},
		{"plugin restarted", steady(func(i int, s *Sample) {
			if i > 50 {
				s.PluginPID = 43
			}
		}), []string{"plugin never restarted"}},
		{"slows down", steady(func(i int, s *Sample) {
			if i > 90 {
				s.Changes = 90_000 + int64(i-90)*800
			}
		}), []string{"throughput held"}},
		{"fast while warming up", steady(func(i int, s *Sample) {
			if i <= 10 {
				s.Changes = int64(i) * 1300
			} else {
				s.Changes = 13_000 + int64(i-10)*1000
			}
		}), nil},
		{"slower at the end than after warm-up", steady(func(i int, s *Sample) {
			if i > 10 && i <= 20 {
				s.Changes = 10_000 + int64(i-10)*1200
			} else if i > 20 {
				s.Changes = 22_000 + int64(i-20)*1000
			}
		}), []string{"throughput held"}},
		{"slows down with the machine", steady(func(i int, s *Sample) {
			s.Speed = 1000
			if i > 80 {
				s.Changes = 80_000 + int64(i-80)*800
				s.Speed = 790
			}
		}), nil},
		{"slows down while the machine does not", steady(func(i int, s *Sample) {
			s.Speed = 1000
			if i > 80 {
				s.Changes = 80_000 + int64(i-80)*800
				s.Speed = 1010
			}
		}), []string{"throughput held"}},
		{"slows down more than the machine", steady(func(i int, s *Sample) {
			s.Speed = 1000
			if i > 80 {
				s.Changes = 80_000 + int64(i-80)*700
				s.Speed = 900
			}
		}), []string{"throughput held"}},
		{"fast while the store fills", steady(func(i int, s *Sample) {
			s.DBSize = int64(min(i, 40)) << 19 // full at 20 MiB from 40 s on
			if i <= 40 {
				s.Changes = int64(i) * 1300
			} else {
				s.Changes = 52_000 + int64(i-40)*1000
			}
		}), nil},
		{"slows down once the store is full", steady(func(i int, s *Sample) {
			s.DBSize = int64(min(i, 40)) << 19
			if i > 70 {
				s.Changes = 70_000 + int64(i-70)*750
			}
		}), []string{"throughput held"}},
		{"slows down a little", steady(func(i int, s *Sample) {
			if i > 90 {
				s.Changes = 90_000 + int64(i-90)*950
			}
		}), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.r.check()
			var failed []string
			for _, ch := range c.r.Checks {
				if !ch.OK {
					failed = append(failed, ch.Name)
				}
			}
			if strings.Join(failed, ",") != strings.Join(c.failed, ",") {
				var b strings.Builder
				c.r.Print(&b)
				t.Fatalf("failed checks %v, want %v\n%s", failed, c.failed, b.String())
			}
			if err := c.r.Err(); (err != nil) != (len(c.failed) > 0) {
				t.Fatalf("Err() = %v with failed checks %v", err, c.failed)
			}
		})
	}
}
