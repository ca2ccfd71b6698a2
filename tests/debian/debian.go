// Package debian makes Debian 12 base images for tests and benchmarks
// offline: debootstrap's minbase of bookworm from Debian's mirror, plus the
// packages a test names, made once per machine and package set and cached
// as a root filesystem tarball that `berth image import` takes.
//
// The cache is ~/.cache/berth/debian (XDG_CACHE_HOME is honoured;
// BERTH_DEBIAN_CACHE overrides it), one <key>.tar.gz per package set,
// written through a temporary file and a rename under a lock file, so test
// packages running at once make each set once. When the tests run in the
// harness's private network namespace, debootstrap runs in the namespace
// the harness was started from (HostNetnsEnv), the only place the mirror
// can be reached; nothing else of a test leaves its sandbox.
package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// Suite, Variant and Mirror are what debootstrap is given.
	Suite   = "bookworm"
	Variant = "minbase"
	Mirror  = "http://deb.debian.org/debian"

	// HostNetnsEnv names the network namespace (a /proc/PID/ns/net path)
	// debootstrap runs in; harness.Main sets it to its own when it moves
	// the tests into their private one.
	HostNetnsEnv = "BERTH_TEST_HOST_NETNS"

	// layout versions the tarball's making: a change to how it is made
	// (what is left out, how it is packed) changes every key.
	layout = "1"

	// timeout bounds one debootstrap run with its packing.
	timeout = 30 * time.Minute
)

// Changes are the `--change` values Image imports the tarball with: the
// configuration of Docker's debian images.
var Changes = []string{
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	`CMD ["bash"]`,
}

// Image makes sure the tarball of packages is cached and imports it as ref
// with berthBin, whose environment is the test's plus env (BERTH_ROOT=…,
// BERTH_RUN_ROOT=… of the calling test's store).
//
//	debian.Image(t, e.Bin, []string{"BERTH_ROOT=" + e.Root, "BERTH_RUN_ROOT=" + e.RunRoot},
//		"debian-node:test", "nodejs")
func Image(t testing.TB, berthBin string, env []string, ref string, packages ...string) {
	t.Helper()
	tarball := Tarball(t, packages...)
	args := []string{"image", "import"}
	for _, c := range Changes {
		args = append(args, "--change", c)
	}
	args = append(args, "--message", "debian "+Suite+" "+Variant+" "+strings.Join(normalize(packages), " "), tarball, ref)
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Tarball returns the path of the cached gzip-compressed root filesystem
// tarball of Debian's minbase with packages, making it first if it is not
// cached. The first call for a package set takes minutes; it fails the
// test if debootstrap cannot run or reach the mirror.
func Tarball(t testing.TB, packages ...string) string {
	t.Helper()
	p, err := Ensure(packages...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Ensure is Tarball for code without a testing.TB.
func Ensure(packages ...string) (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	pkgs := normalize(packages)
	key := Key(pkgs...)
	final := filepath.Join(dir, key+".tar.gz")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	// Whoever held the lock before may have made it.
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := bootstrap(dir, final, pkgs); err != nil {
		return "", fmt.Errorf("debian %s %s with [%s]: %w", Suite, Variant, strings.Join(pkgs, " "), err)
	}
	return final, nil
}

// CacheDir is where the tarballs are kept.
func CacheDir() (string, error) {
	if d := os.Getenv("BERTH_DEBIAN_CACHE"); d != "" {
		return d, nil
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "berth", "debian"), nil
}

// Key names a package set's tarball: a hash of the suite, variant, mirror
// and sorted packages.
func Key(packages ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "layout %s\nsuite %s\nvariant %s\nmirror %s\n", layout, Suite, Variant, Mirror)
	for _, p := range normalize(packages) {
		fmt.Fprintf(h, "package %s\n", p)
	}
	return Suite + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// normalize sorts packages and drops duplicates and empty names.
func normalize(packages []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range packages {
		p = strings.TrimSpace(p)
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// bootstrap debootstraps into a directory of dir, packs it into a temporary
// file and renames that to final. The downloaded packages are kept in
// dir/debs, so another package set downloads only what it adds.
func bootstrap(dir, final string, pkgs []string) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is not installed (scripts/deps.sh --test installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	debs := filepath.Join(dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(dir, ".make-")
	if err != nil {
		return err
	}
	defer removeTree(work)
	root := filepath.Join(work, "rootfs")

	args := []string{"--variant=" + Variant, "--cache-dir=" + debs}
	if len(pkgs) > 0 {
		args = append(args, "--include="+strings.Join(pkgs, ","))
	}
	args = append(args, Suite, root, Mirror)
	var cmd *exec.Cmd
	if ns := os.Getenv(HostNetnsEnv); ns != "" {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + ns, "--", "debootstrap"}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, "debootstrap", args...)
	}
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap: %v\n%s", err, tail(out, 40))
	}
	unmountUnder(root)

	// What an image does not carry: the package lists and downloaded
	// packages (as Docker's debian images), and the device nodes (the
	// engine gives every container its own /dev).
	for _, glob := range []string{"var/lib/apt/lists/*", "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "dev/*", "proc/*", "sys/*"} {
		matches, _ := filepath.Glob(filepath.Join(root, glob))
		for _, m := range matches {
			if filepath.Base(m) == "partial" || filepath.Base(m) == "lock" {
				continue
			}
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	tmp := filepath.Join(work, "rootfs.tar.gz")
	pack := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", root, "-czf", tmp, ".")
	if out, err := pack.CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v\n%s", err, out)
	}
	return os.Rename(tmp, final)
}

// unmountUnder detaches whatever debootstrap left mounted under root (it
// mounts /proc and /sys there while it configures packages).
func unmountUnder(root string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == root || strings.HasPrefix(f[4], root+"/")) {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
}

// removeTree removes a work directory, first detaching any mount in it so
// that removal cannot reach into /proc or /sys.
func removeTree(dir string) {
	unmountUnder(dir)
	_ = os.RemoveAll(dir)
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
