// Package bridge converts a compose project into Kubernetes objects built
// from the official API types, and writes them as a Kustomize layout. The
// conversion returns typed objects rather than text so that a later apply
// can hand the same values to the API server.
package bridge

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Object is what every converted value is: typed, with metadata, the shape
// controller-runtime's client.Object has, without depending on it.
type Object interface {
	runtime.Object
	metav1.Object
}

// Labels put on every object; apply prunes by the project label.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelProject   = "com.docker.compose.project"
	LabelService   = "com.docker.compose.service"
	// labelNetworkPrefix marks a pod as attached to a compose network; the
	// network's NetworkPolicy selects on it.
	labelNetworkPrefix = "network.berth.run/"
	// AnnotationWaitForJob names the Jobs a workload waits for
	// (service_completed_successfully): a pod cannot see a Job without API
	// credentials, so apply waits for them before applying the dependent.
	AnnotationWaitForJob = "berth.run/wait-for-jobs"
	annotationProfiles   = "berth.run/profiles"
)

// Options tune the conversion.
type Options struct {
	// InitImage runs the init containers that wait for dependencies; it
	// needs sh, nc and nslookup. Default busybox.
	InitImage string
	// AllowHostPath keeps binds outside the project directory as hostPath
	// volumes instead of skipping them.
	AllowHostPath bool
	// VolumeSize is a claim's size when the volume's x-berth extension gives
	// none. Default 1Gi.
	VolumeSize string
	// ImageName names a service's image: its `image:`, else the name a
	// build gives it. Default `<project>-<service>`, compose v2's rule;
	// the CLI passes its own so that --compatibility's names reach the
	// cluster too.
	ImageName func(types.ServiceConfig) string
}

// Result is the converted project.
type Result struct {
	Namespace string
	// Objects, sorted by kind then name.
	Objects []Object
	// Warnings, one line per service (and per project-level object) that
	// lost something in the conversion.
	Warnings []string
}

// Convert maps the project onto Kubernetes objects. It fails only on what
// cannot be represented at all (a bind file too large for a ConfigMap is a
// warning, not an error); every compose key without an equivalent is named
// in the service's warning line.
func Convert(p *types.Project, opts Options) (*Result, error) {
	if opts.InitImage == "" {
		opts.InitImage = "busybox"
	}
	if opts.VolumeSize == "" {
		opts.VolumeSize = "1Gi"
	}
	c := &converter{p: p, opts: opts, notes: map[string][]string{}, serviceNames: map[string]string{}}
	// Service names come first: an alias never takes a service's name.
	for _, name := range p.ServiceNames() {
		c.serviceNames[dnsLabel(name)] = dnsLabel(name)
	}
	c.ns = c.name("project", p.Name)
	c.add(c.namespace())
	if err := c.volumes(); err != nil {
		return nil, err
	}
	if err := c.files(); err != nil {
		return nil, err
	}
	c.networkPolicies()
	names := p.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		if err := c.service(p.Services[name]); err != nil {
			return nil, fmt.Errorf("service %q: %w", name, err)
		}
	}
	sortObjects(c.objs)
	return &Result{Namespace: c.ns, Objects: c.objs, Warnings: c.warnings()}, nil
}

type converter struct {
	p     *types.Project
	opts  Options
	ns    string
	objs  []Object
	notes map[string][]string // subject ("service web") -> notes
	// serviceNames maps each Kubernetes Service name to the compose
	// service that owns it.
	serviceNames map[string]string
	order        []string
}

func (c *converter) add(o Object) { c.objs = append(c.objs, o) }

// note records one thing lost or approximated for subject.
func (c *converter) note(subject, format string, args ...any) {
	if _, ok := c.notes[subject]; !ok {
		c.order = append(c.order, subject)
	}
	c.notes[subject] = append(c.notes[subject], fmt.Sprintf(format, args...))
}

func (c *converter) warnings() []string {
	subjects := append([]string(nil), c.order...)
	sort.Strings(subjects)
	var out []string
	for _, s := range subjects {
		out = append(out, s+": "+strings.Join(c.notes[s], "; "))
	}
	return out
}

func (c *converter) meta(name, service string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: c.ns, Labels: map[string]string{
		LabelManagedBy: "berth",
		LabelProject:   c.ns,
	}}
	if service != "" {
		m.Labels[LabelService] = service
	}
	return m
}

var invalidName = regexp.MustCompile(`[^a-z0-9-]+`)

// name turns a compose name into a DNS-1123 label (what Services,
// Namespaces and most objects need) and reports the change.
func (c *converter) name(what, s string) string {
	n := dnsLabel(s)
	if n != s {
		c.note("names", "%s %q is %q", what, s, n)
	}
	return n
}

// dnsLabel lowercases s, turns every run of other characters into '-',
// trims dashes and cuts to 63 characters.
func dnsLabel(s string) string {
	n := invalidName.ReplaceAllString(strings.ToLower(s), "-")
	if len(n) > 63 {
		n = n[:63]
	}
	n = strings.Trim(n, "-")
	if n == "" {
		n = "x"
	}
	return n
}

// kindOrder puts objects in an order that applies without forward
// references: the namespace first, workloads last.
var kindOrder = map[string]int{
	"Namespace": 0, "ConfigMap": 1, "Secret": 2, "PersistentVolumeClaim": 3,
	"NetworkPolicy": 4, "Service": 5, "Job": 6, "Deployment": 7,
}

func sortObjects(objs []Object) {
	sort.SliceStable(objs, func(i, j int) bool {
		ki, kj := kindOf(objs[i]), kindOf(objs[j])
		if ki != kj {
			return kindOrder[ki] < kindOrder[kj]
		}
		return objs[i].GetName() < objs[j].GetName()
	})
}

func kindOf(o Object) string { return o.GetObjectKind().GroupVersionKind().Kind }

// handledKeys are the service keys the conversion maps (fully or with a
// note of its own); every other key present is named as dropped.
var handledKeys = map[string]bool{
	"name": true, "image": true, "build": true, "command": true, "entrypoint": true,
	"environment": true, "env_file": true, "working_dir": true, "user": true,
	"cap_add": true, "cap_drop": true, "privileged": true, "read_only": true,
	"sysctls": true, "tmpfs": true, "deploy": true, "mem_limit": true, "cpus": true,
	"mem_reservation": true, "scale": true, "stop_grace_period": true, "hostname": true,
	"labels": true, "profiles": true, "ports": true, "expose": true, "networks": true,
	"volumes": true, "configs": true, "secrets": true, "healthcheck": true,
	"depends_on": true, "restart": true, "stdin_open": true, "tty": true,
	"container_name": true, "pull_policy": true, "provider": true,
	"annotations": true, "extra_hosts": true, "dns": true, "dns_search": true, "dns_opt": true,
	"shm_size": true, "post_start": true, "pre_stop": true, "group_add": true,
}

// droppedDeployKeys lists the deploy keys other than replicas and
// resources' cpus and memory.
func droppedDeployKeys(d types.DeployConfig) []string {
	out := setKeys(d, map[string]bool{"replicas": true, "resources": true})
	for _, r := range []struct {
		name string
		res  *types.Resource
	}{{"limits", d.Resources.Limits}, {"reservations", d.Resources.Reservations}} {
		if r.res == nil {
			continue
		}
		for _, k := range setKeys(*r.res, map[string]bool{"cpus": true, "memory": true}) {
			out = append(out, "resources."+r.name+"."+k)
		}
	}
	sort.Strings(out)
	return out
}

// setKeys lists the JSON keys set in v that known does not hold.
func setKeys(v any, known map[string]bool) []string {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []string
	for k, v := range m {
		switch string(v) {
		case "null", "false", "0", `""`, "[]", "{}":
			continue // an unset field marshalled without omitempty
		}
		if !known[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// droppedKeys lists the keys of s (as compose spells them) that have no
// Kubernetes equivalent in this conversion.
func droppedKeys(s types.ServiceConfig) []string {
	out := setKeys(s, handledKeys)
	for k := range s.Extensions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
