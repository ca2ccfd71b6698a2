package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindRoundTrip(t *testing.T) {
	inUse := Derive(ErrFailedPrecondition, "volume is in use")
	for _, tc := range []struct {
		name string
		err  error
		kind string
		is   error
	}{
		{"plain kind", ErrNotFound, "not-found", ErrNotFound},
		{"wrapped", fmt.Errorf("network x: %w", ErrAlreadyExists), "already-exists", ErrAlreadyExists},
		{"derived", fmt.Errorf("rm: %w", inUse), "failed-precondition", ErrFailedPrecondition},
		{"errorf", Errorf(ErrInvalidArgument, "bad %s", "name"), "invalid-argument", ErrInvalidArgument},
		{"no kind", errors.New("engine failed"), "", nil},
		{"nil", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := Kind(tc.err)
			if k != tc.kind {
				t.Fatalf("Kind = %q, want %q", k, tc.kind)
			}
			if tc.err == nil {
				return
			}
			back := New(k, tc.err.Error())
			if back.Error() != tc.err.Error() {
				t.Errorf("text %q, want %q", back, tc.err)
			}
			if tc.is != nil && !errors.Is(back, tc.is) {
				t.Errorf("rebuilt error is not %v", tc.is)
			}
			if tc.is == nil && Kind(back) != "" {
				t.Errorf("rebuilt error has kind %q", Kind(back))
			}
		})
	}
}

func TestDerivedSentinel(t *testing.T) {
	inUse := Derive(ErrFailedPrecondition, "in use")
	err := fmt.Errorf("remove x: %w", inUse)
	if !errors.Is(err, inUse) || !errors.Is(err, ErrFailedPrecondition) {
		t.Fatal("derived sentinel must match itself and its kind")
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatal("derived sentinel matches another kind")
	}
	nested := Derive(inUse, "image in use")
	if !errors.Is(nested, inUse) || !errors.Is(nested, ErrFailedPrecondition) {
		t.Fatal("a sentinel derived twice must match both ancestors")
	}
}
