package seccomp

import (
	"errors"
	"fmt"
	"strings"
)

// VersionError reports an operation the linked libseccomp or the kernel
// cannot do.
type VersionError struct {
	op      string
	minimum string
}

func (e VersionError) Error() string {
	return fmt.Sprintf("%s requires %s", e.op, e.minimum)
}

// ScmpArch is an architecture (ABI) a filter can match.
type ScmpArch uint

// The architectures; ArchNative is the one this process runs.
const (
	ArchInvalid ScmpArch = iota
	ArchNative
	ArchX86
	ArchAMD64
	ArchX32
	ArchARM
	ArchARM64
	ArchMIPS
	ArchMIPS64
	ArchMIPS64N32
	ArchMIPSEL
	ArchMIPSEL64
	ArchMIPSEL64N32
	ArchPPC
	ArchPPC64
	ArchPPC64LE
	ArchS390
	ArchS390X
	ArchPARISC
	ArchPARISC64
	ArchRISCV64
	ArchLOONGARCH64
	ArchM68K
	ArchSH
	ArchSHEB
)

var archNames = map[string]ScmpArch{
	"x86": ArchX86, "amd64": ArchAMD64, "x32": ArchX32, "arm": ArchARM, "arm64": ArchARM64,
	"mips": ArchMIPS, "mips64": ArchMIPS64, "mips64n32": ArchMIPS64N32, "mipsel": ArchMIPSEL,
	"mipsel64": ArchMIPSEL64, "mipsel64n32": ArchMIPSEL64N32, "ppc": ArchPPC, "ppc64": ArchPPC64,
	"ppc64le": ArchPPC64LE, "s390": ArchS390, "s390x": ArchS390X, "parisc": ArchPARISC,
	"parisc64": ArchPARISC64, "riscv64": ArchRISCV64, "loong64": ArchLOONGARCH64,
	"m68k": ArchM68K, "sh": ArchSH, "sheb": ArchSHEB,
}

// GetArchFromString returns the architecture of a Go-style name ("amd64").
func GetArchFromString(arch string) (ScmpArch, error) {
	if a, ok := archNames[strings.ToLower(arch)]; ok {
		return a, nil
	}
	return ArchInvalid, fmt.Errorf("cannot convert unrecognized string %q", arch)
}

func (a ScmpArch) String() string {
	if a == ArchNative {
		return "native"
	}
	for name, v := range archNames {
		if v == a {
			return name
		}
	}
	return fmt.Sprintf("unknown architecture %d", uint(a))
}

// ScmpAction is what a filter does with a matching system call. Its value is
// libseccomp's (and the kernel's): SCMP_ACT_ERRNO and SCMP_ACT_TRACE carry
// their return code in the low 16 bits.
type ScmpAction uint

// The actions. ActInvalid is no action at all.
const (
	ActKillThread  ScmpAction = 0x00000000
	ActKill                   = ActKillThread
	ActKillProcess ScmpAction = 0x80000000
	ActTrap        ScmpAction = 0x00030000
	ActNotify      ScmpAction = 0x7fc00000
	ActErrno       ScmpAction = 0x00050000
	ActTrace       ScmpAction = 0x7ff00000
	ActLog         ScmpAction = 0x7ffc0000
	ActAllow       ScmpAction = 0x7fff0000
	ActInvalid     ScmpAction = 0xffffffff
)

const actCodeMask = 0x0000ffff

// SetReturnCode returns the action with code as its return code; only
// ActErrno and ActTrace carry one, other actions are returned unchanged.
func (a ScmpAction) SetReturnCode(code int16) ScmpAction {
	base := a &^ actCodeMask
	if base == ActErrno || base == ActTrace {
		return base | ScmpAction(uint16(code))
	}
	return a
}

// GetReturnCode returns the action's return code.
func (a ScmpAction) GetReturnCode() int16 {
	return int16(uint16(a & actCodeMask))
}

func (a ScmpAction) valid() bool {
	switch a &^ actCodeMask {
	case ActErrno, ActTrace:
		return true
	}
	switch a {
	case ActKillThread, ActKillProcess, ActTrap, ActNotify, ActLog, ActAllow:
		return true
	}
	return false
}

// ScmpCompareOp compares a system call argument; its value is libseccomp's
// enum scmp_compare.
type ScmpCompareOp uint

// The comparisons.
const (
	CompareInvalid ScmpCompareOp = iota
	CompareNotEqual
	CompareLess
	CompareLessOrEqual
	CompareEqual
	CompareGreaterEqual
	CompareGreater
	CompareMaskedEqual
)

// ScmpCondition is one comparison of a rule: argument Argument (0–5)
// compared with Operand1 (after masking with Operand2 for
// CompareMaskedEqual).
type ScmpCondition struct {
	Argument uint          `json:"argument,omitempty"`
	Op       ScmpCompareOp `json:"operator,omitempty"`
	Operand1 uint64        `json:"operand_one,omitempty"`
	Operand2 uint64        `json:"operand_two,omitempty"`
}

// MakeCondition returns the condition comparing argument arg with one value
// (or, for CompareMaskedEqual, a value and a mask).
func MakeCondition(arg uint, comparison ScmpCompareOp, values ...uint64) (ScmpCondition, error) {
	switch {
	case comparison <= CompareInvalid || comparison > CompareMaskedEqual:
		return ScmpCondition{}, errors.New("invalid comparison operator")
	case arg > 5:
		return ScmpCondition{}, fmt.Errorf("syscalls have at most 6 arguments (argument %d given)", arg)
	case len(values) == 0 || len(values) > 2:
		return ScmpCondition{}, fmt.Errorf("a condition takes one or two values (%d given)", len(values))
	}
	c := ScmpCondition{Argument: arg, Op: comparison, Operand1: values[0]}
	if len(values) == 2 {
		c.Operand2 = values[1]
	}
	return c, nil
}

// ScmpSyscall is a system call number of some architecture.
type ScmpSyscall int32

// ErrSyscallDoesNotExist is returned for a name libseccomp does not know.
var ErrSyscallDoesNotExist = errors.New("could not resolve syscall name")
