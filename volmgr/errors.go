package volmgr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berthrun/berth/internal/errdefs"
)

// Kinds of failure a caller can branch on with errors.Is: berth's kinds
// (internal/errdefs), with volmgr's own texts.
var (
	ErrNotFound      = errdefs.Derive(errdefs.ErrNotFound, "no such volume")
	ErrInUse         = errdefs.Derive(errdefs.ErrFailedPrecondition, "volume is in use")
	ErrAlreadyExists = errdefs.Derive(errdefs.ErrAlreadyExists, "volume already exists")
	ErrUnsupported   = errdefs.Derive(errdefs.ErrNotImplemented, "unsupported")
	ErrInvalid       = errdefs.Derive(errdefs.ErrInvalidArgument, "invalid argument")
)

// NotFoundError says which volume is missing.
type NotFoundError struct {
	Name string
	// External is set when the volume was declared external in a compose
	// file: berth never creates it, the user must.
	External bool
}

func (e *NotFoundError) Error() string {
	if e.External {
		return fmt.Sprintf("external volume %q not found: create it with \"berth volume create %s\"", e.Name, e.Name)
	}
	return fmt.Sprintf("no such volume: %s", e.Name)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return errors.Is(ErrNotFound, target) }

// InUseError names the containers that keep a volume from being removed.
type InUseError struct {
	Name       string
	Containers []string
}

func (e *InUseError) Error() string {
	// Docker's wording, which scripts grep for.
	return fmt.Sprintf("remove %s: volume is in use - [%s]", e.Name, strings.Join(e.Containers, ", "))
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return errors.Is(ErrInUse, target) }

// invalidf, unsupportedf and existsf are messages of a kind without the
// kind's own text in them.
func invalidf(format string, args ...any) error {
	return errdefs.Errorf(ErrInvalid, format, args...)
}

func unsupportedf(format string, args ...any) error {
	return errdefs.Errorf(ErrUnsupported, format, args...)
}

func existsf(format string, args ...any) error {
	return errdefs.Errorf(ErrAlreadyExists, format, args...)
}
