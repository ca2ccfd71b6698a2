// Package errdefs is berth's one vocabulary of error kinds. Every library
// (engine/image, engine/runtime, netmgr, volmgr, the supervisor) returns
// errors that wrap one of these kinds, so that a caller branches with
// errors.Is on what went wrong without knowing which package said it. The
// kinds also cross the supervisor's socket by name (Kind, New), so the CLI
// can tell "no such service" from "the engine failed".
package errdefs

import (
	"errors"
	"fmt"
)

// The kinds. A package may define its own sentinels of a kind with Derive;
// errors.Is then matches both the sentinel and its kind.
var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object by that name exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the request disagrees with what exists, or is
	// ambiguous, or would need force.
	ErrConflict = errors.New("conflict")
	// ErrInvalidArgument: a malformed name, reference, option or request.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFailedPrecondition: the object is not in a state that allows the
	// request (in use, not running, not started).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrResourceExhausted: no address, subnet or other resource left.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrNotImplemented: a driver or option berth does not support.
	ErrNotImplemented = errors.New("not implemented")
	// ErrUnavailable: the service that should answer (the supervisor) is
	// not there or went away.
	ErrUnavailable = errors.New("unavailable")
	// ErrPermissionDenied: the operation is not allowed (a command that
	// cannot be executed).
	ErrPermissionDenied = errors.New("permission denied")
)

// kinds names each kind on the wire; the names are stable.
var kinds = []struct {
	name string
	err  error
}{
	{"not-found", ErrNotFound},
	{"already-exists", ErrAlreadyExists},
	{"conflict", ErrConflict},
	{"invalid-argument", ErrInvalidArgument},
	{"failed-precondition", ErrFailedPrecondition},
	{"resource-exhausted", ErrResourceExhausted},
	{"not-implemented", ErrNotImplemented},
	{"unavailable", ErrUnavailable},
	{"permission-denied", ErrPermissionDenied},
}

// Kind names the first kind err is of, in the order above, or "" for an
// error of no known kind.
func Kind(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// New returns an error whose text is msg and whose kind is the one named
// (as Kind returned it); an unknown name gives an error of no kind. The
// client of a socket rebuilds the server's errors with it.
func New(kind, msg string) error {
	for _, k := range kinds {
		if k.name == kind {
			return &kindError{kind: k.err, msg: msg}
		}
	}
	return errors.New(msg)
}

// Derive returns a sentinel with its own text that is also of kind: a
// package keeps its own name for a condition (volmgr.ErrInUse) while
// errors.Is(err, errdefs.ErrFailedPrecondition) holds too.
func Derive(kind error, msg string) error {
	return &kindError{kind: kind, msg: msg}
}

// Errorf formats a message of the given kind whose text does not repeat the
// kind's own (unlike fmt.Errorf("%w: ...", kind)).
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// kindError is a message of a kind, without the kind's text in it.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }

// Is matches the kind; errors.Is matches the error itself by identity.
func (e *kindError) Is(target error) bool {
	if target == e.kind {
		return true
	}
	// A derived sentinel's kind may itself be derived.
	return errors.Is(e.kind, target)
}

// IsNotFound, IsAlreadyExists, ... are shorthands for errors.Is.
func IsNotFound(err error) bool           { return errors.Is(err, ErrNotFound) }
func IsAlreadyExists(err error) bool      { return errors.Is(err, ErrAlreadyExists) }
func IsConflict(err error) bool           { return errors.Is(err, ErrConflict) }
func IsInvalidArgument(err error) bool    { return errors.Is(err, ErrInvalidArgument) }
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }
func IsUnavailable(err error) bool        { return errors.Is(err, ErrUnavailable) }
func IsPermissionDenied(err error) bool   { return errors.Is(err, ErrPermissionDenied) }
func IsResourceExhausted(err error) bool  { return errors.Is(err, ErrResourceExhausted) }
func IsNotImplemented(err error) bool     { return errors.Is(err, ErrNotImplemented) }
