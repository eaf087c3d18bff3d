package driver

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// The Calls stream (see driver.proto) carries the host's instance calls,
// a message each way, instead of one gRPC stream per call. A unary call
// opens an HTTP/2 stream, sends headers, a message and trailers, and the
// plugin starts a handler goroutine inside gRPC's transport for it; on
// the path a status change takes, that was a fifth of all the CPU the
// three processes spent (internal/throughput/RATIONALE.md, lever 18).
// Both ends of the stream live here, beside the unary ones, and answer
// the same way: the plugin side runs the unary handler, so errors, codes
// and optional methods mean exactly what they mean on a unary call.

// callsReadyKey is the response header a plugin sends once it serves the
// Calls stream, so that the host can tell a live stream from a plugin
// built before Calls existed without sending a call first.
const callsReadyKey = "lucid-calls"

// Calls serves the host's calls on one stream until the host closes it.
// Each call runs in its own goroutine under a context that the stream's
// end, the call's timeout or the host's cancel message ends; replies are
// sent as calls end. When the host closes its side, the calls in flight
// still reply before Calls returns.
func (s *server) Calls(stream driverpb.Driver_CallsServer) error {
	if err := stream.SendHeader(metadata.Pairs(callsReadyKey, "ready")); err != nil {
		return err
	}
	ctx := stream.Context()
	var (
		sendMu   sync.Mutex // a stream's Send is not safe for concurrent use
		mu       sync.Mutex
		inflight = make(map[uint64]context.CancelFunc)
		calls    sync.WaitGroup
	)
	defer calls.Wait()
	for {
		call, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		id := call.GetId()
		if _, ok := call.GetRequest().(*driverpb.Call_Cancel); ok {
			mu.Lock()
			if cancel, ok := inflight[id]; ok {
				cancel()
			}
			mu.Unlock()
			continue
		}
		cctx, cancel := callContext(ctx, call.GetTimeoutNs())
		mu.Lock()
		inflight[id] = cancel
		mu.Unlock()
		calls.Add(1)
		go func() {
			defer calls.Done()
			reply := s.answer(cctx, call)
			mu.Lock()
			delete(inflight, id)
			mu.Unlock()
			cancel()
			sendMu.Lock()
			defer sendMu.Unlock()
			// A failed Send means the stream broke; Recv returns that
			// error to the loop above, which ends Calls.
			_ = stream.Send(reply)
		}()
	}
}

// callContext is a call's context on a stream with context ctx: ended by
// its cancel func, and after timeoutNs nanoseconds when that is positive.
func callContext(ctx context.Context, timeoutNs int64) (context.Context, context.CancelFunc) {
	if timeoutNs > 0 {
		return context.WithTimeout(ctx, time.Duration(timeoutNs))
	}
	return context.WithCancel(ctx)
}

// answer runs one call through the unary handler of the same method and
// returns its reply: the status the unary RPC would have ended with, and
// Inspect's answer.
func (s *server) answer(ctx context.Context, call *driverpb.Call) *driverpb.Reply {
	reply := &driverpb.Reply{Id: call.GetId()}
	var err error
	switch r := call.GetRequest().(type) {
	case *driverpb.Call_Spawn:
		_, err = s.Spawn(ctx, r.Spawn)
	case *driverpb.Call_Destroy:
		_, err = s.Destroy(ctx, r.Destroy)
	case *driverpb.Call_Inspect:
		reply.Inspect, err = s.Inspect(ctx, r.Inspect)
	case *driverpb.Call_PowerOff:
		_, err = s.PowerOff(ctx, r.PowerOff)
	case *driverpb.Call_PowerOn:
		_, err = s.PowerOn(ctx, r.PowerOn)
	case *driverpb.Call_Reboot:
		_, err = s.Reboot(ctx, r.Reboot)
	case *driverpb.Call_Rebuild:
		_, err = s.Rebuild(ctx, r.Rebuild)
	case *driverpb.Call_Resize:
		_, err = s.Resize(ctx, r.Resize)
	case *driverpb.Call_ConfirmResize:
		_, err = s.ConfirmResize(ctx, r.ConfirmResize)
	case *driverpb.Call_RevertResize:
		_, err = s.RevertResize(ctx, r.RevertResize)
	default:
		// A request of a newer protocol decodes as none this plugin knows.
		err = status.Error(codes.Unimplemented, "calls: this plugin does not know the request (is the host newer than its SDK?)")
	}
	st := status.Convert(err)
	reply.Code, reply.Message = int32(st.Code()), st.Message()
	return reply
}

// callStream is the host's end of a Calls stream: callers send from their
// own goroutines, and one reader hands each reply to the caller waiting
// for its id. It breaks for good when the stream does (the plugin exited
// or its connection closed); the Client then opens another.
type callStream struct {
	stream driverpb.Driver_CallsClient
	end    context.CancelFunc // ends the stream
	send   chan struct{}      // holds the right to Send (one at a time)

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan *driverpb.Reply
	broken  chan struct{} // closed once the stream broke; err says how
	err     error
}

// errCallsUnserved is openCalls' answer for a plugin that does not serve
// the Calls stream: the Client uses the unary RPCs from then on.
var errCallsUnserved = errors.New("calls: the plugin does not serve the Calls stream")

// openCalls opens a Calls stream on rpc. It gives up when ctx ends (the
// caller falls back to a unary call, which ctx ends in turn), and returns
// errCallsUnserved for a plugin built before Calls existed.
func openCalls(ctx context.Context, rpc driverpb.DriverClient) (*callStream, error) {
	// The stream outlives ctx, which bounds only the opening.
	sctx, end := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, end)
	stream, err := rpc.Calls(sctx)
	if err != nil {
		stop()
		end()
		return nil, err
	}
	md, _ := stream.Header() // a stream that failed reports its error on Recv
	if len(md.Get(callsReadyKey)) == 0 {
		_, err := stream.Recv()
		stop()
		end()
		if status.Code(err) == codes.Unimplemented {
			return nil, errCallsUnserved
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("calls: the plugin ended the stream before it was ready")
		}
		return nil, err
	}
	if !stop() { // ctx ended meanwhile, and ended the stream with it
		end()
		return nil, ctx.Err()
	}
	cs := &callStream{
		stream:  stream,
		end:     end,
		send:    make(chan struct{}, 1),
		waiting: make(map[uint64]chan *driverpb.Reply),
		broken:  make(chan struct{}),
	}
	go cs.read()
	return cs, nil
}

// read hands replies to their callers until the stream breaks, then fails
// every call still waiting.
func (cs *callStream) read() {
	for {
		reply, err := cs.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "calls: the plugin ended the stream")
			}
			cs.mu.Lock()
			cs.err = err
			close(cs.broken)
			cs.mu.Unlock()
			cs.end()
			return
		}
		cs.mu.Lock()
		ch, ok := cs.waiting[reply.GetId()]
		delete(cs.waiting, reply.GetId())
		cs.mu.Unlock()
		if ok {
			ch <- reply // buffered: the reader never waits on a caller
		}
	}
}

// isBroken reports whether the stream has broken.
func (cs *callStream) isBroken() bool {
	select {
	case <-cs.broken:
		return true
	default:
		return false
	}
}

// call sends call and waits for its reply, ctx's end, or the stream's.
// The error unwraps as a unary call's would (fromStatus): the driver's
// sentinels, context errors, and the stream's own status when it broke
// (codes.Unavailable once the plugin is gone).
func (cs *callStream) call(ctx context.Context, call *driverpb.Call) (*driverpb.Reply, error) {
	if ctx.Err() != nil {
		return nil, contextError(ctx)
	}
	ch := make(chan *driverpb.Reply, 1)
	cs.mu.Lock()
	if cs.isBroken() {
		cs.mu.Unlock()
		return nil, fromStatus(cs.err)
	}
	cs.next++
	call.Id = cs.next
	cs.waiting[call.Id] = ch
	cs.mu.Unlock()

	if dl, ok := ctx.Deadline(); ok {
		call.TimeoutNs = max(int64(time.Until(dl)), 1)
	}
	if err := cs.sendCall(ctx, call); err != nil {
		cs.forget(call.Id)
		return nil, err
	}
	select {
	case reply := <-ch:
		return reply, replyError(reply)
	case <-ctx.Done():
		cs.forget(call.Id)
		go cs.cancelCall(call.Id)
		return nil, contextError(ctx)
	case <-cs.broken:
		select {
		case reply := <-ch: // it came in just before the stream broke
			return reply, replyError(reply)
		default:
		}
		return nil, fromStatus(cs.err)
	}
}

// sendCall sends call once it has the stream to itself. Waiting for that
// honours ctx; the Send itself blocks only while the plugin reads none of
// the stream (gRPC's flow control), which ends when the stream does.
func (cs *callStream) sendCall(ctx context.Context, call *driverpb.Call) error {
	select {
	case cs.send <- struct{}{}:
	case <-ctx.Done():
		return contextError(ctx)
	case <-cs.broken:
		return fromStatus(cs.err)
	}
	err := cs.stream.Send(call)
	<-cs.send
	if errors.Is(err, io.EOF) {
		// Send reports io.EOF for a broken stream; Recv has the reason.
		<-cs.broken
		return fromStatus(cs.err)
	}
	return fromStatus(err)
}

// cancelCall tells the plugin that the host gave up on call id, so that
// the driver's context for it ends as a unary call's would.
func (cs *callStream) cancelCall(id uint64) {
	_ = cs.sendCall(context.Background(), &driverpb.Call{Id: id, Request: &driverpb.Call_Cancel{Cancel: &driverpb.CancelCall{}}})
}

// forget stops waiting for call id's reply.
func (cs *callStream) forget(id uint64) {
	cs.mu.Lock()
	delete(cs.waiting, id)
	cs.mu.Unlock()
}

// contextError is what a call whose ctx ended returns, as a unary call
// would: the context's status, unwrapping to its error.
func contextError(ctx context.Context) error {
	return fromStatus(status.FromContextError(ctx.Err()).Err())
}

// replyError is the error a reply carries, as fromStatus gives it for a
// unary call that ended with the same status.
func replyError(r *driverpb.Reply) error {
	if codes.Code(r.GetCode()) == codes.OK {
		return nil
	}
	return fromStatus(status.Error(codes.Code(r.GetCode()), r.GetMessage()))
}
