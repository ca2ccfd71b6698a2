package runtime

import (
	"errors"
	"strings"

	"github.com/berthrun/berth/internal/errdefs"
)

// Why a container's or an exec's command could not be started. An error
// from Start or Exec wraps one of these when the command itself was the
// problem, so callers decide exit codes with errors.Is (StartExitCode).
var (
	// ErrCommandNotFound: the command does not exist in the container.
	ErrCommandNotFound = errdefs.Derive(errdefs.ErrNotFound, "command not found")
	// ErrCommandNotExecutable: the command exists but cannot be run.
	ErrCommandNotExecutable = errdefs.Derive(errdefs.ErrPermissionDenied, "command not executable")
)

// startError keeps libcontainer's message and adds the kind it means.
type startError struct {
	err  error
	kind error
}

func (e *startError) Error() string        { return e.err.Error() }
func (e *startError) Unwrap() error        { return e.err }
func (e *startError) Is(target error) bool { return errors.Is(e.kind, target) }

// classifyStart gives a failed libcontainer Run its kind. The container's
// init reports an exec failure as text through its sync pipe, so the text is
// all there is to read: this is the one parse of libcontainer's messages
// for it.
func classifyStart(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		return &startError{err: err, kind: ErrCommandNotFound}
	case strings.Contains(msg, "permission denied"):
		return &startError{err: err, kind: ErrCommandNotExecutable}
	}
	return err
}

// StartExitCode is docker's exit code for a command that could not be
// started: 127 when it does not exist, 126 when it cannot be executed, and
// 0 when the command was not the problem (the caller then uses its own:
// 128 for a container, 126 for an exec, as docker does).
func StartExitCode(err error) int {
	switch {
	case errors.Is(err, ErrCommandNotFound):
		return 127
	case errors.Is(err, ErrCommandNotExecutable):
		return 126
	}
	return 0
}
