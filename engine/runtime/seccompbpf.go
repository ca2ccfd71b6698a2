package runtime

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"sync"

	"github.com/opencontainers/runc/libcontainer/configs"
	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// A container's seccomp filter is compiled once per distinct profile in the
// process that starts containers, not by libseccomp in every container's
// init, exec and health probe (10–15 ms of CPU each with Docker's profile).
// runc's own InitSeccomp builds the filter under libseccomp.Capture (berth's
// implementation of libseccomp-golang, engine/libseccomp), which keeps
// libseccomp's program and loads nothing; the result goes to the init as
// its file descriptor 3, a sealed memfd, and the init's InitSeccomp exports
// it when its calls are the captured ones (else libseccomp compiles, as
// before). The filter installed is the same, byte for byte.

// precompiledFd is where an init finds the precompiled filter: the only
// file of the process's ExtraFiles.
const precompiledFd = 3

// seccompPrecompileEnv set to 0 makes every init compile its filter with
// libseccomp, as runc alone does.
const seccompPrecompileEnv = "BERTH_SECCOMP_PRECOMPILE"

var bpfCache struct {
	sync.Mutex
	files map[[sha256.Size]byte]*os.File // nil: capture failed, inits compile
	// byConfig spares the hash of a filter seen before: defaultSeccomp
	// shares one per capability set.
	byConfig map[*configs.Seccomp]*os.File
}

// precompiledSeccomp returns a sealed memfd holding the filter of sc
// compiled, made on first use and kept for the life of the process, or nil
// when there is none to give (no filter, turned off, or the capture failed).
func precompiledSeccomp(sc *configs.Seccomp) *os.File {
	if sc == nil || os.Getenv(seccompPrecompileEnv) == "0" {
		return nil
	}
	bpfCache.Lock()
	defer bpfCache.Unlock()
	if f, ok := bpfCache.byConfig[sc]; ok {
		return f
	}
	data, err := json.Marshal(sc)
	if err != nil {
		return nil
	}
	key := sha256.Sum256(data)
	f, ok := bpfCache.files[key]
	if !ok {
		f, _ = compileSeccomp(sc)
		if bpfCache.files == nil {
			bpfCache.files = map[[sha256.Size]byte]*os.File{}
		}
		bpfCache.files[key] = f
	}
	if len(bpfCache.byConfig) >= 64 {
		clear(bpfCache.byConfig) // configs of loaded containers come and go
	}
	if bpfCache.byConfig == nil {
		bpfCache.byConfig = map[*configs.Seccomp]*os.File{}
	}
	bpfCache.byConfig[sc] = f
	return f
}

// compileSeccomp captures the filter runc's init would build for sc into a
// sealed memfd.
func compileSeccomp(sc *configs.Seccomp) (*os.File, error) {
	blob, err := libseccomp.Capture(func() error {
		_, err := lcseccomp.InitSeccomp(sc)
		return err
	})
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("berth-seccomp", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "berth-seccomp")
	if _, err := f.Write(blob); err != nil {
		f.Close()
		return nil, err
	}
	// Sealed, the file cannot change under the inits that read it.
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// withPrecompiledSeccomp passes the precompiled filter of sc to the init of
// a process with no other extra files.
func withPrecompiledSeccomp(extra []*os.File, sc *configs.Seccomp) []*os.File {
	if len(extra) > 0 {
		return extra
	}
	if f := precompiledSeccomp(sc); f != nil {
		return []*os.File{f}
	}
	return extra
}

// loadPrecompiledSeccomp runs in an init before libcontainer's: when fd 3
// is a sealed memfd holding a precompiled filter, the filter is handed to
// libseccomp, and the descriptor closes at the command's execve, so that
// the command never sees it.
func loadPrecompiledSeccomp() {
	seals, err := unix.FcntlInt(precompiledFd, unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_WRITE == 0 {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(precompiledFd, &st) != nil || st.Size <= 0 || st.Size > 1<<20 {
		return
	}
	data := make([]byte, st.Size)
	if n, err := unix.Pread(precompiledFd, data, 0); err != nil || n != len(data) {
		return
	}
	if !libseccomp.IsPrecompiled(data) {
		return
	}
	if _, err := unix.FcntlInt(precompiledFd, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return
	}
	_ = libseccomp.Precompiled(data)
}
