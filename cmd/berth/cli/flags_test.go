package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestFlagErrors runs whole commands whose flags are refused before any
// project, store or supervisor is touched: the exit code and the one line
// printed are the CLI's contract.
func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	roots := []string{"--root", dir + "/root", "--run-root", dir + "/run"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		line string
	}{
		{"unknown command", []string{"nope"}, 1, `unknown command "nope" for "berth"`},
		{"unknown flag", []string{"up", "--nope"}, 1, "unknown flag: --nope"},
		{"recreate flags", []string{"up", "--force-recreate", "--no-recreate"}, 1, "--force-recreate and --no-recreate are incompatible"},
		{"deps recreate flags", []string{"up", "--always-recreate-deps", "--no-recreate"}, 1, "--always-recreate-deps and --no-recreate are incompatible"},
		{"abort and detach", []string{"up", "-d", "--abort-on-container-exit"}, 1, "--abort-on-container-exit and --detach are incompatible"},
		{"network driver", []string{"network", "create", "--driver", "overlay", "n"}, 1, `network driver "overlay" is not supported: berth has "bridge" only`},
		{"network gateway", []string{"network", "create", "--gateway", "10.0.0.1", "n"}, 1, "every ip-range or gateway must have a corresponding subnet"},
		{"network filter", []string{"network", "ls", "--filter", "color=red"}, 1, `invalid filter "color"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(append([]string{}, roots...), tc.args...), &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			if got := strings.TrimSpace(errb.String()); !strings.HasPrefix(got, tc.line) || strings.Count(got, "\n") > 0 {
				t.Errorf("stderr %q, want one line starting %q", got, tc.line)
			}
		})
	}
}

func TestParseScale(t *testing.T) {
	t.Setenv("BERTH_MAX_REPLICAS", "")
	for _, tc := range []struct {
		vals []string
		want map[string]int
		err  bool
	}{
		{[]string{"web=3", "db=0"}, map[string]int{"web": 3, "db": 0}, false},
		{[]string{"web=3", "web=1"}, map[string]int{"web": 1}, false}, // the last wins
		{[]string{"web"}, nil, true},
		{[]string{"web=-1"}, nil, true},
		{[]string{"=2"}, nil, true},
		{[]string{"web=x"}, nil, true},
		{[]string{"web=100000"}, nil, true}, // over the replica ceiling
	} {
		got, err := parseScale(tc.vals)
		if (err != nil) != tc.err {
			t.Errorf("%v: err %v", tc.vals, err)
			continue
		}
		if !tc.err && len(got) != len(tc.want) {
			t.Errorf("%v: %v, want %v", tc.vals, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%v: %v, want %v", tc.vals, got, tc.want)
			}
		}
	}
}

func TestPrintNetworkList(t *testing.T) {
	rows := []networkRow{
		{ID: "0123456789ab", Name: "p_default", Driver: "bridge", Scope: "local", labels: map[string]string{"tier": "front"}},
		{ID: "ba9876543210", Name: "shared", Driver: "bridge", Scope: "local"},
	}
	for _, tc := range []struct {
		name string
		f    networkLsFlags
		want string
	}{
		{"table", networkLsFlags{}, "NETWORK ID     NAME        DRIVER    SCOPE\n0123456789ab   p_default   bridge    local\nba9876543210   shared      bridge    local\n"},
		{"quiet", networkLsFlags{quiet: true}, "0123456789ab\nba9876543210\n"},
		{"template", networkLsFlags{format: "{{.Name}}:{{.Label \"tier\"}}"}, "p_default:front\nshared:\n"},
		{"table template", networkLsFlags{format: "table {{.ID}}"}, "0123456789ab\nba9876543210\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printNetworkList(&b, rows, &tc.f); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
	var b bytes.Buffer
	if err := printNetworkList(&b, rows[:1], &networkLsFlags{format: "json"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), `{"ID":"0123456789ab","Name":"p_default","Driver":"bridge"`) || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("json: %q", b.String())
	}
}
