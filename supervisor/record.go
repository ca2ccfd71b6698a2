package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/internal/atomicfile"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/volmgr"
)

// Record is everything berth knows of one container, on disk, so that any
// process can find what belongs to a project and a new supervisor can adopt
// what an old one started.
type Record struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Project string            `json:"project"`
	Service string            `json:"service"`
	Number  int               `json:"number"`
	Image   string            `json:"image"`    // as written in the compose file
	ImageID string            `json:"image_id"` // sha256:... of its config
	Hash    string            `json:"config_hash"`
	Labels  map[string]string `json:"labels"`
	Created time.Time         `json:"created"`
	Command []string          `json:"command"` // entrypoint + cmd, as run
	// StopSignal is the service's stop_signal, else the image's, else SIGTERM.
	StopSignal string `json:"stop_signal"`
	// Health is the health check in force: the service's, else the image's.
	Health *model.Healthcheck `json:"health,omitempty"`

	// Config is the service the container was made from: restart policy,
	// stop grace period and dependencies are read from it.
	Config model.Service `json:"config"`
	Spec   runtime.Spec  `json:"spec"`
	// Mounts are the container's volumes and binds as prepared, so that
	// volumes_from and a recreated container's anonymous volumes find them.
	Mounts []volmgr.Mount `json:"mounts,omitempty"`
	// Endpoints are the container's addresses, first network first.
	Endpoints []EndpointInfo `json:"endpoints,omitempty"`
	// Ports are its published ports, with the host ports actually bound.
	Ports []PortBinding `json:"ports,omitempty"`
	// InheritsVolumes is set when the container took over its
	// predecessor's anonymous volumes: undoing its create keeps them.
	InheritsVolumes bool `json:"inherits_volumes,omitempty"`
	// AutoRemove (run --rm) removes the container when its process exits.
	AutoRemove bool `json:"auto_remove,omitempty"`

	State State `json:"state"`
}

// State is a container's lifecycle, as `ps` shows it.
type State struct {
	Status     string    `json:"status"` // creating, created, running, paused, restarting, exited, removing, dead
	Pid        int       `json:"pid,omitempty"`
	StartedAt  time.Time `json:"started_at,omitempty"`
	FinishedAt time.Time `json:"finished_at,omitempty"`
	ExitCode   int       `json:"exit_code"`
	// ExitUnknown is set when the container ended while no supervisor was
	// its parent: the code could not be read and is not invented.
	ExitUnknown  bool   `json:"exit_unknown,omitempty"`
	OOMKilled    bool   `json:"oom_killed,omitempty"`
	RestartCount int    `json:"restart_count,omitempty"`
	Health       string `json:"health,omitempty"` // starting, healthy, unhealthy
	// StoppedByUser keeps restart policies from restarting a container that
	// `stop` or `kill` ended.
	StoppedByUser bool   `json:"stopped_by_user,omitempty"`
	Error         string `json:"error,omitempty"`
	// RemoveVolumes is set with the removing status when the removal takes
	// the container's anonymous volumes too (rm -v, down -v).
	RemoveVolumes bool `json:"remove_volumes,omitempty"`
}

// Status values.
//
// creating and removing are intents: the record is written with them before
// the kernel objects are made or removed, so that whatever a supervisor
// killed half way leaves can be found by the container's ID and undone
// (creating) or finished (removing) by the next one.
const (
	StatusCreating   = "creating"
	StatusRemoving   = "removing"
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

func recordPath(p Paths, id string) string {
	return filepath.Join(p.ContainerDir(id), "record.json")
}

// saveRecord writes r atomically.
func saveRecord(p Paths, r *Record) error {
	dir := p.ContainerDir(r.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(recordPath(p, r.ID), b, 0o600)
}

// createRecord writes the first record of a new container. The container's
// directory appears whole, with its record, or not at all: it is made under
// a temporary name (which names the project, whose supervisor alone may
// remove it) and renamed.
func createRecord(p Paths, r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(p.ContainersDir(), creatingPrefix+r.Project+"."+r.ID)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "record.json"), b, 0o600); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, p.ContainerDir(r.ID)); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// removeRecord removes a container's directory: its record and its logs.
// The directory is renamed first, so that a removal cut short never leaves
// a container directory without its record.
func removeRecord(p Paths, project, id string) error {
	gone := filepath.Join(p.ContainersDir(), removingPrefix+project+"."+id)
	if err := os.Rename(p.ContainerDir(id), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(gone)
}

// Prefixes of container directories being made or removed.
const (
	creatingPrefix = ".creating-"
	removingPrefix = ".removing-"
)

// removeTempRecords removes what createRecord and removeRecord left of
// project's containers when they were cut short. Only the project's own
// supervisor calls it: no other process writes them.
func removeTempRecords(p Paths, project string) {
	for _, prefix := range []string{creatingPrefix, removingPrefix} {
		dirs, _ := filepath.Glob(filepath.Join(p.ContainersDir(), prefix+project+".*"))
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}
}

// LoadRecords returns the records of project's containers ("" for every
// project), sorted by service and number.
func LoadRecords(p Paths, proj string) ([]*Record, error) {
	entries, err := os.ReadDir(p.ContainersDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // being made or removed (createRecord, removeRecord)
		}
		b, err := os.ReadFile(recordPath(p, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // being created or removed
		}
		if err != nil {
			return nil, err
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("container record %s: %w", e.Name(), err)
		}
		if proj == "" || r.Project == proj {
			out = append(out, &r)
		}
	}
	sortRecords(out)
	return out, nil
}

func sortRecords(rs []*Record) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Project != rs[j].Project {
			return rs[i].Project < rs[j].Project
		}
		if rs[i].Service != rs[j].Service {
			return rs[i].Service < rs[j].Service
		}
		return rs[i].Number < rs[j].Number
	})
}

// LoadRecord reads one container's record.
func LoadRecord(p Paths, id string) (*Record, error) {
	b, err := os.ReadFile(recordPath(p, id))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("container record %s: %w", id, err)
	}
	return &r, nil
}
