package runtime

import (
	"fmt"
	"os"
	"strconv"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// startDetached starts p and returns without waiting, as `exec -d` does:
// the process keeps running in the container after the caller is gone, and
// its stdio is the container's own /dev/null, never a descriptor of the
// host's (root in the container could chmod or write through
// /proc/self/fd/0 to whatever file that names).
func (c *Container) startDetached(p *libcontainer.Process) (int, error) {
	null, err := c.devNull()
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	defer null.Close()
	p.Stdin, p.Stdout, p.Stderr = null, null, null
	if err := c.runProcess(p); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.id, classifyStart(err))
	}
	// Reap it if the caller lives longer than the process; a CLI that exits
	// first leaves it to the kernel's reparenting.
	go func() { _, _ = p.Wait() }()
	return 0, nil
}

// devNull opens /dev/null inside the container's root, resolving the path
// as the container would (a symlink planted there cannot point out of it),
// and checks that it is the null device.
func (c *Container) devNull() (*os.File, error) {
	pid := c.Pid()
	if pid <= 0 {
		return nil, ErrNotRunning
	}
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the container's root: %w", err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, "dev/null", &unix.OpenHow{
		Flags:   unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("open the container's /dev/null: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		unix.Close(fd)
		return nil, fmt.Errorf("the container's /dev/null is not the null device")
	}
	return os.NewFile(uintptr(fd), "/dev/null"), nil
}
