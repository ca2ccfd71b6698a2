package runtime

import (
	_ "embed"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// seccompDefaultJSON is Docker's default policy in berth's own format.
//
//go:embed seccomp_default.json
var seccompDefaultJSON []byte

// seccompProfile is the file format of seccomp_default.json.
type seccompProfile struct {
	DefaultAction string              `json:"defaultAction"`
	DefaultErrno  uint                `json:"defaultErrno"`
	Architectures map[string][]string `json:"architectures"`
	Rules         []seccompRule       `json:"rules"`
}

type seccompRule struct {
	Action    string       `json:"action"`
	Errno     uint         `json:"errno"`
	Names     []string     `json:"names"`
	Args      []seccompArg `json:"args"`
	Caps      []string     `json:"caps"`
	NotCaps   []string     `json:"notCaps"`
	Arches    []string     `json:"arches"`
	NotArches []string     `json:"notArches"`
}

type seccompArg struct {
	Index    uint   `json:"index"`
	Op       string `json:"op"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo"`
}

var seccompOps = map[string]configs.Operator{
	"==":  configs.EqualTo,
	"!=":  configs.NotEqualTo,
	">":   configs.GreaterThan,
	">=":  configs.GreaterThanOrEqualTo,
	"<":   configs.LessThan,
	"<=":  configs.LessThanOrEqualTo,
	"&==": configs.MaskEqualTo,
}

func seccompAction(name string) (configs.Action, error) {
	switch name {
	case "allow":
		return configs.Allow, nil
	case "errno":
		return configs.Errno, nil
	case "kill":
		return configs.KillProcess, nil
	case "log":
		return configs.Log, nil
	}
	return 0, fmt.Errorf("unknown seccomp action %q", name)
}

// defaultSeccomp builds the libcontainer filter of the default profile for a
// container with the given capabilities on this machine's architecture.
// Filters are built once per capability set and shared: callers must not
// modify them (and the precompiled program is found by the pointer).
func defaultSeccomp(caps []string) (*configs.Seccomp, error) {
	key := strings.Join(caps, ",")
	seccompMemo.Lock()
	defer seccompMemo.Unlock()
	if sc, ok := seccompMemo.m[key]; ok {
		return sc, nil
	}
	sc, err := seccompFromProfile(seccompDefaultJSON, caps, goruntime.GOARCH)
	if err != nil {
		return nil, err
	}
	if seccompMemo.m == nil {
		seccompMemo.m = map[string]*configs.Seccomp{}
	}
	seccompMemo.m[key] = sc
	return sc, nil
}

var seccompMemo struct {
	sync.Mutex
	m map[string]*configs.Seccomp // by capability set
}

func seccompFromProfile(data []byte, caps []string, goarch string) (*configs.Seccomp, error) {
	var p seccompProfile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	def, err := seccompAction(p.DefaultAction)
	if err != nil {
		return nil, err
	}
	out := &configs.Seccomp{DefaultAction: def}
	for _, a := range p.Architectures[goarch] {
		// Filtering for x32 makes libseccomp's program several times
		// larger (about 30 ms more per container start here); leave it out
		// where the kernel cannot run x32 code anyway, so its syscalls fail.
		if a == "x32" && goarch == goruntime.GOARCH && !x32Enabled() {
			continue
		}
		out.Architectures = append(out.Architectures, a)
	}
	if def == configs.Errno {
		e := p.DefaultErrno
		out.DefaultErrnoRet = &e
	}
	// libseccomp rejects a second rule for a syscall with a different
	// action, and a repeated unconditional allow is pointless: keep the first.
	plain := map[string]bool{}
	for _, r := range p.Rules {
		if !ruleApplies(r, caps, goarch) {
			continue
		}
		act, err := seccompAction(r.Action)
		if err != nil {
			return nil, err
		}
		var args []*configs.Arg
		for _, a := range r.Args {
			op, ok := seccompOps[a.Op]
			if !ok {
				return nil, fmt.Errorf("seccomp profile: unknown operator %q", a.Op)
			}
			args = append(args, &configs.Arg{Index: a.Index, Value: a.Value, ValueTwo: a.ValueTwo, Op: op})
		}
		for _, name := range r.Names {
			if plain[name] {
				continue
			}
			if len(args) == 0 {
				plain[name] = true
			}
			sc := &configs.Syscall{Name: name, Action: act, Args: args}
			if act == configs.Errno {
				e := r.Errno
				sc.ErrnoRet = &e
			}
			out.Syscalls = append(out.Syscalls, sc)
		}
	}
	return out, nil
}

var x32Once = sync.OnceValue(func() bool {
	// An x32 system call is a native one with bit 30 set; kernels built
	// without CONFIG_X86_X32_ABI (or booted with syscall.x32=n) refuse it.
	const x32Bit = 0x40000000
	_, _, errno := unix.RawSyscall(unix.SYS_GETPID|x32Bit, 0, 0, 0)
	return errno == 0
})

// x32Enabled reports whether this amd64 kernel runs x32 binaries.
func x32Enabled() bool {
	return goruntime.GOARCH == "amd64" && x32Once()
}

func ruleApplies(r seccompRule, caps []string, goarch string) bool {
	for _, c := range r.Caps {
		if !slices.Contains(caps, c) {
			return false
		}
	}
	for _, c := range r.NotCaps {
		if slices.Contains(caps, c) {
			return false
		}
	}
	if len(r.Arches) > 0 && !slices.Contains(r.Arches, goarch) {
		return false
	}
	return !slices.Contains(r.NotArches, goarch)
}
