package seccomp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var errBadFilter = errors.New("filter is invalid or uninitialized")

// ScmpFilter is a filter being built. Every call is recorded; unless a
// precompiled program may serve the export, each is also made on
// libseccomp at once.
type ScmpFilter struct {
	mu sync.Mutex
	c  *cfilter // nil while the calls are only recorded
	// record is the calls so far, encoded; pending replays those not yet
	// made on libseccomp.
	record  []byte
	pending []func(*cfilter) error
	lazy    bool              // record only, until ExportBPF decides
	served  bool              // ExportBPF wrote the precompiled program
	attrs   map[uint32]uint32 // attribute values set, for a served filter
}

// NewFilter returns an empty filter whose default action is def.
func NewFilter(def ScmpAction) (*ScmpFilter, error) {
	if !def.valid() {
		return nil, errors.New("invalid action")
	}
	f := &ScmpFilter{lazy: loaded() != nil, attrs: map[uint32]uint32{}}
	for a, v := range attrDefaults {
		f.attrs[a] = v
	}
	err := f.do([]byte{'N'}, []uint32{uint32(def)}, func(*cfilter) error {
		c, err := newCFilter(def)
		if err != nil {
			return err
		}
		f.c = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// do records one call and makes it on libseccomp now, or later when the
// filter is lazy.
func (f *ScmpFilter) do(op []byte, args []uint32, call func(*cfilter) error) error {
	rec := append([]byte(nil), op...)
	for _, a := range args {
		rec = binary.LittleEndian.AppendUint32(rec, a)
	}
	if f.lazy {
		f.record = append(f.record, rec...)
		f.pending = append(f.pending, call)
		return nil
	}
	if err := call(f.c); err != nil {
		return err
	}
	f.record = append(f.record, rec...)
	return nil
}

// replay makes the recorded calls on libseccomp.
func (f *ScmpFilter) replay() error {
	f.lazy = false
	for len(f.pending) > 0 {
		call := f.pending[0]
		f.pending = f.pending[1:]
		if err := call(f.c); err != nil {
			return err
		}
	}
	if f.c == nil {
		return errBadFilter
	}
	return nil
}

// Release frees the filter's libseccomp context.
func (f *ScmpFilter) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c != nil {
		f.c.release()
	}
	f.pending = nil
}

// AddArch adds an architecture to the filter.
func (f *ScmpFilter) AddArch(arch ScmpArch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := arch.toNative(); err != nil {
		return err
	}
	return f.do([]byte{'A'}, []uint32{uint32(arch)}, func(c *cfilter) error { return c.addArch(arch) })
}

func (f *ScmpFilter) setAttr(attr, value uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.do([]byte{'S'}, []uint32{attr, value}, func(c *cfilter) error { return c.setAttr(attr, value) })
	if err == nil {
		f.attrs[attr] = value
	}
	return err
}

func (f *ScmpFilter) getAttr(attr uint32) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.served {
		// Only calls libseccomp accepted in the capture led here.
		return f.attrs[attr], nil
	}
	if err := f.replay(); err != nil {
		return 0, err
	}
	return f.c.getAttr(attr)
}

// needAPI fails unless libseccomp's API level on this kernel is at least min.
func needAPI(op string, min uint) error {
	if api, _ := GetAPI(); api < min {
		return VersionError{op: op, minimum: fmt.Sprintf("libseccomp API level %d", min)}
	}
	return nil
}

func bit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// SetNoNewPrivsBit sets whether loading the filter sets no_new_privs.
func (f *ScmpFilter) SetNoNewPrivsBit(state bool) error { return f.setAttr(attrNNP, bit(state)) }

// SetLogBit sets whether the kernel logs the actions taken (but allow).
func (f *ScmpFilter) SetLogBit(state bool) error {
	if err := needAPI("SetLogBit", 3); err != nil {
		return err
	}
	return f.setAttr(attrLog, bit(state))
}

// SetSSB sets whether the speculative store bypass mitigation is left off.
func (f *ScmpFilter) SetSSB(state bool) error {
	if err := needAPI("SetSSB", 4); err != nil {
		return err
	}
	return f.setAttr(attrSSB, bit(state))
}

// SetOptimize sets libseccomp's optimization level (2: a binary tree).
func (f *ScmpFilter) SetOptimize(level int) error { return f.setAttr(attrOptimize, uint32(level)) }

// SetWaitKill sets whether a notified process waits killably.
func (f *ScmpFilter) SetWaitKill(state bool) error {
	if attrWaitKill == 0 {
		return VersionError{op: "SetWaitKill", minimum: "libseccomp 2.6.0"}
	}
	if err := needAPI("SetWaitKill", 7); err != nil {
		return err
	}
	return f.setAttr(attrWaitKill, bit(state))
}

func (f *ScmpFilter) getBit(attr uint32) (bool, error) {
	v, err := f.getAttr(attr)
	return v != 0, err
}

// GetNoNewPrivsBit returns whether loading the filter sets no_new_privs.
func (f *ScmpFilter) GetNoNewPrivsBit() (bool, error) { return f.getBit(attrNNP) }

// GetLogBit returns the log attribute.
func (f *ScmpFilter) GetLogBit() (bool, error) {
	if err := needAPI("GetLogBit", 3); err != nil {
		return false, err
	}
	return f.getBit(attrLog)
}

// GetSSB returns the speculative store bypass attribute.
func (f *ScmpFilter) GetSSB() (bool, error) {
	if err := needAPI("GetSSB", 4); err != nil {
		return false, err
	}
	return f.getBit(attrSSB)
}

// GetWaitKill returns the wait-killable attribute.
func (f *ScmpFilter) GetWaitKill() (bool, error) {
	if attrWaitKill == 0 {
		return false, VersionError{op: "GetWaitKill", minimum: "libseccomp 2.6.0"}
	}
	return f.getBit(attrWaitKill)
}

// AddRule adds an unconditional rule.
func (f *ScmpFilter) AddRule(call ScmpSyscall, action ScmpAction) error {
	return f.addRule(call, action, false, nil)
}

// AddRuleExact adds an unconditional rule that libseccomp may not rewrite
// for another architecture.
func (f *ScmpFilter) AddRuleExact(call ScmpSyscall, action ScmpAction) error {
	return f.addRule(call, action, true, nil)
}

// AddRuleConditional adds a rule that matches when all conds hold.
func (f *ScmpFilter) AddRuleConditional(call ScmpSyscall, action ScmpAction, conds []ScmpCondition) error {
	return f.addRule(call, action, false, conds)
}

// AddRuleConditionalExact is AddRuleConditional without rewriting.
func (f *ScmpFilter) AddRuleConditionalExact(call ScmpSyscall, action ScmpAction, conds []ScmpCondition) error {
	return f.addRule(call, action, true, conds)
}

func (f *ScmpFilter) addRule(call ScmpSyscall, action ScmpAction, exact bool, conds []ScmpCondition) error {
	if !action.valid() {
		return errors.New("invalid action")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	args := []uint32{uint32(call), uint32(action), bit(exact), uint32(len(conds))}
	for _, c := range conds {
		args = append(args, uint32(c.Argument), uint32(c.Op),
			uint32(c.Operand1), uint32(c.Operand1>>32), uint32(c.Operand2), uint32(c.Operand2>>32))
	}
	conds = append([]ScmpCondition(nil), conds...)
	return f.do([]byte{'R'}, args, func(c *cfilter) error { return c.addRule(call, action, exact, conds) })
}

// ExportBPF writes the filter's BPF program to file: the precompiled one
// when this filter was built by the same calls, else libseccomp's.
func (f *ScmpFilter) ExportBPF(file *os.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := loaded(); p != nil && f.lazy && bytes.Equal(p.record, f.record) {
		f.served = true
		_, err := file.Write(p.program)
		return err
	}
	if err := f.replay(); err != nil {
		return err
	}
	if capturing(f) {
		return errCaptured
	}
	return f.c.exportBPF(file.Fd())
}

// exportMem returns libseccomp's program of the filter.
func (f *ScmpFilter) exportMem() ([]byte, error) {
	fd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "seccomp-bpf")
	defer file.Close()
	if err := f.c.exportBPF(file.Fd()); err != nil {
		return nil, err
	}
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	prog := make([]byte, st.Size())
	if _, err := file.ReadAt(prog, 0); err != nil {
		return nil, err
	}
	return prog, nil
}
