package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// composeFlags are the flags of compose's dev loop, by command ("" is the
// global ones), each as `berth CMD --help` must list it: "-x, --long" for a
// flag with a letter, "--long" without.
var composeFlags = map[string][]string{
	"": {"--progress", "--ansi", "--dry-run", "--parallel", "--compatibility",
		"-f, --file", "-p, --project-name", "--project-directory", "--profile", "--env-file"},
	"down":    {"--rmi", "-v, --volumes", "--remove-orphans", "-t, --timeout"},
	"ps":      {"--filter", "--no-trunc", "--orphans", "--format", "-a, --all", "-q, --quiet", "--services", "--status"},
	"ls":      {"--filter", "--format", "-a, --all", "-q, --quiet"},
	"images":  {"--format", "-q, --quiet"},
	"volumes": {"--format", "-q, --quiet"},
	"version": {"-f, --format", "--short"},
	"restart": {"--no-deps", "-t, --timeout"},
	"start":   {"--wait", "--wait-timeout"},
	"events":  {"--since", "--until", "--json"},
	"pull":    {"--policy", "--include-deps", "--ignore-buildable", "--ignore-pull-failures", "-q, --quiet"},
	"up":      {"--pull", "--quiet-pull", "-y, --yes", "-d, --detach", "--wait", "--wait-timeout", "--scale", "-w, --watch"},
	"create":  {"--pull"},
	"config": {"--no-interpolate", "--no-normalize", "--no-path-resolution", "--no-env-resolution",
		"--no-consistency", "--resolve-image-digests", "--variables", "--environment", "--format", "--hash"},
	"exec": {"-T, --no-TTY", "-d, --detach", "-e, --env", "-u, --user", "-w, --workdir", "--index"},
	"run": {"--rm", "-d, --detach", "-e, --env", "--env-from-file", "-v, --volume", "-p, --publish",
		"-P, --service-ports", "--use-aliases", "--entrypoint", "--name", "-T, --no-TTY", "-i, --interactive",
		"-t, --tty", "-u, --user", "-w, --workdir", "-l, --label", "--cap-add", "--cap-drop", "--no-deps",
		"--remove-orphans", "--pull", "--quiet-pull", "--build"},
	"attach": {"--detach-keys", "--no-stdin", "--sig-proxy", "--index"},
	"cp":     {"-a, --archive", "-L, --follow-link", "--all", "--index"},
	"watch":  {"--no-up", "--prune", "--quiet"},
	"stats":  {"-a, --all", "--no-stream", "--no-trunc", "--format"},
}

// switches are flags that take no value: their help line must not show a
// type, as compose's switches do not.
var switches = map[string][]string{
	"exec": {"-T, --no-TTY"},
	"run":  {"-T, --no-TTY", "--rm", "-P, --service-ports"},
	"":     {"--dry-run", "--compatibility"},
}

// TestComposeFlagsInHelp: every flag of compose's dev loop is in the help
// of its command, spelled as compose spells it.
func TestComposeFlagsInHelp(t *testing.T) {
	for cmd, flags := range composeFlags {
		args := []string{"--help"}
		if cmd != "" {
			args = []string{cmd, "--help"}
		}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("berth %s --help: exit %d: %s", cmd, code, errb.String())
		}
		help := out.String()
		for _, f := range flags {
			line := flagLine(help, f)
			if line == "" {
				t.Errorf("berth %s --help lists no %s", cmd, f)
				continue
			}
			for _, s := range switches[cmd] {
				if s == f && strings.Contains(strings.TrimPrefix(line, "  "+f), " bool") {
					t.Errorf("berth %s --help shows %s with a type: %q", cmd, f, line)
				}
			}
		}
	}
}

// flagLine finds the help line that starts with f (after the indent).
func flagLine(help, f string) string {
	for _, l := range strings.Split(help, "\n") {
		t := strings.TrimSpace(l)
		if t == f || strings.HasPrefix(t, f+" ") {
			return l
		}
	}
	return ""
}

// TestBadValues: values compose refuses are refused with compose's words,
// before anything is read or started.
func TestBadValues(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte("services:\n  svc:\n    image: busybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	roots := []string{"--root", dir + "/root", "--run-root", dir + "/run", "-f", file, "-p", "bad"}
	for _, tc := range []struct {
		args []string
		line string
	}{
		{[]string{"--progress", "foo", "ps"}, `unsupported --progress value "foo"`},
		{[]string{"--ansi", "foo", "ps"}, `unsupported --ansi value "foo"`},
		{[]string{"--progress", "tty", "--ansi", "never", "ps"}, "can't use --progress tty while ANSI support is disabled"},
		{[]string{"pull", "--policy", "foo"}, `invalid pull policy "foo"`},
		{[]string{"up", "--pull", "foo"}, `invalid --pull option "foo"`},
		{[]string{"create", "--pull", "foo"}, `invalid --pull option "foo"`},
		{[]string{"run", "--pull", "foo", "svc"}, `invalid --pull option "foo"`},
		{[]string{"ps", "--filter", "foo"}, "arguments to --filter should be in form KEY=VAL"},
		{[]string{"ps", "--filter", "foo=bar"}, "unknown filter foo"},
		{[]string{"ls", "--filter", "foo=bar"}, "invalid filter 'foo'"},
		{[]string{"ls", "--format", "foo"}, `format value "foo" could not be parsed: parsing failed`},
		{[]string{"down", "--rmi", "foo"}, `invalid value for --rmi: "foo"`},
		{[]string{"events", "--since", "foo"}, "invalid --since"},
		{[]string{"events", "--until", "foo"}, "invalid --until"},
	} {
		var out, errb bytes.Buffer
		code := run(append(append([]string{}, roots...), tc.args...), &out, &errb)
		got := strings.TrimSpace(errb.String())
		if code == 0 || !strings.HasPrefix(got, tc.line) || strings.Contains(got, "\n") {
			t.Errorf("berth %s: exit %d, stderr %q, want one line starting %q", strings.Join(tc.args, " "), code, got, tc.line)
		}
	}
}
