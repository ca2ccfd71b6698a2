package vm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// entry is one file of the initramfs: a directory, a symlink (link), or a
// regular file whose content is body or, when src is set, the file at src
// (symlinks followed, so libraries land under the names ldd gives).
type entry struct {
	name string // absolute path in the VM
	mode uint32 // permission bits
	dir  bool
	link string
	body []byte
	src  string
}

// initramfs is the list of files of an initramfs, in the order they are
// written; parent directories are added as needed.
type initramfs struct {
	entries []entry
	seen    map[string]bool
}

func (r *initramfs) add(e entry) {
	if r.seen == nil {
		r.seen = map[string]bool{"/": true}
	}
	if r.seen[e.name] {
		return
	}
	if dir := path.Dir(e.name); !r.seen[dir] {
		r.add(entry{name: dir, mode: 0o755, dir: true})
	}
	r.seen[e.name] = true
	r.entries = append(r.entries, e)
}

func (r *initramfs) file(name string, mode uint32, body []byte) {
	r.add(entry{name: name, mode: mode, body: body})
}

func (r *initramfs) copy(name, src string, mode uint32) {
	r.add(entry{name: name, mode: mode, src: src})
}

// write writes the initramfs as a cpio archive in the "newc" format the
// kernel unpacks (uncompressed: TCG would spend seconds on gunzip).
func (r *initramfs) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var written int64
	pad := func() error {
		if n := written % 4; n != 0 {
			k, err := bw.Write(make([]byte, 4-n))
			written += int64(k)
			return err
		}
		return nil
	}
	header := func(ino int, mode uint32, size int64, name string) error {
		k, err := fmt.Fprintf(bw, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\x00",
			ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0, name)
		written += int64(k)
		if err != nil {
			return err
		}
		return pad()
	}
	for i, e := range r.entries {
		name := strings.TrimPrefix(e.name, "/")
		switch {
		case e.dir:
			if err := header(i+1, 0o040000|e.mode, 0, name); err != nil {
				return err
			}
		case e.link != "":
			if err := header(i+1, 0o120000|0o777, int64(len(e.link)), name); err != nil {
				return err
			}
			k, err := bw.WriteString(e.link)
			written += int64(k)
			if err != nil {
				return err
			}
		default:
			body := e.body
			if e.src != "" {
				// Read whole: the largest file is berth itself, tens of MB.
				b, err := os.ReadFile(e.src)
				if err != nil {
					return err
				}
				body = b
			}
			if err := header(i+1, 0o100000|e.mode, int64(len(body)), name); err != nil {
				return err
			}
			k, err := bw.Write(body)
			written += int64(k)
			if err != nil {
				return err
			}
		}
		if err := pad(); err != nil {
			return err
		}
	}
	if err := header(0, 0, 0, "TRAILER!!!"); err != nil {
		return err
	}
	return bw.Flush()
}

// addModules adds the kernel modules named (and what they depend on, from
// modules.dep) under /lib/modules/<release>, for busybox's modprobe, and
// returns, in order, the names that are modules (the others are built in).
func (r *initramfs) addModules(kernelDir, release string, names []string) ([]string, error) {
	modDir := filepath.Join(kernelDir, "lib", "modules", release)
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	// module name -> its file and the files it needs, relative to modDir.
	files := map[string][]string{}
	for _, line := range strings.Split(string(dep), "\n") {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		files[moduleName(mod)] = append([]string{mod}, strings.Fields(deps)...)
	}
	// busybox's modprobe reads ELF files only: compressed modules (6.12's
	// are .ko.xz) are unpacked here, and modules.dep names them so.
	var present []string
	for _, n := range names {
		fs, ok := files[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			continue
		}
		present = append(present, n)
		for _, f := range fs {
			dst := path.Join("/lib/modules", release, strings.TrimSuffix(f, ".xz"))
			if !strings.HasSuffix(f, ".xz") {
				r.copy(dst, filepath.Join(modDir, f), 0o644)
				continue
			}
			body, err := exec.Command("xz", "-dc", filepath.Join(modDir, f)).Output()
			if err != nil {
				return nil, fmt.Errorf("unxz %s: %w", f, err)
			}
			r.file(dst, 0o644, body)
		}
	}
	r.file(path.Join("/lib/modules", release, "modules.dep"), 0o644, []byte(strings.ReplaceAll(string(dep), ".ko.xz", ".ko")))
	for _, f := range []string{"modules.builtin", "modules.alias", "modules.softdep"} {
		if _, err := os.Stat(filepath.Join(modDir, f)); err == nil {
			r.copy(path.Join("/lib/modules", release, f), filepath.Join(modDir, f), 0o644)
		}
	}
	return present, nil
}

// moduleName is the name modprobe knows a module file by:
// kernel/net/bridge/br-netfilter.ko.xz -> br_netfilter.
func moduleName(file string) string {
	n := path.Base(file)
	n, _, _ = strings.Cut(n, ".ko")
	return strings.ReplaceAll(n, "-", "_")
}
