package policy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// maxLine caps a captured line, so a guest printing without newlines
// cannot grow host memory.
const maxLine = 4096

// logWriter turns a guest's stdout or stderr into log records, one per
// line, within its module's log budget. It is what the guest sees instead
// of the host's file descriptors.
type logWriter struct {
	limit  *logLimiter
	level  slog.Level
	stream string

	mu  sync.Mutex
	buf []byte
	// last is the last "panic: ..." or "fatal error: ..." line the guest
	// wrote: what a Go guest says before it traps, quoted in the error.
	// It is kept whether or not the budget let the line be logged.
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
	w.limit.log(w.level, line, w.stream)
}

// summaryEvery is the least time between two "dropped N lines" warnings,
// except the last one, at Close.
const summaryEvery = 10 * time.Second

// logLimiter is a Module's budget for guest output: a token bucket shared
// by the stdout and stderr of all its instances, so that a policy printing
// in a loop (one wrote 108 MB in 3 calls) costs the host a bounded number
// of log records. Dropped lines are counted and summarized in a warning.
// Nothing runs in the background: the budget refills lazily, and the
// summary is written when output resumes, after a call, or at Close.
type logLimiter struct {
	logger *slog.Logger
	rate   float64 // lines per second; 0 means no limit
	burst  float64

	mu         sync.Mutex
	now        func() time.Time // time.Now; tests freeze it
	tokens     float64
	refilled   time.Time // when tokens was last brought up to date
	pending    uint64    // lines dropped since the last summary
	summarized time.Time // when the last summary was written; zero: never
	dropped    atomic.Uint64
}

// newLogLimiter returns a budget of perSecond lines per second (negative:
// unlimited), starting full.
func newLogLimiter(logger *slog.Logger, perSecond int) *logLimiter {
	l := &logLimiter{logger: logger, now: time.Now}
	if perSecond > 0 {
		l.rate = float64(perSecond)
		l.burst = l.rate * logBurstSeconds
	}
	l.tokens = l.burst
	l.refilled = l.now()
	return l
}

// log writes one line of guest output if the budget allows, and first the
// summary of what was dropped before it, if one is due.
func (l *logLimiter) log(level slog.Level, line []byte, stream string) {
	l.mu.Lock()
	ok := l.take()
	var dropped uint64
	if ok {
		dropped = l.due(false)
	} else {
		l.pending++
		l.dropped.Add(1)
	}
	l.mu.Unlock()
	if dropped > 0 {
		l.warn(dropped)
	}
	if ok {
		l.logger.Log(context.Background(), level, string(line), "stream", stream)
	}
}

// summarize writes the summary of dropped lines if one is due; force makes
// it due whenever lines were dropped.
func (l *logLimiter) summarize(force bool) {
	l.mu.Lock()
	dropped := l.due(force)
	l.mu.Unlock()
	if dropped > 0 {
		l.warn(dropped)
	}
}

// take spends one token, refilling first; false if none is left.
func (l *logLimiter) take() bool {
	if l.rate == 0 {
		return true
	}
	now := l.now()
	if d := now.Sub(l.refilled); d > 0 {
		l.tokens = min(l.burst, l.tokens+d.Seconds()*l.rate)
	}
	l.refilled = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// due returns the count to summarize now and resets it, or 0.
func (l *logLimiter) due(force bool) uint64 {
	if l.pending == 0 {
		return 0
	}
	now := l.now()
	if !force && !l.summarized.IsZero() && now.Sub(l.summarized) < summaryEvery {
		return 0
	}
	n := l.pending
	l.pending = 0
	l.summarized = now
	return n
}

func (l *logLimiter) warn(dropped uint64) {
	l.logger.Warn(fmt.Sprintf("dropped %d lines of policy output over the limit of %g lines/s", dropped, l.rate),
		"dropped", dropped)
}

// droppedTotal is the number of lines dropped since the module loaded.
func (l *logLimiter) droppedTotal() uint64 { return l.dropped.Load() }
