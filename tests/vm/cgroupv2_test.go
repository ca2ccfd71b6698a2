package vm

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// vmTimeout bounds one VM, boot to poweroff. A run takes about a minute
// under TCG; the margin is for a busy machine.
const vmTimeout = 4 * time.Minute

// modules are what berth needs that Debian builds as modules: overlay
// rootfs, bridge networks with veths, the nftables expressions of netmgr's
// NAT and DNS rules, and xfrm_user for the XFRM socket every netlink handle
// opens. They load in this order: libcrc32c, which nf_tables needs, fails
// before the crc32c it only soft-depends on. The kernel would ask
// /sbin/modprobe for most of them, as on any Debian system; the list makes
// a missing one fail loudly instead.
var modules = []string{
	"crc32c_generic", "overlay", "xfrm_user", "bridge", "veth",
	"nf_tables", "nf_conntrack", "nf_nat", "nft_chain_nat", "nft_nat",
	"nft_masq", "nft_redir", "nft_ct",
}

// kernel is one Debian kernel scripts/vmkernel.sh extracted.
type kernel struct {
	meta, release, dir string
}

// TestCgroupV2 boots each Debian kernel of scripts/vmkernel.sh with an
// initramfs holding the built berth, mounts cgroup2 only, and runs
// testdata/test.sh there: limits, OOM, the v2 freezer and cleanup.
func TestCgroupV2(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the VM test runs as root, as make test does")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 not found (scripts/deps.sh installs it): %v", err)
	}
	kernels := fetchKernels(t)
	bin := harness.Binary(t)
	base, err := payload(t, filepath.Dir(bin))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kernels {
		t.Run(k.meta, func(t *testing.T) {
			r := &initramfs{entries: slices.Clone(base.entries), seen: maps.Clone(base.seen)}
			loaded, err := r.addModules(k.dir, k.release, modules)
			if err != nil {
				t.Fatal(err)
			}
			r.file("/vmtest/modules", 0o644, []byte(strings.Join(loaded, "\n")+"\n"))
			initrd := filepath.Join(t.TempDir(), "initrd.cpio")
			f, err := os.Create(initrd)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.write(f); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			boot(t, qemu, k, initrd)
		})
	}
}

// fetchKernels runs scripts/vmkernel.sh (a no-op when its cache is full).
func fetchKernels(t *testing.T) []kernel {
	t.Helper()
	cmd := exec.Command("bash", "../../scripts/vmkernel.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/vmkernel.sh: %v", err)
	}
	var ks []kernel
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("scripts/vmkernel.sh printed %q", line)
		}
		ks = append(ks, kernel{meta: f[0], release: f[1], dir: f[2]})
	}
	if len(ks) == 0 || ks[0].meta != "linux-image-amd64" {
		t.Fatalf("scripts/vmkernel.sh found no linux-image-amd64: %q", out)
	}
	return ks
}

// payload is what every VM's initramfs holds besides the kernel modules:
// busybox, berth's three binaries (berth writes nftables rules through
// netlink: no nft), the busybox test image and the scripts.
func payload(t *testing.T, binDir string) (*initramfs, error) {
	r := &initramfs{}
	r.copy("/init", "testdata/init.sh", 0o755)
	r.copy("/bin/busybox", testimage.BusyboxPath, 0o755)
	r.add(entry{name: "/bin/sh", link: "busybox"}) // init.sh installs the other applets
	for _, name := range []string{"berth", "berth-engine", "berth-init"} {
		p := filepath.Join(binDir, name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("berth's binaries are built together (make build): %w", err)
		}
		r.copy("/usr/local/bin/"+name, p, 0o755)
	}
	r.file("/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"))
	r.file("/etc/resolv.conf", 0o644, nil)
	r.file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	r.file("/etc/group", 0o644, []byte("root:x:0:\n"))

	img, err := testimage.Busybox()
	if err != nil {
		return nil, err
	}
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	if err := testimage.WriteDockerArchive(archive, "vmtest:latest", img); err != nil {
		return nil, err
	}
	r.copy("/vmtest/busybox.tar", archive, 0o644)
	r.copy("/vmtest/test.sh", "testdata/test.sh", 0o755)
	r.copy("/vmtest/compose.yaml", "testdata/compose.yaml", 0o644)
	return r, nil
}

// boot runs one VM to its poweroff and checks the lines test.sh printed.
// A guest kernel that dies of an int3 trap in its own text is booted once
// more: that is the kernel patching its code (jump labels, static calls)
// racing the other emulated CPU under qemu's TCG, seen once in many runs,
// not a fault of what the test runs.
func boot(t *testing.T, qemu string, k kernel, initrd string) {
	if !bootOnce(t, qemu, k, initrd, true) {
		bootOnce(t, qemu, k, initrd, false)
	}
}

// bootOnce is one boot; with mayRetry, it returns false instead of failing
// when the guest kernel hit the int3 oops boot describes.
func bootOnce(t *testing.T, qemu string, k kernel, initrd string, mayRetry bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	// The uncompressed kernel boots in a few seconds, where the bzImage's
	// decompressor alone takes 15-20 s under TCG.
	image := filepath.Join(k.dir, "boot", "vmlinux-"+k.release)
	if _, err := os.Stat(image); err != nil {
		image = filepath.Join(k.dir, "boot", "vmlinuz-"+k.release)
	}
	// The default CPU model, not -cpu max: the emulated AVX paths that
	// Go's runtime picks with max made the run slower.
	cmd := exec.CommandContext(ctx, qemu,
		"-nographic", "-no-reboot", "-nic", "none",
		"-m", "1024", "-smp", "2",
		"-kernel", image,
		"-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet",
	)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var (
		console strings.Builder
		booted  time.Duration
	)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lines []string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		console.WriteString(line + "\n")
		// The first line after the BIOS starts with its terminal escapes.
		if i := strings.Index(line, "VMTEST "); i >= 0 {
			line = line[i:]
			if strings.HasPrefix(line, "VMTEST kernel ") && booted == 0 {
				booted = time.Since(start)
			}
			lines = append(lines, line)
		}
	}
	werr := cmd.Wait()
	total := time.Since(start)

	var result string
	var failures []string
	passed := 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "VMTEST ok "):
			passed++
		case strings.HasPrefix(l, "VMTEST RESULT "):
			result = strings.TrimPrefix(l, "VMTEST RESULT ")
		case strings.HasPrefix(l, "VMTEST FAIL "):
			failures = append(failures, strings.TrimPrefix(l, "VMTEST FAIL "))
		case strings.HasPrefix(l, "VMTEST kernel "):
			if !strings.Contains(l, " cgroup cgroup2 uptime ") {
				failures = append(failures, "not on cgroup v2 only: "+l)
			}
		}
	}
	if mayRetry && strings.Contains(console.String(), "Oops: int3") {
		t.Logf("%s: the guest kernel trapped on its own patched code; booting once more\n%s", k.release, console.String())
		return false
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s: the VM did not power off within %v\n%s", k.release, vmTimeout, console.String())
	case werr != nil:
		t.Fatalf("%s: qemu: %v\n%s", k.release, werr, console.String())
	case result != "pass" || len(failures) > 0:
		t.Fatalf("%s: result %q, failed: %s\n%s", k.release, result, strings.Join(failures, "; "), console.String())
	}
	t.Log(console.String())
	t.Logf("%s: /init after %.1fs, poweroff after %.1fs (%d checks passed)", k.release, booted.Seconds(), total.Seconds(), passed)
	return true
}
