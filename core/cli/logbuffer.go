package cli

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logBuffer batches a server's log lines into fewer writes. `lucid serve`
// writes an access-log line per request; one write(2) each was about
// half of logging's cost at thousands of requests a second. Lines wait
// at most flushEvery (or until 32 KiB are waiting), and a line at warn
// or above is written at once, with everything before it, so a problem
// is never held back and order is kept. What a kill -9 can lose is the
// last flushEvery of info and debug lines.
type logBuffer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// flushEvery bounds how long a buffered log line waits.
const flushEvery = 100 * time.Millisecond

func newLogBuffer(out io.Writer) *logBuffer {
	b := &logBuffer{w: bufio.NewWriterSize(out, 32<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Flush writes what is waiting.
func (b *logBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Close stops the timer and writes what is waiting.
func (b *logBuffer) Close() error {
	close(b.stop)
	<-b.done
	return b.Flush()
}

// urgent is a handler whose warn and error records are written at once:
// it flushes its logBuffer after handling them.
type urgent struct {
	slog.Handler
	b *logBuffer
}

func (h urgent) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.b.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h urgent) WithAttrs(attrs []slog.Attr) slog.Handler {
	return urgent{h.Handler.WithAttrs(attrs), h.b}
}

func (h urgent) WithGroup(name string) slog.Handler { return urgent{h.Handler.WithGroup(name), h.b} }
