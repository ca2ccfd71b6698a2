package project

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/berthrun/berth/internal/names"
)

// describe turns a compose-go error into one line that names the file and line
// of the offending key where it can be found. compose-go's errors are text
// with no types to branch on, so this is the one place that parses its
// messages (the regular expressions below).
func describe(err error, files []string) error {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist) {
		return &Error{Msg: fmt.Sprintf("%s: no such file or directory", pe.Path), err: err}
	}
	if m := reCycle().FindStringSubmatch(msg); m != nil {
		return locatedIn(files, "services."+m[1]+".depends_on", msg, err)
	}
	if e, ok := yamlSyntax(msg, files); ok {
		return e
	}
	if m := reValidating().FindStringSubmatch(msg); m != nil {
		file, path, what := m[1], m[2], m[3]
		if what == "false schema" || strings.HasPrefix(what, "additional properties") {
			parent, key := splitPath(path)
			if strings.HasPrefix(what, "additional properties") {
				// "services.web additional properties 'foo' not allowed"
				parent, key = path, strings.Trim(strings.Fields(strings.TrimPrefix(what, "additional properties "))[0], "'")
				path = parent + "." + key
			}
			what = fmt.Sprintf("unknown key %q in %s", key, orTop(parent))
		}
		return located(file, path, what, err)
	}
	if m := reInterpolating().FindStringSubmatch(msg); m != nil {
		// "services.web.ports.[]": the key to point at is the list's.
		path, _, _ := strings.Cut(m[1], ".[]")
		if what, ok := strings.CutPrefix(m[2], "failed to cast to expected type: "); ok {
			return locatedIn(files, path, fmt.Sprintf("%s: %s", path, what), err)
		}
		return locatedIn(files, path, fmt.Sprintf("invalid interpolation in %s: %s", m[1], m[2]), err)
	}
	if m := reUndefinedDep().FindStringSubmatch(msg); m != nil {
		return locatedIn(files, "services."+m[1]+".depends_on",
			fmt.Sprintf("service %q depends on undefined service %q", m[1], m[2]), err)
	}
	msg = strings.TrimSuffix(msg, ": invalid compose project")
	if m := reUniqueName().FindStringSubmatch(msg); m != nil {
		return locatedIn(files, "services."+m[1]+".container_name",
			fmt.Sprintf("services.%s: container_name allows one container only, so the service cannot have more than one replica", m[1]), err)
	}
	if m := reKeyPath().FindStringSubmatch(msg); m != nil {
		// Any other message that names a key path: say where that key is.
		return locatedIn(files, m[1], msg, err)
	}
	return &Error{Msg: msg, err: err}
}

// The patterns are compiled when an error first needs them, not when the
// program starts: every command paid a millisecond for them.
var (
	reValidating    = names.LazyRegexp(`^validating (.+?): (\S+) (.+)$`)
	reInterpolating = names.LazyRegexp(`^error while interpolating (\S+): (.+)$`)
	reUndefinedDep  = names.LazyRegexp(`^service "([^"]+)" depends on undefined service "([^"]+)"`)
	reFailedParse   = names.LazyRegexp(`(?s)^failed to parse (.+?): (yaml: .*)$`)
	reConstruct     = names.LazyRegexp(`(?:line \d+: )*line (\d+): (.*)$`)
	reKeyPath       = names.LazyRegexp(`\b((?:services|networks|volumes|secrets|configs)\.[^\s:,'"]+)`)
	reCycle         = names.LazyRegexp(`^dependency cycle detected: (\S+) ->`)
	reParserOnly    = names.LazyRegexp(`did not find expected (key|node content|'-' indicator|<document start>|',' or)|found (undefined tag handle|duplicate %|incompatible YAML)`)
	reUniqueName    = names.LazyRegexp(`can't set container_name and (\S+) as container name must be unique`)
	reMark          = names.LazyRegexp(`line (\d+)(?:, column (\d+))?`)
)

// Error is a load error: Msg is already the one line to show.
type Error struct {
	Msg string
	err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.err }

// yamlSyntax rewrites a YAML syntax error as file:line:column. The YAML parser
// counts lines from 0 for parser errors and from 1 for scanner errors; both
// are shown from 1 here, as editors do.
func yamlSyntax(msg string, files []string) (error, bool) {
	var file, detail string
	if m := reFailedParse().FindStringSubmatch(msg); m != nil {
		file, detail = m[1], m[2]
	} else if strings.HasPrefix(msg, "yaml: ") {
		// Reading the project name parses the files before the loader does,
		// and its errors do not say which file: find it.
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				var n yaml.Node
				if err := yaml.Unmarshal(b, &n); err != nil {
					file, detail = f, err.Error()
					break
				}
			}
		}
		if file == "" {
			return nil, false
		}
	} else {
		return nil, false
	}
	detail = strings.TrimPrefix(detail, "yaml: ")
	if rest, ok := strings.CutPrefix(detail, "construct errors:"); ok {
		// "construct errors:\n  line 1: line 4: mapping key ..." has one
		// problem per line; the first is the one to fix first.
		first := strings.TrimSpace(strings.SplitN(strings.TrimSpace(rest), "\n", 2)[0])
		if m := reConstruct().FindStringSubmatch(first); m != nil {
			return &Error{Msg: fmt.Sprintf("%s:%s: %s", file, m[1], m[2])}, true
		}
		return &Error{Msg: fmt.Sprintf("%s: %s", file, first)}, true
	}
	parser := strings.HasPrefix(detail, "while parsing") || reParserOnly().MatchString(detail)
	// The problem is the last mark; the context ("while parsing X at ...") is
	// kept as a hint.
	marks := reMark().FindAllStringSubmatchIndex(detail, -1)
	if len(marks) == 0 {
		return &Error{Msg: fmt.Sprintf("%s: %s", file, detail)}, true
	}
	fix := func(n string) int {
		v, _ := strconv.Atoi(n)
		if parser {
			v++
		}
		return v
	}
	last := marks[len(marks)-1]
	line := fix(detail[last[2]:last[3]])
	pos := strconv.Itoa(line)
	if last[4] >= 0 {
		pos += ":" + detail[last[4]:last[5]]
	}
	problem := strings.TrimPrefix(detail[last[1]:], ": ")
	if problem == "" || last[1] == len(detail) {
		problem = detail
	}
	hint := ""
	if len(marks) > 1 {
		ctx := detail[:marks[0][0]]
		ctx = strings.TrimSuffix(strings.TrimSpace(ctx), " at")
		first := marks[0]
		hint = fmt.Sprintf(" (%s at line %d)", ctx, fix(detail[first[2]:first[3]]))
	}
	return &Error{Msg: fmt.Sprintf("%s:%s: %s%s", file, pos, problem, hint)}, true
}

func splitPath(path string) (parent, key string) {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

func orTop(p string) string {
	if p == "" {
		return "the top level"
	}
	return p
}

// locatedIn finds the first of files that has path and reports it there.
func locatedIn(files []string, path, what string, err error) error {
	for _, f := range files {
		if line := lineOf(f, path); line > 0 {
			return &Error{Msg: fmt.Sprintf("%s:%d: %s", f, line, what), err: err}
		}
	}
	return &Error{Msg: what, err: err}
}

func located(file, path, what string, err error) error {
	if line := lineOf(file, path); line > 0 {
		return &Error{Msg: fmt.Sprintf("%s:%d: %s", file, line, what), err: err}
	}
	return &Error{Msg: fmt.Sprintf("%s: %s", file, what), err: err}
}

// lineOf returns the line of the key at a dotted path ("services.web.foo",
// list items as "[0]") in a YAML file, or 0.
func lineOf(file, path string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	n := doc.Content[0]
	line := 0
	for _, part := range strings.Split(path, ".") {
		switch {
		case n.Kind == yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return 0
			}
		case n.Kind == yaml.SequenceNode && strings.HasPrefix(part, "["):
			i, err := strconv.Atoi(strings.Trim(part, "[]"))
			if err != nil || i >= len(n.Content) {
				return 0
			}
			n = n.Content[i]
			line = n.Line
		default:
			return 0
		}
	}
	return line
}
