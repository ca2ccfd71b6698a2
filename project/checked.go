package project

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

// Compiling compose-go's JSON schema is most of what loading a compose
// file costs (20-25 ms of CPU, every process), for an answer that only
// changes with the files, the environment they are interpolated with, the
// options, or the loader itself. So Load can remember, in
// Options.CheckedDir, the last inputs schema validation accepted for a set
// of compose files (one small file per set: the digest of those inputs),
// and load the same inputs again without validating them (the inputs:
// the files' text, the variables they name and COMPOSE_* ones, the
// project's directory and name, the options, the binary). Anything else
// is validated as always, and so is a file that names another file or
// the obsolete `version` (its warning comes from validation): `include`,
// `extends`, `version` anywhere in its text, or standard input.

// checkedKey returns where the verdict for opts' files is kept and the
// digest of what validation depends on, or "" when these inputs are not
// to be remembered.
func checkedKey(dir string, o Options, opts *cli.ProjectOptions) (file, key string) {
	if dir == "" {
		return "", ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "berth compose check 1\n")
	// The loader is part of the binary: another binary, another verdict.
	exe, err := os.Executable()
	if err != nil {
		return "", ""
	}
	st, err := os.Stat(exe)
	if err != nil {
		return "", ""
	}
	fmt.Fprintf(h, "exe %s %d %d\n", exe, st.Size(), st.ModTime().UnixNano())
	var texts [][]byte
	for _, p := range opts.ConfigPaths {
		if p == "-" {
			return "", ""
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return "", ""
		}
		for _, w := range [][]byte{[]byte("include"), []byte("extends"), []byte("version")} {
			if bytes.Contains(data, w) {
				return "", ""
			}
		}
		texts = append(texts, data)
		fmt.Fprintf(h, "file %q %d\n", p, len(data))
		h.Write(data)
	}
	// Interpolation reads only the variables a file names, and the loader
	// COMPOSE_* ones: no other variable can change the verdict.
	env := make([]string, 0, len(opts.Environment))
	for k, v := range opts.Environment {
		if strings.HasPrefix(k, "COMPOSE_") || slices.ContainsFunc(texts, func(t []byte) bool { return bytes.Contains(t, []byte(k)) }) {
			env = append(env, k+"="+v)
		}
	}
	slices.Sort(env)
	fmt.Fprintf(h, "env %q\n", env)
	fmt.Fprintf(h, "wd %q name %q profiles %q options %t %t %t %t %t\n", opts.WorkingDir, opts.Name, o.Profiles,
		o.NoInterpolate, o.NoNormalize, o.NoPathResolution, o.NoEnvResolution, o.NoConsistency)
	set := sha256.Sum256([]byte(strings.Join(opts.ConfigPaths, "\x00")))
	return filepath.Join(dir, hex.EncodeToString(set[:16])), hex.EncodeToString(h.Sum(nil))
}

// checked reports whether key is the verdict kept in file.
func checked(file, key string) bool {
	if file == "" {
		return false
	}
	data, err := os.ReadFile(file)
	return err == nil && string(data) == key
}

// rememberChecked keeps key as the verdict for file's set of compose
// files; failing to is no error (the next load validates again).
func rememberChecked(file, key string) {
	if file == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-")
	if err != nil {
		return
	}
	_, err = tmp.WriteString(key)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}
