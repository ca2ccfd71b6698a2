package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/internal/fault"
	"github.com/berthrun/berth/project/model"
)

// create makes replica n of svc: its rootfs, volumes, network, ports, spec
// and record. The record is written first, as an intent ("creating"): a
// supervisor killed at any later step leaves objects that the next one
// finds by the container's ID and removes (see finishIntents).
func (s *Supervisor) create(ctx context.Context, m *model.Model, svc *model.Service, img *image.Image, n int, inherit map[string]string) (_ *container, err error) {
	id := newID()
	name := model.ContainerName(s.project, svc, n)
	rec := &Record{
		ID:              id,
		Name:            name,
		Project:         s.project,
		Service:         svc.Name,
		Number:          n,
		Image:           svc.Image,
		ImageID:         img.ID,
		Hash:            svc.Hash,
		Created:         time.Now().UTC(),
		Config:          *svc,
		InheritsVolumes: len(inherit) > 0,
	}
	rec.Labels = containerLabels(s.project, svc, n, img)
	rec.Labels[model.LabelWorkingDir] = m.WorkingDir
	rec.Labels[model.LabelConfigFiles] = strings.Join(m.ConfigFiles, ",")
	rec.State.Status = StatusCreating
	if err := createRecord(s.paths, rec); err != nil {
		return nil, err
	}
	fault.Point("create.intent")
	defer func() {
		if err != nil {
			if perr := s.purge(rec, len(inherit) == 0, ""); perr != nil {
				s.logf("container %s: undoing its create: %v", name, perr)
			}
		}
	}()
	rootfs, err := s.images.Mount(ctx, id, svc.Image, rootTargets(svc)...)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	fault.Point("create.after-rootfs")
	mounts, err := s.prepareMounts(m, svc, img, id, rootfs, inherit)
	if err != nil {
		return nil, err
	}
	fault.Point("create.after-volumes")
	ns, err := s.setupNetwork(ctx, svc, id, name, hostnameOf(svc, id))
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	fault.Point("create.after-network")
	dir := s.paths.ContainerDir(id)
	rec.Endpoints = ns.endpoints
	if err := s.publishContainer(ctx, svc, rec); err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	fault.Point("create.after-ports")
	spec, warnings, err := containerSpec(rec, svc, img, rootfs, dir, ns)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	for _, w := range warnings {
		s.logf("container %s: %s", rec.Name, w)
	}
	engineMounts(&spec, mounts)
	rec.Spec = spec
	rec.Mounts = mounts
	rec.Command = spec.Args
	rec.StopSignal = firstNonEmpty(svc.StopSignal, img.Config.StopSignal, "SIGTERM")
	rec.Health = svc.Healthcheck
	if rec.Health == nil && img.Config.Healthcheck != nil {
		h := img.Config.Healthcheck
		rec.Health = &model.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	rec.State.Status = StatusCreated
	if err := saveRecord(s.paths, rec); err != nil {
		return nil, err
	}
	fault.Point("create.after-record")
	if len(inherit) > 0 {
		if err := s.volumes.Settle(inherit); err != nil {
			s.logf("container %s: volumes: %v", name, err)
		}
	}
	c := newContainer(s, rec)
	s.add(c)
	if ns.owned {
		// The container exists now: its DNS is set up even if this up
		// is being cancelled.
		s.serveDNS(s.ctx, rec)
	}
	s.emit(ev(c, "create"))
	return c, nil
}

// containerLabels are the image's labels, the service's, and compose's own.
func containerLabels(proj string, svc *model.Service, n int, img *image.Image) map[string]string {
	l := map[string]string{}
	for k, v := range img.Config.Labels {
		l[k] = v
	}
	for k, v := range svc.Labels {
		l[k] = v
	}
	l[model.LabelProject] = proj
	l[model.LabelService] = svc.Name
	l[model.LabelNumber] = strconv.Itoa(n)
	l[model.LabelConfigHash] = svc.Hash
	if !isOneOff(svc.Labels) {
		l[model.LabelOneoff] = "False"
	}
	l[model.LabelImage] = img.ID
	var deps []string
	for _, d := range sortedKeys(svc.DependsOn) {
		deps = append(deps, fmt.Sprintf("%s:%s:%t", d, svc.DependsOn[d].Condition, svc.DependsOn[d].Restart))
	}
	l[model.LabelDependsOn] = strings.Join(deps, ",")
	return l
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
