package cli

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berthrun/berth/project"
)

func TestTemplateTable(t *testing.T) {
	type row struct{ Name, State string }
	rows := []row{{"web-1", "running"}, {"database-1", "exited"}}
	tests := []struct {
		name, format, want string
		err                bool
	}{
		{name: "plain", format: "{{.Name}}", want: "web-1\ndatabase-1\n"},
		{name: "escaped tab", format: `{{.Name}}\t{{.State}}`, want: "web-1\trunning\ndatabase-1\texited\n"},
		{name: "table", format: "table {{.Name}}\t{{.State}}", want: "NAME         STATE\nweb-1        running\ndatabase-1   exited\n"},
		{name: "json", format: "{{json .}}", want: `{"Name":"web-1","State":"running"}` + "\n" + `{"Name":"database-1","State":"exited"}` + "\n"},
		{name: "bad template", format: "{{.Name", err: true},
		{name: "unknown field", format: "{{.Nope}}", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := templateTable(&b, tt.format, rows)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !tt.err && b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestPsAndLsFilters(t *testing.T) {
	tests := []struct {
		filter []string
		status []string
		err    bool
	}{
		{filter: nil},
		{filter: []string{"status=running"}, status: []string{"running"}},
		{filter: []string{"status=running", "status=exited"}, status: []string{"running", "exited"}},
		{filter: []string{"name=web"}, err: true},
		{filter: []string{"status"}, err: true},
	}
	for _, tt := range tests {
		f := &psFlags{filter: tt.filter}
		err := parsePsFilters(f)
		if (err != nil) != tt.err || !tt.err && len(f.status) != len(tt.status) {
			t.Errorf("ps --filter %v: status %v, err %v", tt.filter, f.status, err)
		}
	}
	names, err := parseLsFilters([]string{"name=app"})
	if err != nil || !matchesName(names, "myapp") || matchesName(names, "other") || !matchesName(nil, "x") {
		t.Errorf("ls --filter name=app: %v %v", names, err)
	}
	if _, err := parseLsFilters([]string{"status=running"}); err == nil {
		t.Error("ls --filter status accepted")
	}
}

func TestGlobalUIFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--progress", "plain", "--ansi", "never", "version", "--short"}, 0, ""},
		{[]string{"--progress", "json", "--parallel", "2", "version", "--short"}, 0, ""},
		{[]string{"--progress", "fancy", "version"}, 1, `unsupported --progress value "fancy"`},
		{[]string{"--ansi", "sometimes", "version"}, 1, `unsupported --ansi value "sometimes"`},
		{[]string{"--ansi", "never", "--progress", "tty", "version"}, 1, "can't use --progress tty while ANSI support is disabled"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !bytes.Contains(errb.Bytes(), []byte(tt.err)) {
			t.Errorf("berth %v: exit %d, stderr %q; want %d, %q", tt.args, code, errb.String(), tt.code, tt.err)
		}
	}
	ui.progress, ui.ansi = "", ""
}

func TestWithDependents(t *testing.T) {
	svc := func(name string, deps ...string) types.ServiceConfig {
		s := types.ServiceConfig{Name: name}
		s.DependsOn = types.DependsOnConfig{}
		for _, d := range deps {
			s.DependsOn[d] = types.ServiceDependency{}
		}
		return s
	}
	p := &project.Project{Project: &types.Project{Services: types.Services{
		"db": svc("db"), "api": svc("api", "db"), "web": svc("web", "api"), "other": svc("other"),
	}}}
	got := withDependents(p, []string{"db"})
	sort.Strings(got)
	if strings.Join(got, ",") != "api,db,web" {
		t.Errorf("withDependents(db) = %v", got)
	}
	if got := withDependents(p, []string{"web"}); strings.Join(got, ",") != "web" {
		t.Errorf("withDependents(web) = %v", got)
	}
}
