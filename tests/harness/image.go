package harness

import (
	"path/filepath"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/debian"
)

// LoadImage builds a busybox image (Debian's busybox-static plus opts)
// offline and loads it into this Env's store as ref, with `berth image load`.
func (e *Env) LoadImage(ref string, opts ...testimage.Option) {
	e.t.Helper()
	img, err := testimage.Busybox(opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	archive := filepath.Join(filepath.Dir(e.Root), filepath.Base(ref)+".tar")
	if err := testimage.WriteDockerArchive(archive, ref, img); err != nil {
		e.t.Fatal(err)
	}
	e.MustRun("image", "load", "-i", archive)
}

// DebianImage imports Debian 12's minbase with packages into this Env's
// store as ref: made once per machine and package set by tests/debian
// (debootstrap, minutes the first time) and cached.
func (e *Env) DebianImage(ref string, packages ...string) {
	e.t.Helper()
	debian.Image(e.t, e.Bin, []string{"BERTH_ROOT=" + e.Root, "BERTH_RUN_ROOT=" + e.RunRoot}, ref, packages...)
}
