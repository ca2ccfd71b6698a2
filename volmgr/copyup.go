package volmgr

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// CopyUp copies what the image has at destination into volumeData, the way
// Docker fills a named volume: only when volumeData is empty (a volume with
// content hides the image's), and then the volume's top directory also takes
// the owner and mode of the image's directory. Nothing to copy (destination
// missing in the image, or not a directory) is not an error.
//
// rootfs is the container's root before anything is mounted in it and may
// come from a malicious image. destination is resolved as if rootfs were /
// (symlinks and ".." cannot leave it), and the copy works on file
// descriptors and never follows a symlink: links are copied as links.
// Ownership, modes (setuid, setgid, sticky), hard links, extended attributes
// of files and directories (security.capability included) and timestamps
// are kept.
func CopyUp(rootfs, destination, volumeData string) error {
	dst, err := os.OpenFile(volumeData, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	names, err := dst.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(names) > 0 {
		return nil
	}

	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	handle, err := pathrs.OpenatInRoot(root, destination)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("resolve %s in %s: %w", destination, rootfs, err)
	}
	defer handle.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(handle.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	src, err := pathrs.Reopen(handle, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer src.Close()

	c := &copier{dstRoot: dst, links: map[inode]string{}}
	if err := c.copyDir(src, dst, "."); err != nil {
		return err
	}
	// Docker's copyOwnership: the volume's root looks like the image's dir.
	return c.setAttrs(int(dst.Fd()), int(src.Fd()), &st, "")
}

type inode struct{ dev, ino uint64 }

type copier struct {
	dstRoot *os.File
	// links maps a source inode with several links to the path (relative
	// to dstRoot) of its first copy.
	links map[inode]string
}

// copyDir copies the entries of src into dst; rel is dst's path in the volume.
func (c *copier) copyDir(src, dst *os.File, rel string) error {
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for {
		names, err := src.Readdirnames(256)
		for _, name := range names {
			if err := c.copyEntry(sfd, dfd, name, path.Join(rel, name)); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(names) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *copier) copyEntry(sfd, dfd int, name, rel string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return c.copySubdir(sfd, dfd, name, rel, &st)
	case unix.S_IFREG:
		return c.copyFile(sfd, dfd, name, rel, &st)
	case unix.S_IFLNK:
		return c.copySymlink(sfd, dfd, name, rel, &st)
	default: // devices, fifos, sockets
		return c.copyNode(dfd, name, rel, &st)
	}
}

func (c *copier) copySubdir(sfd, dfd int, name, rel string, st *unix.Stat_t) error {
	sf, err := openat(sfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer sf.Close()
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	df, err := openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer df.Close()
	if err := c.copyDir(sf, df, rel); err != nil {
		return err
	}
	// After the content, so that the mtime sticks and a read-only mode does
	// not get in the way.
	return c.setAttrs(int(df.Fd()), int(sf.Fd()), st, rel)
}

func (c *copier) copyFile(sfd, dfd int, name, rel string, st *unix.Stat_t) error {
	key := inode{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[key]; ok {
			if err := c.link(first, dfd, name); err == nil {
				return nil
			}
			// Could not link (e.g. no openat2): a copy is the next best thing.
		}
	}
	sf, err := openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer sf.Close()
	df, err := openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer df.Close()
	if _, err := io.Copy(df, sf); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := c.setAttrs(int(df.Fd()), int(sf.Fd()), st, rel); err != nil {
		return err
	}
	if st.Nlink > 1 {
		c.links[key] = rel
	}
	return nil
}

// link makes dst/name a hard link to the earlier copy at first (relative to
// the volume), resolved without following any symlink.
func (c *copier) link(first string, dfd int, name string) error {
	fd, err := unix.Openat2(int(c.dstRoot.Fd()), first, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Linkat(unix.AT_FDCWD, procFd(fd), dfd, name, unix.AT_SYMLINK_FOLLOW)
}

func (c *copier) copySymlink(sfd, dfd int, name, rel string, st *unix.Stat_t) error {
	target, err := readlinkat(sfd, name)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := unix.Symlinkat(target, dfd, name); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: chown: %w", rel, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: times: %w", rel, err)
	}
	return nil
}

func (c *copier) copyNode(dfd int, name, rel string, st *unix.Stat_t) error {
	if err := unix.Mknodat(dfd, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	// O_PATH: opening a fifo or a device for real could block or act.
	f, err := openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := unix.Fchownat(fd, "", int(st.Uid), int(st.Gid), unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("%s: chown: %w", rel, err)
	}
	// chmod through the descriptor's /proc link acts on this inode, not on
	// whatever the name points at by now.
	if err := unix.Chmod(procFd(fd), st.Mode&0o7777); err != nil {
		return fmt.Errorf("%s: chmod: %w", rel, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: times: %w", rel, err)
	}
	return nil
}

// setAttrs gives the open file dfd the owner, mode, extended attributes and
// times of sfd. The order matters: chown clears setuid bits and file
// capabilities, so mode and xattrs come after it.
func (c *copier) setAttrs(dfd, sfd int, st *unix.Stat_t, rel string) error {
	if err := unix.Fchown(dfd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("%s: chown: %w", rel, err)
	}
	if err := unix.Fchmod(dfd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("%s: chmod: %w", rel, err)
	}
	if err := copyXattrs(dfd, sfd); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dfd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		// Kernels before 5.8 lack AT_EMPTY_PATH here.
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, procFd(dfd), ts, 0); err != nil {
			return fmt.Errorf("%s: times: %w", rel, err)
		}
	}
	return nil
}

// copyXattrs copies the extended attributes that the target file system
// accepts; one it refuses (not supported, or trusted.* and security.selinux
// policy) is skipped rather than failing the copy.
func copyXattrs(dfd, sfd int) error {
	names, err := listXattrs(sfd)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, name := range names {
		val, err := getXattr(sfd, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
				continue
			}
			return fmt.Errorf("get xattr %s: %w", name, err)
		}
		if err := unix.Fsetxattr(dfd, name, val, 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
				continue
			}
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

func listXattrs(fd int) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Flistxattr(fd, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Flistxattr(fd, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(fd int, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Fgetxattr(fd, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func openat(dirfd int, name string, flags int, mode ...uint32) (*os.File, error) {
	var perm uint32
	if len(mode) > 0 {
		perm = mode[0]
	}
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
