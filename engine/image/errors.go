package image

import (
	"errors"
	"fmt"

	"github.com/berthrun/berth/internal/errdefs"
)

// Error kinds, for errors.Is: berth's kinds (internal/errdefs) under the
// store's names. Every error the store returns for one of these conditions
// wraps the matching kind.
var (
	// ErrNotFound: no image, layer or container record by that name.
	ErrNotFound = errdefs.ErrNotFound
	// ErrInUse: the image is used by a container.
	ErrInUse = errdefs.Derive(errdefs.ErrFailedPrecondition, "in use")
	// ErrConflict: the request is ambiguous or would need force.
	ErrConflict = errdefs.ErrConflict
	// ErrInvalid: a malformed reference, archive or option.
	ErrInvalid = errdefs.ErrInvalidArgument
)

// NotFoundError is returned when a reference names no image in the store.
type NotFoundError struct {
	Ref string
}

func (e *NotFoundError) Error() string { return "No such image: " + e.Ref }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// InUseError is returned when an image cannot be removed because containers use it.
type InUseError struct {
	Ref        string
	ID         string
	Containers []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s",
		e.Ref, short(e.Containers[0]), short(e.ID))
}

// Is makes errors.Is(err, ErrInUse) and errors.Is(err, ErrConflict) true.
func (e *InUseError) Is(target error) bool {
	return errors.Is(ErrInUse, target) || target == ErrConflict
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func conflictf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}
