package netmgr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berthrun/berth/internal/errdefs"
)

// Errors callers branch on with errors.Is: berth's kinds (internal/errdefs)
// under netmgr's names.
var (
	// ErrNotFound: no such network or endpoint.
	ErrNotFound = errdefs.ErrNotFound
	// ErrAlreadyExists: the object already exists (a netns file, an
	// interface name inside the container).
	ErrAlreadyExists = errdefs.ErrAlreadyExists
	// ErrInUse: a network still has endpoints attached.
	ErrInUse = errdefs.Derive(errdefs.ErrFailedPrecondition, "in use")
	// ErrConflict: a request disagrees with what exists (another
	// configuration for an existing network, an overlapping subnet, an
	// address held by another container).
	ErrConflict = errdefs.ErrConflict
	// ErrExhausted: no subnet left in the pool or no address left in a
	// network.
	ErrExhausted = errdefs.Derive(errdefs.ErrResourceExhausted, "exhausted")
	// ErrInvalid: a malformed argument.
	ErrInvalid = errdefs.ErrInvalidArgument
)

// InUseError is returned by RemoveNetwork while containers are attached.
type InUseError struct {
	Network    string
	Containers []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("network %s has active endpoints (%s)", e.Network, strings.Join(e.Containers, ", "))
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return errors.Is(ErrInUse, target) }

// AddressError is returned by Attach when a requested address cannot be
// given.
type AddressError struct {
	Network string
	Addr    string
	Reason  string // "outside subnet", "reserved", "in use by <container>"
	err     error
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("address %s on network %s: %s", e.Addr, e.Network, e.Reason)
}

func (e *AddressError) Unwrap() error { return e.err }

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}
