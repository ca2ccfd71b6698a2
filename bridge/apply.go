package bridge

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// DryRun sends every request with dryRun=All: the server validates,
	// defaults and admits the objects and stores nothing.
	DryRun bool
	// Wait waits for the Jobs a workload depends on to complete before
	// applying it, and at the end for every Deployment to be available
	// and every Job complete.
	Wait bool
	// Timeout bounds the waits, all together (default 5 minutes).
	Timeout time.Duration
	// Log receives one line per object applied or pruned.
	Log io.Writer
}

// Ref names one object of the project in its namespace.
type Ref struct {
	Kind, Name string
}

func (r Ref) String() string { return strings.ToLower(r.Kind) + "/" + r.Name }

func refOf(o Object) Ref { return Ref{Kind: kindOf(o), Name: o.GetName()} }

// SetNamespace moves r into namespace ns (-n): the Namespace object takes
// its name and every other object its metadata.namespace. The project
// label keeps the project's name, so prune and down find the same objects.
func (r *Result) SetNamespace(ns string) error {
	if ns == "" || ns == r.Namespace {
		return nil
	}
	if dnsLabel(ns) != ns {
		return fmt.Errorf("namespace %q is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)", ns)
	}
	for _, o := range r.Objects {
		if kindOf(o) == "Namespace" {
			o.SetName(ns)
		} else {
			o.SetNamespace(ns)
		}
	}
	r.Namespace = ns
	return nil
}

// Project is the value of the project label on r's objects.
func (r *Result) Project() string {
	for _, o := range r.Objects {
		if p := o.GetLabels()[LabelProject]; p != "" {
			return p
		}
	}
	return ""
}

// ProjectSelector selects what berth made for project: the label every
// object of the conversion carries, with the managed-by label, so that a
// hand-made object that borrows the compose label is not pruned.
func ProjectSelector(project string) string {
	return LabelManagedBy + "=berth," + LabelProject + "=" + project
}

// podSelector selects the project's pods, whose templates carry the
// project label but not managed-by (the controllers own pods).
func podSelector(project string) string {
	return LabelProject + "=" + project
}

// waitsFor lists the Jobs o waits for (service_completed_successfully).
func waitsFor(o Object) []string {
	v := o.GetAnnotations()[AnnotationWaitForJob]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Stages splits objs (in apply order) into the steps apply takes: a
// workload that waits for Jobs comes in a step after theirs, so that with
// --wait those Jobs complete before it is applied; every other object
// is in the first step. A name that is not a Job of objs is ignored.
func Stages(objs []Object) [][]Object {
	jobs := map[string]Object{}
	for _, o := range objs {
		if kindOf(o) == "Job" {
			jobs[o.GetName()] = o
		}
	}
	level := map[Object]int{}
	var depth func(o Object, seen int) int
	depth = func(o Object, seen int) int {
		if l, ok := level[o]; ok {
			return l
		}
		l := 0
		if seen <= len(jobs) { // compose refuses cycles; stop on one anyway
			for _, name := range waitsFor(o) {
				if j, ok := jobs[name]; ok {
					l = max(l, depth(j, seen+1)+1)
				}
			}
		}
		level[o] = l
		return l
	}
	var out [][]Object
	for _, o := range objs {
		l := depth(o, 0)
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], o)
	}
	return out
}

// Stale lists the objects found that the applied set does not hold, in
// the reverse of apply order (workloads first, as a down does).
func Stale(applied []Object, found []Ref) []Ref {
	keep := map[Ref]bool{}
	for _, o := range applied {
		keep[refOf(o)] = true
	}
	var out []Ref
	for _, r := range found {
		if !keep[r] && r.Kind != "Namespace" {
			out = append(out, r)
		}
	}
	sortRefs(out, true)
	return out
}

func sortRefs(refs []Ref, reverse bool) {
	sort.SliceStable(refs, func(i, j int) bool {
		ki, kj := kindOrder[refs[i].Kind], kindOrder[refs[j].Kind]
		if ki != kj {
			return (ki < kj) != reverse
		}
		return refs[i].Name < refs[j].Name
	})
}

// toUnstructured turns a typed object into the body of an apply. Nulls
// (an unset creationTimestamp, empty status) are dropped: an apply
// configuration names only the fields berth means to own.
func toUnstructured(o Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", refOf(o), err)
	}
	delete(m, "status")
	dropNulls(m)
	return &unstructured.Unstructured{Object: m}, nil
}

func dropNulls(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if x == nil {
				delete(t, k)
				continue
			}
			dropNulls(x)
		}
	case []any:
		for _, x := range t {
			dropNulls(x)
		}
	}
}

func dryRun(on bool) []string {
	if on {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// Apply sends r's objects to the cluster with server-side apply, in
// Stages, then deletes the project's objects that r no longer holds.
// The Namespace is applied only when it is missing or berth's own for
// this project: a namespace someone else made is used as it is, and
// down leaves it.
func (c *Cluster) Apply(ctx context.Context, r *Result, opts ApplyOptions) error {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	suffix := ""
	if opts.DryRun {
		suffix = " (server dry run)"
	}
	// One deadline for every wait of this apply: --timeout bounds it all.
	deadline := time.Now().Add(opts.Timeout)
	project := r.Project()
	ns := r.Namespace
	target := ns
	stages := Stages(r.Objects)
	for i, stage := range stages {
		if i > 0 && opts.Wait && !opts.DryRun {
			var jobs []Ref
			for _, o := range stage {
				for _, j := range waitsFor(o) {
					jobs = append(jobs, Ref{Kind: "Job", Name: j})
				}
			}
			if err := c.waitReady(ctx, ns, jobs, deadline, opts.Timeout, log); err != nil {
				return err
			}
		}
		for _, o := range stage {
			if kindOf(o) == "Namespace" {
				apply, exists, err := c.ownsNamespace(ctx, ns, project)
				if err != nil {
					return err
				}
				if !apply {
					fmt.Fprintf(log, "namespace/%s exists and is not this project's: used as it is\n", ns)
					continue
				}
				if !exists && opts.DryRun {
					// The server admits nothing into a namespace that
					// does not exist, dry run or not; the objects are
					// checked in "default" instead.
					target = "default"
				}
			}
			if !opts.Wait && i > 0 {
				for _, j := range waitsFor(o) {
					fmt.Fprintf(log, "%s waits for job/%s: applied without waiting for it (use --wait)\n", refOf(o), j)
				}
			}
			replaced, err := c.applyOne(ctx, o, target, opts.DryRun)
			if err != nil {
				return err
			}
			if replaced {
				fmt.Fprintf(log, "%s replaced%s (a Job's pod template cannot change in place)\n", refOf(o), suffix)
			} else {
				fmt.Fprintf(log, "%s applied%s\n", refOf(o), suffix)
			}
		}
		if target != ns && i == 0 {
			fmt.Fprintf(log, "namespace/%s does not exist yet: its objects were checked in namespace default\n", ns)
		}
	}
	if err := c.prune(ctx, r, target, opts.DryRun, log, suffix); err != nil {
		return err
	}
	if !opts.Wait || opts.DryRun {
		return nil
	}
	var refs []Ref
	for _, o := range r.Objects {
		if k := kindOf(o); k == "Deployment" || k == "Job" {
			refs = append(refs, refOf(o))
		}
	}
	return c.waitReady(ctx, ns, refs, deadline, opts.Timeout, log)
}

// applyOne applies o in ns. A Job whose pod template changed is deleted
// and applied anew, as the server refuses to change a Job's template in
// place (kubectl apply --force does the same); replaced says so.
func (c *Cluster) applyOne(ctx context.Context, o Object, ns string, dry bool) (replaced bool, err error) {
	u, err := toUnstructured(o)
	if err != nil {
		return false, err
	}
	if kindOf(o) != "Namespace" {
		u.SetNamespace(ns)
	}
	res := c.resource(kindOf(o), ns)
	// Force: the compose file is the truth for every field berth sets, as
	// for compose's containers; a field another manager took (kubectl
	// edit, scale) is taken back rather than failing the apply.
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true, DryRun: dryRun(dry)}
	_, err = res.Apply(ctx, o.GetName(), u, opts)
	if err != nil && kindOf(o) == "Job" && apierrors.IsInvalid(err) && strings.Contains(err.Error(), "field is immutable") {
		if err := c.deleteOne(ctx, refOf(o), ns, dry); err != nil {
			return false, err
		}
		if dry {
			// The Job is still there after a dry-run delete: the
			// server can check the replacement only by making it.
			return true, nil
		}
		_, err = res.Apply(ctx, o.GetName(), u, opts)
		return err == nil, wrapApply(o, err)
	}
	return false, wrapApply(o, err)
}

func wrapApply(o Object, err error) error {
	if err != nil {
		return fmt.Errorf("apply %s: %s", refOf(o), oneLine(err))
	}
	return nil
}

// ownsNamespace tells whether apply may apply the Namespace ns: it is
// missing, or carries berth's labels for project.
func (c *Cluster) ownsNamespace(ctx context.Context, ns, project string) (apply, exists bool, err error) {
	u, err := c.resource("Namespace", "").Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("namespace/%s: %s", ns, oneLine(err))
	}
	return isOurs(u.GetLabels(), project), true, nil
}

func isOurs(labels map[string]string, project string) bool {
	return labels[LabelManagedBy] == "berth" && labels[LabelProject] == project
}

// found lists the project's objects of every namespaced kind berth makes.
func (c *Cluster) found(ctx context.Context, ns, project string) ([]Ref, error) {
	var out []Ref
	for _, kind := range namespacedKinds() {
		l, err := c.resource(kind, ns).List(ctx, metav1.ListOptions{LabelSelector: ProjectSelector(project)})
		if err != nil {
			return nil, fmt.Errorf("list %s: %s", kinds[kind].Resource, oneLine(err))
		}
		for _, it := range l.Items {
			out = append(out, Ref{Kind: kind, Name: it.GetName()})
		}
	}
	return out, nil
}

// prune deletes what the project had in ns that r no longer holds.
func (c *Cluster) prune(ctx context.Context, r *Result, ns string, dry bool, log io.Writer, suffix string) error {
	found, err := c.found(ctx, ns, r.Project())
	if err != nil {
		return err
	}
	for _, ref := range Stale(r.Objects, found) {
		if err := c.deleteOne(ctx, ref, ns, dry); err != nil {
			return err
		}
		fmt.Fprintf(log, "%s pruned%s\n", ref, suffix)
	}
	return nil
}

// deleteOne deletes an object and lets the garbage collector remove what
// it owns (a Deployment's ReplicaSets and pods, a Job's pods) behind it.
func (c *Cluster) deleteOne(ctx context.Context, ref Ref, ns string, dry bool) error {
	bg := metav1.DeletePropagationBackground
	err := c.resource(ref.Kind, ns).Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &bg, DryRun: dryRun(dry)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %s", ref, oneLine(err))
	}
	return nil
}
