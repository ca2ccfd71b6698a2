package volmgr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// The local driver's driver_opts that berth implements:
//
//	type: none,  o: bind, device: /host/dir   the volume is the host directory
//	type: tmpfs, device: tmpfs, o: size=64m   a tmpfs shared by the volume's users
//
// Anything else (nfs, cifs, ext4 on a block device, ...) is refused when the
// volume is created rather than when a container first mounts it.
type driverKind int

const (
	kindDir   driverKind = iota // plain directory under the root
	kindBind                    // type=none, o=bind: the device directory
	kindTmpfs                   // type=tmpfs: mounted on _data while in use
)

type driverConfig struct {
	kind   driverKind
	device string
	flags  uintptr // tmpfs mount flags
	data   string  // tmpfs mount data
}

// mount(2) flags that may appear in a tmpfs volume's "o".
var tmpfsFlags = map[string]uintptr{
	"ro": unix.MS_RDONLY, "rw": 0,
	"nosuid": unix.MS_NOSUID, "suid": 0,
	"nodev": unix.MS_NODEV, "dev": 0,
	"noexec": unix.MS_NOEXEC, "exec": 0,
	"noatime": unix.MS_NOATIME, "atime": 0,
	"nodiratime": unix.MS_NODIRATIME, "diratime": 0,
	"relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME,
	"sync": unix.MS_SYNCHRONOUS, "async": 0,
}

// tmpfs's own options (passed as mount data).
var tmpfsData = []string{"size", "nr_blocks", "nr_inodes", "mode", "uid", "gid", "huge", "mpol", "inode64", "inode32"}

func parseDriverOpts(opts map[string]string) (driverConfig, error) {
	var c driverConfig
	if len(opts) == 0 {
		return c, nil
	}
	for k := range opts {
		switch k {
		case "type", "o", "device":
		default:
			return c, unsupportedf("driver option %q is unsupported by berth's local driver (supported: type, o, device)", k)
		}
	}
	typ, o, device := opts["type"], opts["o"], opts["device"]
	switch typ {
	case "none", "bind":
		var bind bool
		for _, opt := range splitOpts(o) {
			switch opt {
			case "bind", "rbind":
				bind = true
			default:
				return c, unsupportedf("driver option o=%q is unsupported for type %q: berth supports o=bind only", o, typ)
			}
		}
		if !bind {
			return c, unsupportedf("driver option type %q needs o=bind", typ)
		}
		if !filepath.IsAbs(device) {
			return c, invalidf("driver option device=%q must be an absolute host path", device)
		}
		c.kind, c.device = kindBind, filepath.Clean(device)
	case "tmpfs":
		if device == "" {
			device = "tmpfs"
		}
		c.kind, c.device = kindTmpfs, device
		var data []string
		for _, opt := range splitOpts(o) {
			if f, ok := tmpfsFlags[opt]; ok {
				c.flags |= f
				continue
			}
			key, _, _ := strings.Cut(opt, "=")
			if !slices.Contains(tmpfsData, key) {
				return c, unsupportedf("driver option o: %q is unsupported for type tmpfs", opt)
			}
			data = append(data, opt)
		}
		c.data = strings.Join(data, ",")
	case "":
		return c, unsupportedf("driver options o and device need a type (none or tmpfs)")
	default:
		return c, unsupportedf("driver option type %q is unsupported: berth's local driver supports type none (o=bind) and type tmpfs", typ)
	}
	return c, nil
}

func splitOpts(o string) []string {
	var out []string
	for _, s := range strings.Split(o, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// mountTmpfs mounts the volume's tmpfs on its _data unless one is there.
// A mount left by a berth that died is reused as it is.
func mountTmpfs(c driverConfig, target string) error {
	if ok, err := mountinfo.Mounted(target); err != nil {
		return err
	} else if ok {
		return nil
	}
	// Only the flags the user gave, as Docker's local driver: the volume root
	// is 0700, so nothing on the host but root reaches a setuid file in it.
	if err := unix.Mount(c.device, target, "tmpfs", c.flags, c.data); err != nil {
		return fmt.Errorf("mount tmpfs on %s (%s): %w", target, c.data, err)
	}
	return nil
}

// unmountAll removes every mount stacked on target, so that the volume's
// directory can be deleted without reaching into what is mounted there.
func unmountAll(target string) error {
	for {
		ok, err := mountinfo.Mounted(target)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !ok {
			return nil
		}
		if err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW); err != nil {
			if !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
			// A process still has it open: detach it from the tree now.
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		}
	}
}

// formatOpts renders driver options for messages in a stable order.
func formatOpts(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + m[k])
	}
	return b.String()
}
