package executor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coredriver "github.com/lucid-project/lucid/core/driver"
	"github.com/lucid-project/lucid/core/executor"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/sdk/driver"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var catalog = &lifecycle.Catalog{
	Flavors: []instance.Flavor{{ID: "m1.tiny", Name: "tiny", VCPUs: 1, RAMMB: 512, DiskGB: 1}},
	Images:  []lifecycle.CatalogImage{{Image: instance.Image{ID: "cirros", Source: "fake://cirros"}}},
}

// env is an executor on node n1 running the real fake driver plugin, on
// a store of its own whose etcd reads are counted, beside an API-side
// lifecycle Service on another store over the same etcd.
type env struct {
	ex    *executor.Executor
	svc   *lifecycle.Service
	api   *lifecycle.Recorder
	store *store.Store  // the API side's
	reads *atomic.Int64 // the executor's etcd range requests
	logs  *syncBuffer
}

func newEnv(t *testing.T, wrap func(driver.Driver) driver.Driver, obs executor.Observer) env {
	return newEnvKV(t, wrap, obs, nil)
}

// newEnvKV is newEnv whose executor's etcd KV calls also go through
// kv's wrapper (nil: none).
func newEnvKV(t *testing.T, wrap func(driver.Driver) driver.Driver, obs executor.Observer, kv func(clientv3.KV) clientv3.KV) env {
	t.Helper()
	m := testenv.Etcd(t)
	prefix := "/lucid-executor-test"
	s := store.New(m.Client(), prefix)
	exStore, reads := testenv.ReadCountingStoreKV(t, m, prefix, kv)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := coredriver.Start(ctx, coredriver.Config{Name: "fake", Path: testenv.Binary(t, "./plugins/fake"), Config: []byte(`{}`), SocketDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	var d driver.Driver = p
	if wrap != nil {
		d = wrap(p)
	}
	logs := &syncBuffer{}
	ex := executor.New(executor.Config{Store: exStore, Recorder: lifecycle.NewRecorder(lifecycle.RecorderConfig{Store: exStore}),
		Node: "n1", Drivers: map[string]driver.Driver{"fake": d}, Observer: obs,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ex.Run(rctx)
	}()
	t.Cleanup(func() { stop(); <-done })
	// The executor's first read is its list of what is in flight; what
	// follows it is what the tests count.
	testenv.Eventually(t, 10*time.Second, func() bool { return reads.Load() >= 1 }, "the executor never listed")

	rec := lifecycle.NewRecorder(lifecycle.RecorderConfig{Store: s})
	svc := lifecycle.NewService(lifecycle.Config{Store: s, Recorder: rec, Catalog: catalog, Node: "n1", Driver: "fake"})
	return env{ex: ex, svc: svc, api: rec, store: s, reads: reads, logs: logs}
}

// settle waits until id has no transition in flight (or is gone) and
// returns it, reading through the API side's store.
func (e env) settle(t *testing.T, id string) (store.Record, bool) {
	t.Helper()
	var rec store.Record
	gone := false
	testenv.Eventually(t, 20*time.Second, func() bool {
		r, err := e.store.Get(context.Background(), id)
		if errors.Is(err, instance.ErrNotFound) {
			gone = true
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		rec = r
		return r.Transition == nil
	}, "instance %s did not settle", id)
	return rec, gone
}

func (e env) create(t *testing.T, name string) string {
	t.Helper()
	rec, err := e.svc.Create(context.Background(), lifecycle.CreateRequest{Name: name, FlavorRef: "m1.tiny", ImageRef: "cirros", RequestID: lifecycle.NewRequestID(), Project: "p", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	return rec.State.ID
}

func (e env) begin(t *testing.T, id string, a instance.Action) {
	t.Helper()
	if _, err := e.svc.Begin(context.Background(), id, a, lifecycle.ActionRequest{RequestID: lifecycle.NewRequestID(), User: "u"}); err != nil {
		t.Fatalf("%s %s: %v", a, id, err)
	}
}

// TestNoReadPerAction pins that the executor acts on what its watch
// delivered: creating, stopping, starting and deleting instances sends
// etcd no read of an instance from the executor beyond its startup list
// (each action used to cost one), and every change is still recorded.
func TestNoReadPerAction(t *testing.T) {
	e := newEnv(t, nil, nil)
	before := e.reads.Load()
	const rounds = 5
	ids := []string{e.create(t, "a"), e.create(t, "b")}
	for _, id := range ids {
		if rec, _ := e.settle(t, id); rec.Status() != instance.StatusActive {
			t.Fatalf("created %s is %s, want ACTIVE", id, rec.Status())
		}
	}
	for range rounds {
		for _, step := range []struct {
			action instance.Action
			want   instance.Status
		}{{instance.ActionStop, instance.StatusShutoff}, {instance.ActionStart, instance.StatusActive}} {
			for _, id := range ids {
				e.begin(t, id, step.action)
			}
			for _, id := range ids {
				if rec, _ := e.settle(t, id); rec.Status() != step.want {
					t.Fatalf("after %s %s is %s, want %s", step.action, id, rec.Status(), step.want)
				}
			}
		}
	}
	if got := e.reads.Load() - before; got != 0 {
		t.Fatalf("the executor sent %d reads for %d actions, want 0", got, len(ids)*(1+2*rounds))
	}
	// A delete's end also releases the project's usage, which this
	// executor's store has never read (on a node the API shares the
	// store, so its cache holds the shard the create wrote): that one
	// read, and no read of the instance.
	before = e.reads.Load()
	e.begin(t, ids[0], instance.ActionDelete)
	if _, gone := e.settle(t, ids[0]); !gone {
		t.Fatalf("%s not deleted", ids[0])
	}
	if got := e.reads.Load() - before; got != 1 {
		t.Fatalf("the executor sent %d reads for a delete, want 1 (the usage shard)", got)
	}
	h, err := e.store.History(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	// create 2, each stop and start 2, delete 2.
	if want := 2 + 4*rounds + 2; len(h) != want {
		t.Fatalf("%s has %d history records, want %d", ids[0], len(h), want)
	}
}

// gate is the fake plugin with its PowerOff held: the first call for each
// instance waits until the test releases it, so the test can write
// between the event that started a step and the step's outcome.
type gate struct {
	driver.Driver
	entered chan string
	release chan struct{}
	mu      sync.Mutex
	calls   map[string]int
}

func (g *gate) PowerOff(ctx context.Context, id string) error {
	g.mu.Lock()
	g.calls[id]++
	first := g.calls[id] == 1
	g.mu.Unlock()
	if first {
		g.entered <- id
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Driver.PowerOff(ctx, id)
}

func (g *gate) count(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[id]
}

// TestStaleBaseDecidesAgain writes the instance (same transition, new
// metadata) while its stop step runs on the record the watch delivered.
// The executor's outcome then loses the guard; it must take the newer
// record, run the step again (drivers are idempotent) and end the stop,
// keeping the other write: neither the transition nor the write is lost.
func TestStaleBaseDecidesAgain(t *testing.T) {
	g := &gate{entered: make(chan string, 1), release: make(chan struct{}), calls: map[string]int{}}
	e := newEnv(t, func(d driver.Driver) driver.Driver { g.Driver = d; return g }, nil)
	ctx := context.Background()
	id := e.create(t, "s")
	e.settle(t, id)
	e.begin(t, id, instance.ActionStop)
	select {
	case got := <-g.entered:
		if got != id {
			t.Fatalf("PowerOff of %s, want %s", got, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stop step never started")
	}
	rec, err := e.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	st := rec.State
	st.Metadata = map[string]string{"written": "meanwhile"}
	if _, err := e.api.Update(ctx, rec, id, &st, rec.Transition); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	final, _ := e.settle(t, id)
	if final.Status() != instance.StatusShutoff || final.State.Metadata["written"] != "meanwhile" {
		t.Fatalf("after the stop: %s with metadata %v, want SHUTOFF keeping the concurrent write", final.Status(), final.State.Metadata)
	}
	if n := g.count(id); n != 2 {
		t.Fatalf("PowerOff ran %d times, want 2 (the stale outcome refused, the step decided again)", n)
	}
	h, err := e.store.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range h {
		got = append(got, fmt.Sprintf("%s>%s:%s", r.From, r.To, r.Cause))
	}
	if want := ">BUILD:api BUILD>ACTIVE:driver ACTIVE>STOPPING:api STOPPING>SHUTOFF:driver"; strings.Join(got, " ") != want {
		t.Fatalf("history %v, want %s", got, want)
	}
	if !strings.Contains(e.logs.String(), "executor: outcome lost the guard") {
		t.Fatalf("no stale outcome logged:\n%s", e.logs.String())
	}
}

// powerCounter is the fake plugin counting PowerOff and PowerOn calls.
type powerCounter struct {
	driver.Driver
	mu    sync.Mutex
	calls map[string]int // "off id", "on id"
}

func (c *powerCounter) add(op, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op+" "+id]++
}

func (c *powerCounter) count(op, id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op+" "+id]
}

func (c *powerCounter) PowerOff(ctx context.Context, id string) error {
	c.add("off", id)
	return c.Driver.PowerOff(ctx, id)
}

func (c *powerCounter) PowerOn(ctx context.Context, id string) error {
	c.add("on", id)
	return c.Driver.PowerOn(ctx, id)
}

// heldWatch is an Observer that, while on, stops the executor's watch
// at each event: Observe sends the event to arrived and waits for next
// before the executor may act on it.
type heldWatch struct {
	mu      sync.Mutex
	on      bool
	arrived chan store.TransitionEvent
	next    chan struct{}
	done    chan struct{} // closed: hold nothing any more
}

func (h *heldWatch) Listed([]store.Record, int64) {}

func (h *heldWatch) Wrote(store.Record) {}

func (h *heldWatch) Observe(ev store.TransitionEvent) {
	h.mu.Lock()
	on := h.on
	h.mu.Unlock()
	if !on {
		return
	}
	select {
	case h.arrived <- ev:
	case <-h.done:
		return
	}
	select {
	case <-h.next:
	case <-h.done:
	}
}

func (h *heldWatch) set(on bool) {
	h.mu.Lock()
	h.on = on
	h.mu.Unlock()
}

// TestHandedTransitionRunsOnce begins a stop through a Service whose
// Handoff is the executor, with the executor's watch held. The stop must
// run and end without the watch. When the watch then brings back the
// echo of the stop's begin, after the worker has finished and retired,
// that old news must not start the step again (it did, before the
// executor remembered what retired workers knew).
func TestHandedTransitionRunsOnce(t *testing.T) {
	c := &powerCounter{calls: map[string]int{}}
	w := &heldWatch{arrived: make(chan store.TransitionEvent), next: make(chan struct{}), done: make(chan struct{})}
	e := newEnv(t, func(d driver.Driver) driver.Driver { c.Driver = d; return c }, w)
	t.Cleanup(func() { close(w.done) }) // before the executor stops, even when the test fails
	handed := lifecycle.NewService(lifecycle.Config{Store: e.store, Recorder: e.api, Catalog: catalog, Node: "n1", Driver: "fake", Handoff: e.ex})
	ctx := context.Background()
	rec, err := handed.Create(ctx, lifecycle.CreateRequest{Name: "h", FlavorRef: "m1.tiny", ImageRef: "cirros", Project: "p", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	id := rec.State.ID
	created, _ := e.settle(t, id)
	if created.Status() != instance.StatusActive {
		t.Fatalf("created %s is %s, want ACTIVE", id, created.Status())
	}

	w.set(true)
	if _, err := handed.Begin(ctx, id, instance.ActionStop, lifecycle.ActionRequest{User: "u"}); err != nil {
		t.Fatal(err)
	}
	// The stop's begin, held; the watch may still be delivering the
	// create's echoes (the create was handed too), which pass.
	begun := <-w.arrived
	for begun.Revision <= created.StateRev {
		w.next <- struct{}{}
		begun = <-w.arrived
	}
	if begun.ID != id || begun.Transition == nil || begun.Transition.Action != instance.ActionStop {
		t.Fatalf("first held event %+v, want the stop's begin of %s", begun, id)
	}
	if got, _ := e.settle(t, id); got.Status() != instance.StatusShutoff {
		t.Fatalf("after a handed stop with the watch held, %s is %s, want SHUTOFF", id, got.Status())
	}
	time.Sleep(100 * time.Millisecond) // the worker retires right after its write
	w.next <- struct{}{}               // the begin's echo reaches dispatch
	if end := <-w.arrived; end.Transition != nil {
		t.Fatalf("second held event %+v, want the stop's end", end)
	}
	// The stop's end is held, so nothing newer can hide a worker started
	// on the echo: it would call PowerOff again at once.
	time.Sleep(500 * time.Millisecond)
	if n := c.count("off", id); n != 1 {
		t.Fatalf("PowerOff ran %d times, want once: the begin's echo ran the step again", n)
	}
	w.set(false)
	w.next <- struct{}{}

	// A start the executor can learn of only from its watch.
	e.begin(t, id, instance.ActionStart)
	if got, _ := e.settle(t, id); got.Status() != instance.StatusActive {
		t.Fatalf("after the start %s is %s, want ACTIVE", id, got.Status())
	}
	if off, on := c.count("off", id), c.count("on", id); off != 1 || on != 1 {
		t.Fatalf("PowerOff ran %d times and PowerOn %d, want once each", off, on)
	}
	if got := e.reads.Load(); got != 1 {
		t.Fatalf("the executor sent %d reads, want 1 (its startup list)", got)
	}
}

// heldAnswers holds, once armed, the answer to the executor's next etcd
// transaction: etcd has applied it, but the writer hears of it only when
// the test releases it (or when its context ends, as a real client
// does), so the watch brings the write to the executor first.
type heldAnswers struct {
	mu      sync.Mutex
	armed   bool
	landed  chan struct{}
	release chan struct{}
}

func (h *heldAnswers) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = true
}

func (h *heldAnswers) after(ctx context.Context, resp *clientv3.TxnResponse, err error) (*clientv3.TxnResponse, error) {
	h.mu.Lock()
	armed := h.armed
	h.armed = false // one answer held
	h.mu.Unlock()
	if err != nil || !armed {
		return resp, err
	}
	h.landed <- struct{}{}
	select {
	case <-h.release:
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// echoes is an Observer that reports the watch's events and the
// executor's own writes.
type echoes struct {
	events chan store.TransitionEvent
	wrote  chan store.Record
}

func (o *echoes) Listed([]store.Record, int64)     {}
func (o *echoes) Observe(ev store.TransitionEvent) { o.events <- ev }
func (o *echoes) Wrote(rec store.Record)           { o.wrote <- rec }

// TestOutcomeLandsWhenItsEchoComesFirst holds the answer to a stop's
// outcome write until the watch has brought that write back to the
// executor. The echo (the transition gone) must not hide the write that
// caused it: the executor must still hear that its write landed and tell
// its Observer, which is how this node's waiters learn of the outcome
// ahead of the watch (and how the status-change metric counts it). The
// echo used to cancel the write's context, and the write went
// unreported; now the outcome is written under the executor's context,
// and a store commit whose context ends in flight finds out whether it
// landed (core/store).
func TestOutcomeLandsWhenItsEchoComesFirst(t *testing.T) {
	h := &heldAnswers{landed: make(chan struct{}), release: make(chan struct{})}
	o := &echoes{events: make(chan store.TransitionEvent, 64), wrote: make(chan store.Record, 64)}
	e := newEnvKV(t, nil, o, func(kv clientv3.KV) clientv3.KV { return testenv.AfterTxn(kv, h.after) })
	id := e.create(t, "echo")
	if rec, _ := e.settle(t, id); rec.Status() != instance.StatusActive {
		t.Fatalf("created %s is %s, want ACTIVE", id, rec.Status())
	}
	h.arm()
	e.begin(t, id, instance.ActionStop)
	select {
	case <-h.landed:
	case <-time.After(20 * time.Second):
		t.Fatal("the stop's outcome was never written")
	}
	// The outcome is in etcd; its echo reaches dispatch while the writer
	// still waits for its answer.
	deadline := time.After(20 * time.Second)
	for echoed := false; !echoed; {
		select {
		case ev := <-o.events:
			echoed = ev.ID == id && ev.Transition == nil
		case <-deadline:
			t.Fatal("the watch never brought the stop's end")
		}
	}
	time.Sleep(100 * time.Millisecond) // dispatch runs right after Observe
	close(h.release)
	deadline = time.After(20 * time.Second)
	for {
		select {
		case rec := <-o.wrote:
			if rec.State.ID == id && rec.Status() == instance.StatusShutoff {
				if final, _ := e.settle(t, id); final.Status() != instance.StatusShutoff {
					t.Fatalf("after the stop %s is %s, want SHUTOFF", id, final.Status())
				}
				return
			}
		case <-deadline:
			t.Fatalf("the executor never reported its SHUTOFF write (its answer was held until the echo came); log:\n%s", e.logs.String())
		}
	}
}

// syncBuffer is a log sink safe for the executor's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
