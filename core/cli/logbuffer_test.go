package cli

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for the flusher and the test.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A server's info lines are batched into one write and reach the output
// within flushEvery; a warning is out when the call returns, after the
// lines before it; closing writes what waits.
func TestBufferedLogger(t *testing.T) {
	out := &syncBuffer{}
	logger, logs, err := newBufferedLogger(out, "info")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		logger.Info("http", "n", i)
	}
	testenv.Eventually(t, 10*flushEvery+5*time.Second, func() bool { return strings.Count(out.String(), "msg=http") == 50 },
		"the info lines never reached the output: %q", out.String())
	out.mu.Lock()
	if out.writes >= 50 {
		t.Errorf("50 lines took %d writes: not batched", out.writes)
	}
	out.mu.Unlock()

	logger.Info("before")
	logger.With("component", "api").Warn("trouble")
	got := out.String()
	if b, w := strings.Index(got, "msg=before"), strings.Index(got, "msg=trouble component=api"); b < 0 || w < b {
		t.Fatalf("after the warning returned, the output is %q: want the info line, then the warning", got)
	}

	logger.Debug("hidden")
	logger.Info("last")
	if err := logs.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "msg=last") || strings.Contains(got, "hidden") {
		t.Fatalf("after Close: %q", got)
	}
}

func TestBufferedLoggerBadLevel(t *testing.T) {
	if _, _, err := newBufferedLogger(&bytes.Buffer{}, "loud"); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Fatalf("err = %v, want one naming the level", err)
	}
}
