package seccomp

// #cgo pkg-config: libseccomp
// #include <stdlib.h>
// #include <seccomp.h>
//
// // SCMP_FLTATR_CTL_WAITKILL came with libseccomp 2.6.
// #if SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR < 6
// #define BERTH_FLTATR_WAITKILL 0
// #else
// #define BERTH_FLTATR_WAITKILL SCMP_FLTATR_CTL_WAITKILL
// #endif
// #ifndef SCMP_ARCH_LOONGARCH64
// #define SCMP_ARCH_LOONGARCH64 0
// #endif
// #ifndef SCMP_ARCH_M68K
// #define SCMP_ARCH_M68K 0
// #endif
// #ifndef SCMP_ARCH_SH
// #define SCMP_ARCH_SH 0
// #endif
// #ifndef SCMP_ARCH_SHEB
// #define SCMP_ARCH_SHEB 0
// #endif
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// The filter attributes berth's callers set (libseccomp's enum values; 0 is
// none, for one this libseccomp lacks).
const (
	attrNNP      = uint32(C.SCMP_FLTATR_CTL_NNP)
	attrTsync    = uint32(C.SCMP_FLTATR_CTL_TSYNC)
	attrLog      = uint32(C.SCMP_FLTATR_CTL_LOG)
	attrSSB      = uint32(C.SCMP_FLTATR_CTL_SSB)
	attrOptimize = uint32(C.SCMP_FLTATR_CTL_OPTIMIZE)
	attrWaitKill = uint32(C.BERTH_FLTATR_WAITKILL)
)

// attrDefaults are the values seccomp_init gives the attributes above.
var attrDefaults = map[uint32]uint32{attrNNP: 1, attrTsync: 0, attrLog: 0, attrSSB: 0, attrOptimize: 1}

var nativeArchs = map[ScmpArch]C.uint32_t{
	ArchNative: C.SCMP_ARCH_NATIVE, ArchX86: C.SCMP_ARCH_X86, ArchAMD64: C.SCMP_ARCH_X86_64,
	ArchX32: C.SCMP_ARCH_X32, ArchARM: C.SCMP_ARCH_ARM, ArchARM64: C.SCMP_ARCH_AARCH64,
	ArchMIPS: C.SCMP_ARCH_MIPS, ArchMIPS64: C.SCMP_ARCH_MIPS64, ArchMIPS64N32: C.SCMP_ARCH_MIPS64N32,
	ArchMIPSEL: C.SCMP_ARCH_MIPSEL, ArchMIPSEL64: C.SCMP_ARCH_MIPSEL64,
	ArchMIPSEL64N32: C.SCMP_ARCH_MIPSEL64N32, ArchPPC: C.SCMP_ARCH_PPC, ArchPPC64: C.SCMP_ARCH_PPC64,
	ArchPPC64LE: C.SCMP_ARCH_PPC64LE, ArchS390: C.SCMP_ARCH_S390, ArchS390X: C.SCMP_ARCH_S390X,
	ArchPARISC: C.SCMP_ARCH_PARISC, ArchPARISC64: C.SCMP_ARCH_PARISC64,
	ArchRISCV64: C.SCMP_ARCH_RISCV64, ArchLOONGARCH64: C.SCMP_ARCH_LOONGARCH64,
	ArchM68K: C.SCMP_ARCH_M68K, ArchSH: C.SCMP_ARCH_SH, ArchSHEB: C.SCMP_ARCH_SHEB,
}

// toNative returns libseccomp's token of a, which is 0 only for ArchNative.
func (a ScmpArch) toNative() (C.uint32_t, error) {
	n, ok := nativeArchs[a]
	if !ok || (n == 0 && a != ArchNative) {
		return 0, fmt.Errorf("architecture %v is not supported by this libseccomp", a)
	}
	return n, nil
}

// GetLibraryVersion returns the version of the linked libseccomp.
func GetLibraryVersion() (major, minor, micro uint) {
	v := C.seccomp_version()
	return uint(v.major), uint(v.minor), uint(v.micro)
}

// GetAPI returns the API level libseccomp supports on this kernel.
func GetAPI() (uint, error) {
	api := uint(C.seccomp_api_get())
	if api == 0 {
		return 0, errors.New("libseccomp could not detect its API level")
	}
	return api, nil
}

// GetNativeArch returns the architecture of this process.
func GetNativeArch() (ScmpArch, error) {
	n := C.seccomp_arch_native()
	for a, v := range nativeArchs {
		if v == n && a != ArchNative {
			return a, nil
		}
	}
	return ArchInvalid, fmt.Errorf("unknown native architecture %#x", uint32(n))
}

// GetSyscallFromName returns the number of a system call of the native
// architecture.
func GetSyscallFromName(name string) (ScmpSyscall, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	n := C.seccomp_syscall_resolve_name(cs)
	if n == C.__NR_SCMP_ERROR {
		return 0, ErrSyscallDoesNotExist
	}
	return ScmpSyscall(n), nil
}

// GetSyscallFromNameByArch returns the number of a system call of arch.
func GetSyscallFromNameByArch(name string, arch ScmpArch) (ScmpSyscall, error) {
	na, err := arch.toNative()
	if err != nil {
		return 0, err
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	n := C.seccomp_syscall_resolve_name_arch(na, cs)
	if n == C.__NR_SCMP_ERROR {
		return 0, ErrSyscallDoesNotExist
	}
	return ScmpSyscall(n), nil
}

// cfilter is a libseccomp filter context.
type cfilter struct{ ctx C.scmp_filter_ctx }

func errRC(rc C.int) error { return syscall.Errno(-rc) }

func newCFilter(def ScmpAction) (*cfilter, error) {
	ctx := C.seccomp_init(C.uint32_t(def))
	if ctx == nil {
		return nil, errors.New("could not create filter")
	}
	f := &cfilter{ctx: ctx}
	// As libseccomp-golang does: all threads get the filter, where the
	// kernel can.
	if err := f.setAttr(attrTsync, 1); err != nil && err != syscall.ENOTSUP {
		f.release()
		return nil, fmt.Errorf("could not create filter: error setting tsync bit: %w", err)
	}
	return f, nil
}

func (f *cfilter) release() {
	if f.ctx != nil {
		C.seccomp_release(f.ctx)
		f.ctx = nil
	}
}

func (f *cfilter) addArch(a ScmpArch) error {
	n, err := a.toNative()
	if err != nil {
		return err
	}
	// Adding an architecture twice is no error.
	if rc := C.seccomp_arch_add(f.ctx, n); rc != 0 && errRC(rc) != syscall.EEXIST {
		return errRC(rc)
	}
	return nil
}

func (f *cfilter) setAttr(attr, value uint32) error {
	if rc := C.seccomp_attr_set(f.ctx, C.enum_scmp_filter_attr(attr), C.uint32_t(value)); rc != 0 {
		return errRC(rc)
	}
	return nil
}

func (f *cfilter) getAttr(attr uint32) (uint32, error) {
	var v C.uint32_t
	if rc := C.seccomp_attr_get(f.ctx, C.enum_scmp_filter_attr(attr), &v); rc != 0 {
		return 0, errRC(rc)
	}
	return uint32(v), nil
}

func (f *cfilter) addRule(call ScmpSyscall, act ScmpAction, exact bool, conds []ScmpCondition) error {
	var args []C.struct_scmp_arg_cmp
	for _, c := range conds {
		args = append(args, C.struct_scmp_arg_cmp{
			arg: C.uint(c.Argument), op: C.enum_scmp_compare(c.Op),
			datum_a: C.scmp_datum_t(c.Operand1), datum_b: C.scmp_datum_t(c.Operand2),
		})
	}
	var argp *C.struct_scmp_arg_cmp
	if len(args) > 0 {
		argp = &args[0]
	}
	var rc C.int
	if exact {
		rc = C.seccomp_rule_add_exact_array(f.ctx, C.uint32_t(act), C.int(call), C.uint(len(args)), argp)
	} else {
		rc = C.seccomp_rule_add_array(f.ctx, C.uint32_t(act), C.int(call), C.uint(len(args)), argp)
	}
	if rc == 0 {
		return nil
	}
	switch e := errRC(rc); e {
	case syscall.EFAULT:
		return fmt.Errorf("unrecognized syscall %#x", int32(call))
	case syscall.EPERM, syscall.EACCES:
		return errors.New("requested action matches default action of filter")
	case syscall.EINVAL:
		return errors.New("two checks on same syscall argument")
	default:
		return e
	}
}

func (f *cfilter) exportBPF(fd uintptr) error {
	if rc := C.seccomp_export_bpf(f.ctx, C.int(fd)); rc != 0 {
		return errRC(rc)
	}
	return nil
}
