package driver

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// This file is the one place where Go errors and gRPC status codes are
// translated, in both directions. Keep the two tables in sync.

// toStatus turns a Driver method's error into a gRPC status error (plugin
// side). The message keeps the driver's full error text.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrInvalidConfig):
		code = codes.InvalidArgument
	case errors.Is(err, ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// fromStatus turns an RPC error back into an error that unwraps to the
// matching sentinel (host side). The result still reports its gRPC status
// through GRPCStatus, so status.Code(err) keeps working, e.g. to detect
// codes.Unavailable when the plugin process is gone.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var sentinel error
	switch st.Code() {
	case codes.NotFound:
		sentinel = ErrNotFound
	case codes.InvalidArgument:
		sentinel = ErrInvalidConfig
	case codes.Unimplemented:
		sentinel = ErrUnsupported
	case codes.Canceled:
		sentinel = context.Canceled
	case codes.DeadlineExceeded:
		sentinel = context.DeadlineExceeded
	}
	return &rpcError{st: st, sentinel: sentinel}
}

// rpcError is an error received from a plugin.
type rpcError struct {
	st       *status.Status
	sentinel error // nil when the code has no sentinel
}

func (e *rpcError) Error() string              { return e.st.Message() }
func (e *rpcError) Unwrap() error              { return e.sentinel }
func (e *rpcError) GRPCStatus() *status.Status { return e.st }
