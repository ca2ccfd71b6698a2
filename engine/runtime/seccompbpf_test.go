package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// filterHelperEnv makes the test binary print the seccomp filter of a PID,
// in hex: the reading takes a tracer that is not the process's parent,
// whose waits would take the tracer's stop notifications.
const filterHelperEnv = "BERTH_RUNTIME_TEST_FILTER"

// installedFilter returns the seccomp program the kernel holds for pid, as
// struct sock_filter entries.
func installedFilter(t *testing.T, pid int) []byte {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), filterHelperEnv+"="+strconv.Itoa(pid))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("filter of %d: %v", pid, err)
	}
	data, err := hex.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// filterHelper prints pid's filter, read with PTRACE_SECCOMP_GET_FILTER.
func filterHelper(v string) int {
	pid, err := strconv.Atoi(v)
	if err != nil {
		return 2
	}
	goruntime.LockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		fmt.Fprintln(os.Stderr, "seize:", err)
		return 1
	}
	defer unix.PtraceDetach(pid)
	if err := unix.PtraceInterrupt(pid); err != nil {
		fmt.Fprintln(os.Stderr, "interrupt:", err)
		return 1
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		fmt.Fprintln(os.Stderr, "wait:", ws, err)
		return 1
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), 0, 0, 0, 0)
	if errno != 0 || n == 0 {
		fmt.Fprintln(os.Stderr, "filter length:", n, errno)
		return 1
	}
	buf := make([]unix.SockFilter, n)
	if _, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), 0, uintptr(unsafe.Pointer(&buf[0])), 0, 0); errno != 0 {
		fmt.Fprintln(os.Stderr, "filter:", errno)
		return 1
	}
	fmt.Println(hex.EncodeToString(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*int(unsafe.Sizeof(buf[0])))))
	return 0
}

// onlyStdio fails unless pid's open descriptors are 0, 1 and 2: the
// precompiled filter's memfd must not reach the command.
func onlyStdio(t *testing.T, pid int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		fds = append(fds, e.Name())
	}
	if !slices.Equal(fds, []string{"0", "1", "2"}) {
		t.Errorf("process %d has descriptors %v, want 0 1 2", pid, fds)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// startFilters starts `sleep` in a container and a detached exec beside it
// and returns the filters installed in both.
func startFilters(t *testing.T, e *env) (initF, execF []byte) {
	t.Helper()
	c := e.start(e.spec("sleep", "100"))
	if _, err := c.Exec(context.Background(), ExecSpec{Args: []string{"sleep", "100"}, Detach: true}); err != nil {
		t.Fatalf("exec: %v", err)
	}
	var execPid int
	for deadline := time.Now().Add(10 * time.Second); execPid == 0 && time.Now().Before(deadline); {
		pids, err := c.Processes()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pids {
			comm, _ := os.ReadFile("/proc/" + itoa(p) + "/comm")
			if p != c.Pid() && string(comm) == "sleep\n" {
				execPid = p
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if execPid == 0 {
		t.Fatal("the exec'd sleep never appeared")
	}
	onlyStdio(t, c.Pid())
	onlyStdio(t, execPid)
	return installedFilter(t, c.Pid()), installedFilter(t, execPid)
}

// TestSeccompPrecompiled: the filter compiled once and handed to the inits
// is installed as libseccomp compiling in the init installs it, in a
// container's init and in an exec, and the command never sees the
// descriptor that carried it. runc prepends a stub returning ENOSYS for
// system calls newer than the profile, whose architecture sections it
// orders by a map walk, so the stub is compared by length and libseccomp's
// program, the rest, byte for byte.
func TestSeccompPrecompiled(t *testing.T) {
	e := newEnv(t)
	sc, err := defaultSeccomp(defaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	_, prog := capturedParts(t, sc)
	pre, preExec := startFilters(t, e)
	t.Setenv(seccompPrecompileEnv, "0")
	own, ownExec := startFilters(t, e)
	for _, f := range []struct {
		name   string
		filter []byte
	}{{"init, precompiled", pre}, {"exec, precompiled", preExec}, {"init, compiled in the init", own}, {"exec, compiled in the init", ownExec}} {
		if len(f.filter) != len(own) || !bytes.HasSuffix(f.filter, prog) {
			t.Errorf("%s: %d bytes not ending with libseccomp's program of %d bytes (compiled in the init: %d bytes)", f.name, len(f.filter), len(prog), len(own))
		}
	}
}

// TestSeccompPrecompiledServed: an init exports the program it is given
// when its calls are the captured ones. The program given here is another
// profile's (one rule less), so the installed filter tells which was used.
func TestSeccompPrecompiledServed(t *testing.T) {
	e := newEnv(t)
	sc, err := defaultSeccomp(defaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	other := *sc
	other.Syscalls = slices.DeleteFunc(slices.Clone(sc.Syscalls), func(s *configs.Syscall) bool { return s.Name == "tee" })
	blob, prog := capturedParts(t, sc)
	_, otherProg := capturedParts(t, &other)
	if bytes.Equal(prog, otherProg) {
		t.Fatal("dropping a rule did not change the program")
	}
	f, err := sealedFile(append(blob[:len(blob)-len(prog):len(blob)-len(prog)], otherProg...))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(sc)
	key := sha256.Sum256(data)
	precompiledSeccomp(sc) // fills the cache, which the test then overrides
	bpfCache.Lock()
	old := bpfCache.files[key]
	bpfCache.files[key] = f
	clear(bpfCache.byConfig)
	bpfCache.Unlock()
	t.Cleanup(func() {
		bpfCache.Lock()
		bpfCache.files[key] = old
		clear(bpfCache.byConfig)
		bpfCache.Unlock()
		f.Close()
	})
	c := e.start(e.spec("sleep", "100"))
	got := installedFilter(t, c.Pid())
	if !bytes.HasSuffix(got, otherProg) {
		t.Errorf("installed filter (%d bytes) does not end with the given program (%d bytes)", len(got), len(otherProg))
	}
}

// capturedParts compiles sc as the supervisor does and returns the blob
// and its program, the blob's tail.
func capturedParts(t *testing.T, sc *configs.Seccomp) (blob, prog []byte) {
	t.Helper()
	f, err := compileSeccomp(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	blob = make([]byte, st.Size())
	if _, err := f.ReadAt(blob, 0); err != nil {
		t.Fatal(err)
	}
	head := len("berth-seccomp-bpf 1\n")
	n := int(binary.LittleEndian.Uint32(blob[head:]))
	return blob, blob[head+4+n:]
}

func sealedFile(data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("berth-seccomp", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "berth-seccomp")
	if _, err := f.Write(data); err != nil {
		return nil, err
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_SEAL)
	return f, err
}
