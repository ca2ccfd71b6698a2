package runtime

import (
	"github.com/berthrun/berth/engine/runtime/internal/reaper"
)

// ReaperArg is the first argument that makes the berth binary act as a
// container's PID 1 reaper. cmd/berth/main.go must check for it before
// anything else:
//
//	if len(os.Args) > 1 && os.Args[1] == runtime.ReaperArg {
//		os.Exit(runtime.RunReaper(os.Args[2:]))
//	}
const ReaperArg = "__reaper"

// InitPath is where WithInit mounts the berth binary inside the container.
const InitPath = "/sbin/berth-init"

// RunReaper is the container side of Spec.Init: it runs args (after an
// optional "--"), forwards every signal to it, reaps zombies, and returns
// the command's exit code, or 128+signal. The caller exits with it.
func RunReaper(args []string) int {
	return reaper.Run(args)
}

// WithInit rewrites s so that berth runs as PID 1 of the container: binary
// (the host path of a static berth executable) is bind-mounted read-only at
// InitPath and the command becomes [InitPath, ReaperArg, "--", args...].
// Create applies it when s.Init is set; Init is cleared in the result.
func WithInit(s Spec, binary string) Spec {
	s.Init = false
	s.Mounts = append(append([]Mount(nil), s.Mounts...), Mount{
		Source:      binary,
		Destination: InitPath,
		ReadOnly:    true,
	})
	s.Args = append([]string{InitPath, ReaperArg, "--"}, s.Args...)
	return s
}
