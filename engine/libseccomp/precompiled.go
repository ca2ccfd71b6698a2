package seccomp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
)

// blobMagic starts a precompiled filter: the record of the calls that built
// it (length-prefixed), then libseccomp's program.
const blobMagic = "berth-seccomp-bpf 1\n"

type program struct{ record, program []byte }

var (
	preMu sync.Mutex
	pre   *program
)

func loaded() *program {
	preMu.Lock()
	defer preMu.Unlock()
	return pre
}

// IsPrecompiled reports whether data starts as a blob made by Capture.
func IsPrecompiled(data []byte) bool { return bytes.HasPrefix(data, []byte(blobMagic)) }

// Precompiled makes filters built afterwards in this process export the
// program of blob, made by Capture, without compiling, when they are built
// by the same calls. Others are compiled by libseccomp.
func Precompiled(blob []byte) error {
	if !IsPrecompiled(blob) {
		return errors.New("not a precompiled seccomp filter")
	}
	rest := blob[len(blobMagic):]
	if len(rest) < 4 || uint64(binary.LittleEndian.Uint32(rest)) > uint64(len(rest)-4) {
		return errors.New("precompiled seccomp filter: truncated")
	}
	n := binary.LittleEndian.Uint32(rest)
	p := &program{record: rest[4 : 4+n], program: rest[4+n:]}
	preMu.Lock()
	pre = p
	preMu.Unlock()
	return nil
}

// errCaptured ends the build of a captured filter at its export, so that it
// is never loaded.
var errCaptured = errors.New("seccomp filter captured, not loaded")

var (
	captureMu sync.Mutex // one Capture at a time
	capState  struct {
		sync.Mutex
		on   bool
		blob []byte
		err  error
	}
)

// Capture runs build, which must build one filter with this package and
// export it (as runc's seccomp.InitSeccomp does). The export returns an
// error that ends build instead of writing, so nothing is loaded, and
// Capture returns the filter's record and libseccomp's program as a blob
// for Precompiled. Any other failure of build is returned.
func Capture(build func() error) ([]byte, error) {
	captureMu.Lock()
	defer captureMu.Unlock()
	capState.Lock()
	capState.on, capState.blob, capState.err = true, nil, nil
	capState.Unlock()
	err := build()
	capState.Lock()
	blob, cerr := capState.blob, capState.err
	capState.on, capState.blob, capState.err = false, nil, nil
	capState.Unlock()
	switch {
	case cerr != nil:
		return nil, cerr
	case blob != nil && errors.Is(err, errCaptured):
		return blob, nil
	case err != nil:
		return nil, err
	}
	return nil, errors.New("seccomp capture: the filter was never exported")
}

// capturing reports whether a Capture is running, and if so keeps f's
// record and program for it.
func capturing(f *ScmpFilter) bool {
	capState.Lock()
	defer capState.Unlock()
	if !capState.on {
		return false
	}
	prog, err := f.exportMem()
	f.c.release()
	if err != nil {
		capState.err = err
		return true
	}
	blob := append([]byte(blobMagic), binary.LittleEndian.AppendUint32(nil, uint32(len(f.record)))...)
	blob = append(blob, f.record...)
	capState.blob = append(blob, prog...)
	return true
}
