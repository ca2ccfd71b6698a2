package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor/stream"
)

// RunRequest makes a one-off container of a service and runs it, as
// `berth run`. The service's entry in Model carries run's overrides
// (command, entrypoint, environment, volumes, ports, user, ...); the
// dependencies were started before by an UpRequest.
type RunRequest struct {
	Model   model.Model `json:"model"`
	Service string      `json:"service"`
	// Name is --name; "" gives <project>-<service>-run-<12 hex> (with the
	// service's name separator: _ under --compatibility).
	Name string `json:"name,omitempty"`
	// Detach starts the container and answers its name at once; else the
	// connection is taken over and relays its stdio until it exits.
	Detach bool `json:"detach,omitempty"`
	Rm     bool `json:"rm,omitempty"` // remove the container once it exits
	Tty    bool `json:"tty,omitempty"`
	// Stdin keeps the process's stdin open and relays the CLI's input.
	Stdin bool `json:"stdin,omitempty"`
	// NoDeps does not wait for the service's depends_on conditions.
	NoDeps bool `json:"no_deps,omitempty"`
	// RemoveOrphans removes containers of services the model lacks.
	RemoveOrphans bool `json:"remove_orphans,omitempty"`
	// UseAliases gives the container the service's name and network
	// aliases in DNS, as its replicas have; without it, only its own name.
	UseAliases bool `json:"use_aliases,omitempty"`
	// Rows and Cols are the terminal's size at the start (Tty).
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// RunResult answers a detached run.
type RunResult struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// isOneOff tells a one-off container (run) from a service's replicas: it
// is never counted, scaled, converged or proxied to as one of them.
func isOneOff(labels map[string]string) bool {
	return labels[model.LabelOneoff] == "True"
}

// oneOffService is svc as a one-off runs it: its own name, compose's
// one-off labels, no restart policy and no replicas, and, without
// UseAliases, no alias in DNS.
func oneOffService(proj string, svc model.Service, req RunRequest) (model.Service, error) {
	slug := make([]byte, 32)
	if _, err := rand.Read(slug); err != nil {
		return svc, err
	}
	hexSlug := hex.EncodeToString(slug)
	svc.ContainerName = req.Name
	if svc.ContainerName == "" {
		sep := svc.NameSeparator
		if sep == "" {
			sep = "-"
		}
		svc.ContainerName = proj + sep + svc.Name + sep + "run" + sep + hexSlug[:12]
	}
	svc.Labels = maps.Clone(svc.Labels)
	if svc.Labels == nil {
		svc.Labels = map[string]string{}
	}
	svc.Labels[model.LabelOneoff] = "True"
	svc.Labels[labelSlug] = hexSlug
	svc.Restart = ""
	svc.Replicas = 1
	svc.Tty = req.Tty
	svc.StdinOpen = req.Stdin && req.Tty
	nets := make([]model.NetworkAttachment, len(svc.Networks))
	for i, a := range svc.Networks {
		if req.UseAliases {
			a.Aliases = append(slices.Clone(a.Aliases), svc.Name)
		} else {
			a.Aliases = nil
		}
		nets[i] = a
	}
	svc.Networks = nets
	return svc, nil
}

// labelSlug is compose's label with a one-off's random ID.
const labelSlug = "com.docker.compose.slug"

// dnsNames are the names a container answers to on its networks besides
// its aliases: a one-off only to its own (its aliases carry the service's
// name with run --use-aliases).
func dnsNames(svc *model.Service, name, hostname, id string) []string {
	if isOneOff(svc.Labels) {
		return []string{name, hostname, id[:12]}
	}
	return []string{name, svc.Name, hostname, id[:12]}
}

// serveRun runs a RunRequest.
func (s *Supervisor) serveRun(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(r.Context(), cancel) // the CLI went away while it waited
	c, err := s.createOneOff(ctx, req)
	stop()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if req.Rm {
		c.mu.Lock()
		c.removed = make(chan struct{})
		c.mu.Unlock()
	}
	if req.Detach {
		if err := startAsked(c, func(Event) {}); err != nil {
			if req.Rm {
				s.autoRemove(c)
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(RunResult{Name: c.rec.Name, ID: c.rec.ID})
		return
	}

	if req.Stdin && !req.Tty {
		rd, wr, err := runStdinPipe()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		c.mu.Lock()
		c.runStdin, c.runStdinR = wr, rd
		c.mu.Unlock()
	}
	conn, br, err := hijack(w)
	if err != nil {
		s.logf("run %s: %v", c.rec.Name, err)
		return
	}
	defer conn.Close()
	// Subscribed before the start: the client sees the output from its
	// first byte.
	sub := c.attached().subscribe()
	if err := startAsked(c, func(Event) {}); err != nil {
		c.attached().unsubscribe(sub)
		st := stream.ExitStatus{Code: -1, Error: err.Error()}
		c.mu.Lock()
		if c.rec.State.ExitCode > 0 {
			st.Code = c.rec.State.ExitCode
		}
		c.mu.Unlock()
		if req.Rm {
			s.autoRemove(c)
		}
		_ = stream.NewWriter(conn).Exit(st)
		return
	}
	c.mu.Lock()
	exited, removed := c.exited, c.removed
	c.mu.Unlock()
	c.setConsoleSize(req.Rows, req.Cols)
	se := &session{c: c, conn: conn, br: br, sub: sub, stdin: req.Stdin}
	if removed != nil {
		// run --rm returns once the container is gone.
		se.final = func() {
			select {
			case <-removed:
			case <-time.After(time.Minute):
			}
		}
	}
	se.run(exited)
	// The input ends with the attachment, as docker's run -i (stdin once).
	c.mu.Lock()
	if c.runStdin != nil {
		c.runStdin.Close()
		c.runStdin = nil
	}
	c.mu.Unlock()
}

// createOneOff waits for the service's dependencies, then makes its
// one-off container.
func (s *Supervisor) createOneOff(ctx context.Context, req RunRequest) (*container, error) {
	m := req.Model
	if m.Name != s.project {
		return nil, fmt.Errorf("this supervisor runs project %q, not %q", s.project, m.Name)
	}
	base, ok := m.Service(req.Service)
	if !ok {
		return nil, fmt.Errorf("no such service: %s", req.Service)
	}
	svc, err := oneOffService(s.project, *base, req)
	if err != nil {
		return nil, err
	}
	if !req.NoDeps {
		for _, dep := range sortedKeys(svc.DependsOn) {
			d := svc.DependsOn[dep]
			if len(s.serviceContainers(dep)) == 0 {
				if d.Required {
					return nil, fmt.Errorf("dependency %q of %q has no container", dep, svc.Name)
				}
				continue
			}
			if err := s.waitCondition(ctx, dep, d.Condition); err != nil && d.Required {
				return nil, err
			}
		}
	}
	// One operation at a time, as up and down (see opLock).
	select {
	case s.opLock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.opLock }()
	if req.RemoveOrphans {
		if err := s.removeAll(ctx, s.orphans(&m), nil, false, func(Event) {}); err != nil {
			return nil, err
		}
	}
	for _, c := range s.list() {
		if c.rec.Name == svc.ContainerName {
			return nil, fmt.Errorf("container name %q is already in use", svc.ContainerName)
		}
	}
	// The model's services keep theirs; the one-off's copy replaces its
	// service in this request's model only.
	m.Services = slices.Clone(m.Services)
	for i := range m.Services {
		if m.Services[i].Name == svc.Name {
			m.Services[i] = svc
		}
	}
	names := []string{svc.Name}
	img, err := s.ensureImage(ctx, &svc, func(Event) {})
	if err != nil {
		return nil, err
	}
	if err := s.checkVolumes(&m, names); err != nil {
		return nil, err
	}
	if err := s.checkNetworks(&m, names); err != nil {
		return nil, err
	}
	if err := s.ensureVolumes(&m, names, func(Event) {}); err != nil {
		return nil, err
	}
	if err := s.ensureNetworks(ctx, &m, names, func(Event) {}); err != nil {
		return nil, err
	}
	// Its ports are its own listeners, never the service's: create binds
	// none, publishOneOff binds them all.
	ports := svc.Ports
	svc.Ports = nil
	c, err := s.create(ctx, &m, &svc, img, 1, nil)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.rec.Config.Ports = ports
	c.rec.AutoRemove = req.Rm
	err = s.publishOneOff(ctx, c.rec)
	if err == nil {
		err = c.save()
	}
	c.mu.Unlock()
	if err != nil {
		_ = s.stopAndRemove(context.Background(), c, nil, true, nil)
		return nil, err
	}
	return c, nil
}

// publishOneOff binds a one-off's published ports (run -p, -P), each on a
// listener of its own in front of it alone. r is the container's record.
func (s *Supervisor) publishOneOff(ctx context.Context, r *Record) error {
	bindings, err := expandPorts(&r.Config)
	if err != nil {
		return err
	}
	for _, b := range bindings {
		key := pubKey(r.Service, r.ID, b)
		if err := s.openPublisher(ctx, key, r.Service, r.ID, b, r.Config.StopGracePeriod); err != nil {
			s.unpublishContainer(r.ID)
			return err
		}
		s.ports.mu.Lock()
		r.Ports = append(r.Ports, s.ports.pubs[key].binding)
		s.ports.mu.Unlock()
	}
	return nil
}

// autoRemove removes a one-off started with --rm once it has exited.
func (s *Supervisor) autoRemove(c *container) {
	if err := s.stopAndRemove(s.ctx, c, nil, true, nil); err != nil {
		s.logf("container %s: auto-remove: %v", c.rec.Name, err)
	}
	c.mu.Lock()
	removed := c.removed
	c.removed = nil
	c.mu.Unlock()
	if removed != nil {
		close(removed)
	}
	s.unpublishGone()
}

// Run makes and runs a one-off container. Detached, it returns at once
// with the container's name; else it relays sio until the process exits
// and returns its exit code, or an *ExecError when it could not start.
func (c *Client) Run(ctx context.Context, req RunRequest, sio ExecIO) (int, *RunResult, error) {
	if req.Detach {
		b, err := json.Marshal(req)
		if err != nil {
			return -1, nil, err
		}
		resp, err := c.do(ctx, "POST", "/run", b)
		if err != nil {
			return -1, nil, c.connErr(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return -1, nil, errors.New(strings.TrimSpace(string(msg)))
		}
		var res RunResult
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return -1, nil, err
		}
		return 0, &res, nil
	}
	code, err := c.relay(ctx, "/run", req, sio)
	return code, nil, err
}

// Attach relays sio to a running container's main process until it exits
// (its exit code), the client detaches (ErrDetached) or ctx ends.
func (c *Client) Attach(ctx context.Context, req AttachRequest, sio ExecIO) (int, error) {
	code, err := c.relay(ctx, "/attach", req, sio)
	var ee *ExecError
	if errors.As(err, &ee) && ee.Msg == "detached" {
		return 0, ErrDetached
	}
	return code, err
}

// ErrDetached says the client typed the detach keys.
var ErrDetached = errors.New("detached")
