package runtime

import (
	"errors"
	"fmt"
	"testing"

	"github.com/berthrun/berth/internal/errdefs"
)

func TestClassifyStart(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		code int
		kind error
	}{
		{`exec: "x": executable file not found in $PATH`, 127, errdefs.ErrNotFound},
		{"open /bin/x: no such file or directory", 127, errdefs.ErrNotFound},
		{"exec /x: permission denied", 126, errdefs.ErrPermissionDenied},
		{"something else", 0, nil},
	} {
		err := fmt.Errorf("start c1: %w", classifyStart(errors.New(tc.msg)))
		if got := StartExitCode(err); got != tc.code {
			t.Errorf("%q: code %d, want %d", tc.msg, got, tc.code)
		}
		if tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Errorf("%q: not of kind %v", tc.msg, tc.kind)
		}
		if err.Error() != "start c1: "+tc.msg {
			t.Errorf("message changed: %q", err)
		}
	}
}
