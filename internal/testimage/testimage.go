// Package testimage builds small container images offline for tests: a
// busybox image from Debian's busybox-static, arbitrary layers from a list of
// tar entries, archives in docker save and OCI layout form, and an
// in-process registry on 127.0.0.1 to push them to.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPath is the static busybox the image is built from (Debian's
// busybox-static).
var BusyboxPath = "/bin/busybox"

// Epoch is the modification time of every entry, so that images are
// reproducible: the same options give the same digests.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultPath is the PATH the busybox image sets.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Entry is one tar entry. Type is a tar type flag; zero means a regular file
// (or a directory when Name ends in "/"). Mode zero means 0644 for files and
// 0755 for directories.
type Entry struct {
	Name     string
	Type     byte
	Mode     int64
	Uid, Gid int
	Linkname string
	Body     []byte
	Xattrs   map[string]string
	Devmajor int64
	Devminor int64
}

// File is a regular file entry.
func File(name string, mode int64, body string) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Mode: mode, Body: []byte(body)}
}

// Dir is a directory entry.
func Dir(name string, mode int64) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: mode} }

// Symlink is a symbolic link entry.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}
}

// Hardlink is a hard link entry.
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Linkname: target}
}

// Whiteout deletes name (a path in a lower layer) in this layer.
func Whiteout(name string) Entry {
	return File(path.Join(path.Dir(name), ".wh."+path.Base(name)), 0o644, "")
}

// Opaque hides the lower content of directory dir in this layer.
func Opaque(dir string) Entry { return File(path.Join(dir, ".wh..wh..opq"), 0o644, "") }

// Tar writes entries, in order, as a tar stream.
func Tar(entries ...Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:     e.Name,
			Typeflag: e.Type,
			Mode:     e.Mode,
			Uid:      e.Uid,
			Gid:      e.Gid,
			Linkname: e.Linkname,
			ModTime:  Epoch,
			Devmajor: e.Devmajor,
			Devminor: e.Devminor,
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
			if strings.HasSuffix(e.Name, "/") {
				hdr.Typeflag = tar.TypeDir
			}
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if len(e.Xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Layer makes a gzip-compressed layer of entries.
func Layer(entries ...Entry) (v1.Layer, error) {
	b, err := Tar(entries...)
	if err != nil {
		return nil, err
	}
	return LayerFromTar(b)
}

// LayerFromTar makes a gzip-compressed layer of an uncompressed tar.
func LayerFromTar(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithCompressedCaching)
}

// Image makes an image of the given layers (bottom first) and config.
func Image(cfg v1.Config, layers ...[]Entry) (v1.Image, error) {
	var ls []v1.Layer
	for _, entries := range layers {
		l, err := Layer(entries...)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return imageOf(cfg, ls...)
}

func imageOf(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: Epoch}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

type options struct {
	files  []Entry
	layers [][]Entry
	config []func(*v1.Config)
}

// Option customises the busybox image.
type Option func(*options)

// WithFile adds a regular file to a layer above the busybox one.
func WithFile(name string, mode int64, body string) Option {
	return func(o *options) { o.files = append(o.files, File(name, mode, body)) }
}

// WithEntries adds entries (any type) to the layer above the busybox one.
func WithEntries(entries ...Entry) Option {
	return func(o *options) { o.files = append(o.files, entries...) }
}

// WithLayer adds one more layer on top, after the WithFile layer.
func WithLayer(entries ...Entry) Option {
	return func(o *options) { o.layers = append(o.layers, entries) }
}

// WithConfig edits the image config (Cmd ["sh"] and PATH by default).
func WithConfig(fn func(*v1.Config)) Option {
	return func(o *options) { o.config = append(o.config, fn) }
}

// WithCmd sets Cmd.
func WithCmd(args ...string) Option {
	return WithConfig(func(c *v1.Config) { c.Cmd = args })
}

// WithEnv appends KEY=VALUE pairs to Env.
func WithEnv(kv ...string) Option {
	return WithConfig(func(c *v1.Config) { c.Env = append(c.Env, kv...) })
}

// WithEntrypoint sets Entrypoint.
func WithEntrypoint(args ...string) Option {
	return WithConfig(func(c *v1.Config) { c.Entrypoint = args })
}

// Applets lists busybox's applets (busybox --list), falling back to a fixed
// list if it cannot be run.
func Applets() []string {
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err == nil {
		var list []string
		for _, a := range strings.Fields(string(out)) {
			if a != "busybox" && !strings.Contains(a, "/") {
				list = append(list, a)
			}
		}
		if len(list) > 0 {
			sort.Strings(list)
			return list
		}
	}
	return strings.Fields(fallbackApplets)
}

const fallbackApplets = `[ ash awk basename cat chmod chown cp cut date dd df dirname du echo env
expr false find grep head hostname httpd id ip kill ln ls mkdir mknod mount mv nc nslookup
ping printf ps pwd readlink rm rmdir sed seq setpriv sh sleep sort stat tail tar tee test
timeout top touch tr true umount uname uniq wc wget which whoami xargs yes`

// BaseEntries is the busybox root filesystem: /bin/busybox and a symlink per
// applet, the usual directories, and /etc/passwd and /etc/group with root,
// nobody and app (uid 1000).
func BaseEntries() ([]Entry, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("testimage needs busybox-static: %w", err)
	}
	e := []Entry{
		Dir("bin/", 0o755),
		Dir("dev/", 0o755),
		Dir("etc/", 0o755),
		Dir("home/", 0o755),
		{Name: "home/app/", Type: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000},
		Dir("proc/", 0o555),
		Dir("root/", 0o700),
		Dir("sbin/", 0o755),
		Dir("sys/", 0o555),
		Dir("tmp/", 0o1777),
		Dir("usr/", 0o755),
		Dir("usr/bin/", 0o755),
		Dir("usr/sbin/", 0o755),
		Dir("var/", 0o755),
		Dir("var/tmp/", 0o1777),
		Dir("var/www/", 0o755),
		{Name: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Body: bin},
		File("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"+
			"app:x:1000:1000:app:/home/app:/bin/sh\n"),
		File("etc/group", 0o644, "root:x:0:\nnobody:x:65534:\napp:x:1000:\n"),
		File("etc/os-release", 0o644, "NAME=berth-test-busybox\nID=busybox\n"),
	}
	for _, a := range Applets() {
		e = append(e, Symlink("bin/"+a, "busybox"))
	}
	return e, nil
}

func build(opts []Option) (*options, v1.Config) {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	cfg := v1.Config{Cmd: []string{"sh"}, Env: []string{DefaultPath}}
	for _, fn := range o.config {
		fn(&cfg)
	}
	return o, cfg
}

// Busybox builds the busybox image: one layer of BaseEntries, one of the
// WithFile/WithEntries entries if any, then each WithLayer.
func Busybox(opts ...Option) (v1.Image, error) {
	o, cfg := build(opts)
	base, err := BaseEntries()
	if err != nil {
		return nil, err
	}
	layers := [][]Entry{base}
	if len(o.files) > 0 {
		layers = append(layers, o.files)
	}
	layers = append(layers, o.layers...)
	return Image(cfg, layers...)
}

// BusyboxTar returns the busybox root filesystem, with the WithFile and
// WithEntries entries, as one uncompressed tar (input for `image import`).
func BusyboxTar(opts ...Option) ([]byte, error) {
	o, _ := build(opts)
	base, err := BaseEntries()
	if err != nil {
		return nil, err
	}
	return Tar(append(base, o.files...)...)
}

// WriteDockerArchive writes img as a `docker save` archive tagged ref.
func WriteDockerArchive(p, ref string, img v1.Image) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(p, r, img)
}
