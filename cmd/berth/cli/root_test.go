package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/berthrun/berth/supervisor"
)

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"plain", errors.New("no such service: web\n"), 1, "no such service: web"},
		{"command's code", &exitError{code: 3}, 3, ""},
		{"command's code and line", fmt.Errorf("x: %w", &exitError{code: 1, msg: "Error response: v"}), 1, "Error response: v"},
		{"exec not found", &supervisor.ExecError{Msg: `exec: "x": executable file not found in $PATH`, Code: 127}, 127, `OCI runtime exec failed: exec: "x": executable file not found in $PATH`},
		{"exec not executable", &supervisor.ExecError{Msg: "permission denied", Code: 126}, 126, "OCI runtime exec failed: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := exitStatus(tc.err)
			if code != tc.code || msg != tc.msg {
				t.Errorf("got %d %q, want %d %q", code, msg, tc.code, tc.msg)
			}
		})
	}
}
