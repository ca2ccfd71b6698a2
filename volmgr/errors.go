package volmgr

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of failure a caller can branch on with errors.Is.
var (
	ErrNotFound      = errors.New("no such volume")
	ErrInUse         = errors.New("volume is in use")
	ErrAlreadyExists = errors.New("volume already exists")
	ErrUnsupported   = errors.New("unsupported")
	ErrInvalid       = errors.New("invalid argument")
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
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

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
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// kindError is a message of a given kind (ErrInvalid, ErrUnsupported,
// ErrAlreadyExists) without the kind's own text in it.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func invalidf(format string, args ...any) error {
	return &kindError{ErrInvalid, fmt.Sprintf(format, args...)}
}

func unsupportedf(format string, args ...any) error {
	return &kindError{ErrUnsupported, fmt.Sprintf(format, args...)}
}

func existsf(format string, args ...any) error {
	return &kindError{ErrAlreadyExists, fmt.Sprintf(format, args...)}
}
