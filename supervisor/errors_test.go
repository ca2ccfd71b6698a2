package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/volmgr"
)

// TestErrorKindCrossesSocket: what an operation fails with reaches the
// client as an error of the same kind and text, however the server
// answered (the final line of a stream, or a status before it).
func TestErrorKindCrossesSocket(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		kind error
	}{
		{"no such service", errdefs.Errorf(errdefs.ErrNotFound, "no such service: web"), errdefs.ErrNotFound},
		{"volume in use", fmt.Errorf("down: %w", &volmgr.InUseError{Name: "v", Containers: []string{"c"}}), errdefs.ErrFailedPrecondition},
		{"engine failure", errors.New("mount: device busy"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(message{Done: true, Error: tc.err.Error(), Kind: errdefs.Kind(tc.err)})
			if err != nil {
				t.Fatal(err)
			}
			got := readMessages(strings.NewReader(string(b)+"\n"), func(Event) {})
			if got == nil || got.Error() != tc.err.Error() {
				t.Fatalf("got %v, want %v", got, tc.err)
			}
			if tc.kind != nil && !errors.Is(got, tc.kind) {
				t.Errorf("%v lost its kind", got)
			}
			if tc.kind == nil && errdefs.Kind(got) != "" {
				t.Errorf("%v gained kind %q", got, errdefs.Kind(got))
			}
		})
	}
	for _, kind := range []error{errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrFailedPrecondition} {
		rec := httptest.NewRecorder()
		http.Error(rec, "nope", statusOf(kind))
		resp := rec.Result()
		got := errorOfStatus(resp)
		if !errors.Is(got, kind) || got.Error() != "nope" {
			t.Errorf("status %d: %v, want %v", resp.StatusCode, got, kind)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}

func TestClosedStreamIsUnavailable(t *testing.T) {
	if err := readMessages(strings.NewReader(""), func(Event) {}); !errdefs.IsUnavailable(err) {
		t.Errorf("%v: want unavailable", err)
	}
}
