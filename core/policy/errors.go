package policy

import (
	"errors"
	"fmt"
)

// Sentinel errors. Load and call errors wrap them; check with errors.Is.
var (
	// ErrNotWasm: the file is not a valid WebAssembly module.
	ErrNotWasm = errors.New("not a WebAssembly module")
	// ErrABIVersion: the module speaks another ABI version.
	ErrABIVersion = errors.New("unsupported policy ABI version")
	// ErrMissingExport: the module lacks an ABI export, exports it with the
	// wrong signature, or does not declare the configured hook.
	ErrMissingExport = errors.New("missing policy export")
	// ErrSettings: lucid_init refused the settings. The error is a
	// *SettingsError.
	ErrSettings = errors.New("settings rejected")
	// ErrConfig: the Config itself is invalid (unknown hook or fallback).
	ErrConfig = errors.New("invalid policy config")
	// ErrRequest: the host refused to send a request that does not fit
	// its hook (for example a reconcile case without the record it needs).
	// The fallback applies; the policy was not called.
	ErrRequest = errors.New("invalid policy request")

	// ErrTrap: the guest trapped (a Go panic shows as "unreachable"),
	// exited, or ran out of memory. The instance is discarded.
	ErrTrap = errors.New("policy trapped")
	// ErrMemory: the guest hit its memory limit. It comes with ErrTrap.
	ErrMemory = errors.New("policy out of memory")
	// ErrTimeout: the call ran past its time budget and was aborted.
	ErrTimeout = errors.New("policy timed out")
	// ErrBadResponse: the guest returned something that is not a valid
	// response (bad pointer, malformed JSON, unknown decision).
	ErrBadResponse = errors.New("malformed policy response")
	// ErrGuest: the guest answered, but reported that it failed (a handler
	// panic the SDK recovered, a request it could not decode).
	ErrGuest = errors.New("policy reported failure")
	// ErrClosed: the Module or Engine is closed.
	ErrClosed = errors.New("policy closed")
)

// LoadError says which policy failed to load and why. It unwraps to the
// cause: an fs error for a missing file, or one of the sentinels above.
type LoadError struct {
	Name string // the policy's configured name (HCL label)
	Path string // the module file
	Err  error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("policy %q (%s): %v", e.Name, e.Path, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// SettingsError is the policy's own explanation of why it refused its
// settings, to be shown at the HCL settings line. It matches ErrSettings.
type SettingsError struct {
	Reason string
}

func (e *SettingsError) Error() string { return "settings rejected: " + e.Reason }

// Is makes errors.Is(err, ErrSettings) hold.
func (e *SettingsError) Is(target error) bool { return target == ErrSettings }
