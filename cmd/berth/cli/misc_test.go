package cli

import (
	"bytes"
	"testing"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/supervisor"
)

func TestPrintTop(t *testing.T) {
	var b bytes.Buffer
	printTop(&b, []supervisor.TopResult{
		{Name: "p-web-1", Processes: []runtime.Process{{UID: "0", PID: 10, PPID: "1", Cmd: "httpd -f"}, {UID: "1000", PID: 12345, PPID: "10", Cmd: "sh"}}},
		{Name: "p-db-1", Processes: nil},
	})
	want := "p-web-1\n" +
		"UID    PID     PPID   CMD\n" +
		"0      10      1      httpd -f\n" +
		"1000   12345   10     sh\n" +
		"\n" +
		"p-db-1\n" +
		"UID   PID   PPID   CMD\n" +
		"\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestEscapeDollars(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"no dollar", "no dollar"},
		{"echo $HOME", "echo $$HOME"},
		{"$$", "$$$$"},
		{"a$b$", "a$$b$$"},
	}
	for _, tt := range tests {
		if got := string(escapeDollars([]byte(tt.in))); got != tt.want {
			t.Errorf("escapeDollars(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
