package driver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger returns an hclog.Logger for go-plugin that forwards every
// record to log. go-plugin also routes the plugin's stderr through it: JSON
// hclog lines keep their level and fields, "[ERROR] ..." style prefixes set
// the level, anything else arrives at debug level.
//
// hclog is only an adapter here: an intercept logger whose own output is
// discarded, with a sink that re-emits to slog.
func newHCLogger(log *slog.Logger) hclog.Logger {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Level:  hclog.Debug, // slog's handler does the real filtering
		Output: io.Discard,
	})
	l.RegisterSink(slogSink{log: log})
	return l
}

type slogSink struct{ log *slog.Logger }

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	lvl := slog.LevelDebug
	switch level {
	case hclog.Info:
		lvl = slog.LevelInfo
	case hclog.Warn:
		lvl = slog.LevelWarn
	case hclog.Error:
		lvl = slog.LevelError
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, lvl) {
		return
	}
	if name != "" {
		args = append(args, "logger", name)
	}
	s.log.Log(ctx, lvl, msg, args...)
}

// lineLogger is an io.Writer that logs each complete line it receives. go-plugin
// forwards what the plugin writes to os.Stdout/os.Stderr after Serve (it
// redirects both) to these writers. A trailing partial line waits for its
// newline.
type lineLogger struct {
	log    *slog.Logger
	stream string
	mu     sync.Mutex
	buf    []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(w.buf[:i]), "\r"); line != "" {
			w.log.Info(line, "stream", w.stream)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
