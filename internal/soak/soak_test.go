package soak_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/internal/soak"
	"github.com/lucid-project/lucid/internal/testenv"
)

func config(t *testing.T) soak.Config {
	t.Helper()
	return soak.Config{
		Lucid: testenv.Binary(t, "github.com/lucid-project/lucid"), Plugin: testenv.Binary(t, "./plugins/fake"), Policy: testenv.Wasm(t, "./policies/transitions"),
		CacheDir: testenv.CacheDir(t), Dir: filepath.Join(t.TempDir(), "soak"),
		Changes: 2000, Workers: 4, ReplaceEvery: 4, DeletedTTL: time.Second, Sample: 100 * time.Millisecond,
	}
}

// A short run through the real server: the load is made and counted, the
// server's history agrees with the count, and the summary says so. (How
// fast a run of seconds goes on a busy machine, and how its memory moves,
// says little: those checks are exercised on made-up samples in
// check_test.go, and for real by the run of make test.)
func TestShortRun(t *testing.T) {
	cfg := config(t)
	var out bytes.Buffer
	cfg.Out = &out
	res, err := soak.Run(context.Background(), cfg)
	if res == nil {
		t.Fatalf("no result: %v\n%s", err, out.String())
	}
	for _, c := range res.Checks {
		switch c.Name {
		case "no failed calls", "etcd bounded", "plugin never restarted":
			if !c.OK {
				t.Errorf("%s: %s", c.Name, c.Detail)
			}
		}
	}
	if res.Changes < 2000 || res.Changes > 2000+4*4 || res.Changes%2 != 0 {
		t.Errorf("%d changes made, want 2000 and at most one action per worker more", res.Changes)
	}
	if len(res.Samples) < 2 || res.Samples[len(res.Samples)-1].Changes != res.Changes || res.Samples[0].ServeRSS == 0 || res.Samples[0].PluginRSS == 0 || res.Samples[0].DBSize == 0 {
		t.Errorf("samples %+v, want the server's memory, its plugin's and etcd's size, ending at %d changes", res.Samples, res.Changes)
	}
	for _, want := range []string{"SOAK  ", "TIME  CHANGES", "CHECK", "no failed calls  ", "throughput held", "server: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	// The server's config, data and log stay where they were asked for.
	if _, err := os.Stat(filepath.Join(cfg.Dir, "serve.log")); err != nil {
		t.Error(err)
	}
	t.Log(out.String())
}

// Calls that should pass and do not fail the run, which names them.
func TestRefusalsFailTheRun(t *testing.T) {
	cfg := config(t)
	cfg.PolicySettings = `{ forbid_actions = ["stop"] }`
	cfg.Changes = 200
	var out bytes.Buffer
	cfg.Out = &out
	res, err := soak.Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "no failed calls: ") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("err = %v; want the failed calls check, quoting the 403\n%s", err, out.String())
	}
	if res == nil || res.Failed == 0 || !strings.Contains(res.Failures[0], "stop ") {
		t.Fatalf("result %+v; want the refused stops among the failures", res)
	}
	if !regexp.MustCompile(`(?m)^no failed calls +FAIL +\d+ of \d+ calls; first: stop `).MatchString(out.String()) {
		t.Errorf("summary does not show the failure:\n%s", out.String())
	}
}

// A server that cannot start is an error that shows its log.
func TestServerThatCannotStart(t *testing.T) {
	cfg := config(t)
	cfg.PolicySettings = `{ no_such_setting = true }`
	_, err := soak.Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "lucid serve exited before it was ready") || !strings.Contains(err.Error(), "no_such_setting") {
		t.Fatalf("err = %v; want the server's own complaint", err)
	}
}
