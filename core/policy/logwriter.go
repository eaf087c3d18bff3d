package policy

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// maxLine caps a captured line, so a guest printing without newlines
// cannot grow host memory.
const maxLine = 4096

// logWriter turns a guest's stdout or stderr into log records, one per
// line. It is what the guest sees instead of the host's file descriptors.
type logWriter struct {
	logger *slog.Logger
	level  slog.Level
	stream string

	mu  sync.Mutex
	buf []byte
	// last is the last "panic: ..." or "fatal error: ..." line the guest
	// wrote: what a Go guest says before it traps, quoted in the error.
	last string
}

// lastFatal returns and forgets the last panic or fatal error line.
func (w *logWriter) lastFatal() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.last
	w.last = ""
	return s
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= maxLine {
		w.emit(w.buf[:maxLine])
		w.buf = w.buf[maxLine:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large consumed buffer go
	}
	return len(p), nil
}

// flush logs a trailing partial line.
func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

func (w *logWriter) emit(line []byte) {
	if bytes.HasPrefix(line, []byte("panic: ")) || bytes.HasPrefix(line, []byte("fatal error: ")) {
		w.last = string(line)
	}
	w.logger.Log(context.Background(), w.level, string(line), "stream", w.stream)
}
