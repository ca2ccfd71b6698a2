package supervisor

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/internal/fault"
	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/volmgr"
)

// purge removes every object of container r that exists, each found by the
// container's ID alone, in the reverse order of create, and the record
// last: it undoes a create that stopped at any step, finishes a removal, and
// cleans what has no owner. Every step is idempotent. op, when not empty,
// names the operation for the fault hook's steps.
func (s *Supervisor) purge(r *Record, removeAnon bool, op string) error {
	step := func(name string) {
		if op != "" {
			fault.Point(op + "." + name)
		}
	}
	p := s.paths
	id := r.ID
	var errs []error
	errs = append(errs, s.engine.Purge(p.RuntimeRoot(), p.CgroupParent(), id))
	step("after-runtime")
	_, verr := s.volumes.ReleaseAll(id, removeAnon)
	errs = append(errs, verr)
	step("after-volumes")
	s.unpublishContainer(id)
	s.dns.Remove(id)
	// Endpoints are recorded before their veth is made, so every veth is
	// found through them; a namespace of another container (network_mode
	// service:) is not this one's path and stays.
	errs = append(errs,
		s.net.DetachAll(context.Background(), id),
		netmgr.RemoveNetNS(p.NetNS(id)),
	)
	step("after-network")
	errs = append(errs, s.images.RemoveRootfs(id))
	step("after-rootfs")
	errs = append(errs, os.RemoveAll(p.FIFODir(id)))
	step("after-fifos")
	errs = append(errs, removeRecord(p, s.project, id))
	return errors.Join(errs...)
}

// finishIntents undoes the creates and finishes the removals that a
// previous supervisor of the project left half done, and returns the
// records that remain to be adopted.
func (s *Supervisor) finishIntents(recs []*Record) []*Record {
	var keep []*Record
	for _, r := range recs {
		switch r.State.Status {
		case StatusCreating:
			s.logf("container %s: undoing a create that did not finish", r.Name)
			if err := s.purge(r, !r.InheritsVolumes, ""); err != nil {
				s.logf("container %s: undoing its create: %v", r.Name, err)
			}
		case StatusRemoving, StatusDead:
			s.logf("container %s: finishing its removal", r.Name)
			if err := s.purge(r, r.State.RemoveVolumes, ""); err != nil {
				s.logf("container %s: removing: %v", r.Name, err)
			}
		default:
			keep = append(keep, r)
		}
	}
	return keep
}

// sweepOrphans removes what belongs to no container record of any project:
// libcontainer state, cgroups, FIFOs, network namespaces, endpoints,
// rootfs directories and volume users left by a supervisor killed before
// intent records existed, or by a record removed by hand.
//
// Objects are listed first and records after: a record is written before
// its container's first object is made and removed after its last one is
// gone, so an object whose record is missing afterwards has no owner,
// whichever supervisor made it.
func (s *Supervisor) sweepOrphans() {
	p := s.paths
	found := map[string]bool{}
	for _, dir := range []string{p.RuntimeRoot(), filepath.Join(p.RunRoot, "fifo"), filepath.Join(p.RunRoot, "netns"), filepath.Join(p.ImageRoot(), "containers")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			found[e.Name()] = true
		}
	}
	for _, id := range runtime.CgroupChildren(p.CgroupParent()) {
		found[id] = true
	}
	if nets, err := s.net.Networks(); err == nil {
		for _, n := range nets {
			for _, ep := range n.Endpoints {
				found[ep.ContainerID] = true
			}
		}
	}
	if vols, err := s.volumes.List(volmgr.Filters{}); err == nil {
		for _, v := range vols {
			for _, u := range v.Users {
				found[u] = true
			}
		}
	}
	removeTempRecords(p, s.project)
	recs, err := LoadRecords(p, "")
	if err != nil {
		s.logf("looking for leftovers: %v", err)
		return
	}
	for _, r := range recs {
		delete(found, r.ID)
	}
	for id := range found {
		if !isContainerID(id) {
			continue
		}
		s.logf("container %s: removing what it left (it has no record)", id[:12])
		if err := s.purge(&Record{ID: id}, false, ""); err != nil {
			s.logf("container %s: removing what it left: %v", id[:12], err)
		}
	}
}

// isContainerID says whether name is an ID as newID makes them.
func isContainerID(name string) bool {
	if len(name) != 64 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// fail logs a failed operation on a container and reports it to `berth
// events` subscribers.
func (s *Supervisor) fail(c *container, op string, err error) {
	s.logf("container %s: %s: %v", c.rec.Name, op, err)
	s.emit(Event{Action: "error", Container: c.rec.Name, Service: c.rec.Service, ID: c.rec.ID, Message: op + ": " + err.Error()})
}

// failed is fail for a container that does not exist (yet).
func (s *Supervisor) failed(name, service, op string, err error) {
	s.logf("container %s: %s: %v", name, op, err)
	s.emit(Event{Action: "error", Container: name, Service: service, Message: op + ": " + err.Error()})
}
