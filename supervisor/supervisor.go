package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/internal/cmalloc"
	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/internal/flock"
	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/scale"
	"github.com/berthrun/berth/volmgr"
)

// Supervisor owns one project's containers.
type Supervisor struct {
	paths   Paths
	project string
	images  imageSource      // image.Store (backends.go)
	volumes volumePreparer   // volmgr.Manager
	net     networkAttacher  // netmgr.Manager
	engine  containerRuntime // the runtime package
	dns     *netmgr.DNSServer
	ports   ports
	kick    chan struct{}   // asks for the proxies' backends to be refreshed
	ctx     context.Context // cancelled when the supervisor stops
	log     *log.Logger

	proxyLog *slog.Logger // the proxies' warnings, into the supervisor's log
	maxConns int          // per published port; 0: the proxy's default
	kports   *kernelPorts // published ports in the kernel; nil: all through the proxy

	// opLock runs up, down and the container operations one at a time:
	// two CLIs converging one project at once would both create replica 1.
	// A channel rather than a mutex, so that an up cancelled while it
	// waits for its turn stops waiting.
	opLock chan struct{}

	mu         sync.Mutex
	containers map[string]*container // by ID
	busy       int                   // requests in flight
	exiting    bool                  // decided to exit: requests get no answer
	awaiting   bool                  // the CLI that spawned this supervisor has yet to send its request
	changed    chan struct{}         // closed and replaced at every state change
	subs       map[chan Event]struct{}
	journal    *journal                        // the events' history; nil: none kept
	idle       chan struct{}                   // signalled when the project may have become empty
	ups        map[int]context.CancelCauseFunc // ups in flight, for down to cancel
	nextUp     int
	trimKick   chan struct{} // a request ended: trim once idle (trim.go)
}

// Run is the supervisor process's main: it takes the project's lock (one
// supervisor per project), adopts the containers a previous supervisor left,
// serves the socket, and returns once the project has no containers left
// and no request is in flight.
func Run(ctx context.Context, paths Paths, proj string) error {
	if err := paths.CheckProject(proj); err != nil {
		return err
	}
	dir := paths.ProjectRunDir(proj)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := lockFile(paths.Lock(proj))
	if err != nil {
		return err
	}
	defer lock.Unlock()

	// Fixed for the supervisor's life: left to the runtime, GOMAXPROCS
	// follows the cgroup's CPU limit, which the runtime rereads (two
	// system calls) about once a second whenever anything wakes the
	// process, and an idle supervisor is better left asleep.
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	// The inits of containers and execs (this binary, re-executed by
	// libcontainer, which hands them this process's GOMAXPROCS variable)
	// set GOMAXPROCS to 1 first thing: a stop-the-world resize that frees
	// the other Ps' caches, about 2% of an init's CPU. Started with 1 they
	// skip it. This process's own scheduler read the variable at its start;
	// its other children (container commands) get the environment their
	// config gives them.
	if os.Getenv("GOMAXPROCS") == "" {
		os.Setenv("GOMAXPROCS", "1")
	}
	// The C heap (libseccomp's filter compiles) in one arena, which the
	// idle trim gives back, rather than in one per thread.
	cmalloc.OneArena()

	// Containers are our children; their init processes are re-parented to
	// us when libcontainer's intermediate processes exit.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set child subreaper: %w", err)
	}
	images, err := image.Open(paths.ImageRoot())
	if err != nil {
		return err
	}
	volumes, err := volmgr.New(paths.VolumeRoot())
	if err != nil {
		return err
	}
	nets, err := netmgr.New(paths.NetworkDir())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &Supervisor{
		net:        nets,
		dns:        netmgr.NewDNSServer(nets, netmgr.DNSConfig{}),
		ports:      ports{pubs: map[string]*publisher{}},
		kick:       make(chan struct{}, 1),
		paths:      paths,
		project:    proj,
		images:     images,
		volumes:    volumes,
		engine:     engineRuntime{},
		ctx:        ctx,
		log:        log.New(newLogWriter(paths.Log(proj), logMaxSize), "", log.LstdFlags|log.Lmicroseconds),
		containers: map[string]*container{},
		changed:    make(chan struct{}),
		subs:       map[chan Event]struct{}{},
		journal:    openJournal(paths.Journal(proj)),
		ups:        map[int]context.CancelCauseFunc{},
		opLock:     make(chan struct{}, 1),
		idle:       make(chan struct{}, 1),
		trimKick:   make(chan struct{}, 1),
	}
	s.proxyLog = slog.New(slog.NewTextHandler(s.log.Writer(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if s.maxConns, err = proxyMaxConns(); err != nil {
		s.logf("%v; using the default of %d", err, scale.DefaultMaxConns())
	}
	kernel, err := portMode()
	if err != nil {
		s.logf("%v; serving published ports in the kernel", err)
	}
	if kernel {
		if err := netmgr.KernelNATAvailable(); err != nil {
			s.logf("published ports go through the userspace proxy: the kernel path is not available: %v", err)
		} else {
			s.kports = newKernelPorts(paths.ProjectRunDir(proj), s.logf)
		}
	}
	defer s.dns.Close()
	defer s.closeAllPublishers()
	if err := s.adoptAll(); err != nil {
		return err
	}
	go s.refreshLoop()
	go s.trimLoop()

	sock := paths.Socket(proj)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	srv := &http.Server{Handler: s.handler()}
	go func() { _ = srv.Serve(ln) }()
	// Set before the CLI can read the ready byte and send its request.
	s.mu.Lock()
	s.awaiting = true
	s.mu.Unlock()
	if !signalReady() {
		s.mu.Lock()
		s.awaiting = false
		s.mu.Unlock()
	}
	s.logf("supervising project %s (pid %d)", proj, os.Getpid())

	s.checkIdle()
	err = s.waitIdle(ctx)
	// Stop accepting before the socket goes, so a client either reaches
	// this supervisor or finds none and starts the next one.
	_ = ln.Close()
	cancel() // ends event streams; no operation is in flight
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(shutdown)
	done()
	_ = os.Remove(sock)
	s.cleanup()
	return err
}

// waitIdle returns when the project has had no containers and no request
// for a moment, or when ctx ends.
func (s *Supervisor) waitIdle(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.idle:
	}
	for {
		// A short grace lets a command that follows at once (down, then up)
		// reuse this supervisor instead of racing its exit. While the CLI
		// that spawned it has yet to send its request, the grace is that
		// CLI's own wait for a spawned supervisor: on a slow machine (an
		// emulated VM) the spawner's `up` came after 300 ms, reached a
		// supervisor on its way out, and failed with "context canceled".
		s.mu.Lock()
		grace := 300 * time.Millisecond
		if s.awaiting {
			grace = spawnWait
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.idle:
			continue // a request ended meanwhile: the grace starts again
		case <-time.After(grace):
		}
		s.mu.Lock()
		empty := len(s.containers) == 0 && s.busy == 0
		s.exiting = empty
		s.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.idle:
		}
	}
}

// checkIdle wakes waitIdle when the project may be empty.
func (s *Supervisor) checkIdle() {
	s.mu.Lock()
	empty := len(s.containers) == 0 && s.busy == 0
	s.mu.Unlock()
	if empty {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// cleanup removes what the supervisor itself made once its project is empty.
func (s *Supervisor) cleanup() {
	s.mu.Lock()
	empty := len(s.containers) == 0
	s.mu.Unlock()
	if !empty {
		return
	}
	removeCgroupParent(s.paths.CgroupParent())
	_ = os.Remove(s.paths.Log(s.project))
	_ = os.Remove(s.paths.Log(s.project) + ".1")
	_ = os.Remove(s.paths.Journal(s.project))
	_ = os.Remove(s.paths.Journal(s.project) + ".1")
	_ = os.Remove(s.paths.Lock(s.project))
	_ = os.Remove(s.paths.ProjectRunDir(s.project))
}

// adoptAll loads the project's records and takes over their containers.
func (s *Supervisor) adoptAll() error {
	recs, err := LoadRecords(s.paths, s.project)
	if err != nil {
		return err
	}
	recs = s.finishIntents(recs)
	s.sweepOrphans()
	for _, r := range recs {
		c := newContainer(s, r)
		s.containers[r.ID] = c
		s.serveDNS(s.ctx, r)
		c.adopt()
	}
	s.republish(s.ctx)
	s.notify()
	return nil
}

// refreshLoop keeps the proxies pointed at the replicas that can serve,
// after every state change.
func (s *Supervisor) refreshLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
			s.refreshBackends()
		}
	}
}

// afterExit is called when a container's run ends.
func (s *Supervisor) afterExit(*container) { s.notify() }

// notify wakes everyone waiting for a state change, and the proxies.
func (s *Supervisor) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// changes returns a channel closed at the next state change.
func (s *Supervisor) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Supervisor) logf(format string, args ...any) { s.log.Printf(format, args...) }

// list returns the project's containers sorted by service and number.
func (s *Supervisor) list() []*container {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, c)
	}
	sortContainers(out)
	return out
}

// lookup finds the container that `service:NAME` (the service's first
// replica) or `container:NAME` names, as network_mode and volumes_from use
// them; nil when there is none.
func (s *Supervisor) lookup(kind, name string) *container {
	var found *container
	for _, c := range s.list() {
		if kind == "service" && c.rec.Service == name && !isOneOff(c.rec.Labels) || kind == "container" && c.rec.Name == name {
			if found == nil || c.rec.Number < found.rec.Number {
				found = c
			}
		}
	}
	return found
}

func (s *Supervisor) add(c *container) {
	s.mu.Lock()
	s.containers[c.rec.ID] = c
	s.mu.Unlock()
	s.notify()
}

func (s *Supervisor) forget(c *container) {
	s.mu.Lock()
	delete(s.containers, c.rec.ID)
	s.mu.Unlock()
	s.notify()
}

// lockFile takes an exclusive flock on path without waiting: a supervisor
// that finds it held exits at once (ErrAlreadyRunning), and the CLI that
// spawned it reaches the holder, or spawns again once the holder is gone.
// Any other error is reported as it is. A supervisor that exits removes its
// lock file while it holds it; flock.TryLockFile never settles on that
// unlinked file.
func lockFile(path string) (*flock.Lock, error) {
	l, err := flock.TryLockFile(path)
	if errors.Is(err, flock.ErrLocked) {
		return nil, ErrAlreadyRunning
	}
	return l, err
}

// lockHeld says whether some process holds the flock on path.
func lockHeld(path string) bool { return flock.Held(path) }

// ErrAlreadyRunning says another supervisor holds the project.
var ErrAlreadyRunning = errdefs.Derive(errdefs.ErrConflict, "another supervisor is running for this project")

// removeCgroupParent removes the (empty) parent cgroup of this berth's
// containers in every hierarchy; it stays while other projects use it.
func removeCgroupParent(parent string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	if d := "/sys/fs/cgroup" + parent; isDir(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
