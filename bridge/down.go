package bridge

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// DownOptions tune Down.
type DownOptions struct {
	// Timeout bounds the wait for the objects to be gone (default 5
	// minutes).
	Timeout time.Duration
	// Log receives one line per object deleted.
	Log io.Writer
}

// Down deletes the objects berth made for project in ns, workloads first,
// and the namespace when berth made it for this project; then it waits
// until they, and the project's pods, are gone.
func (c *Cluster) Down(ctx context.Context, project, ns string, opts DownOptions) error {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	found, err := c.found(ctx, ns, project)
	if err != nil {
		return err
	}
	sortRefs(found, true)
	for _, ref := range found {
		if err := c.deleteOne(ctx, ref, ns, false); err != nil {
			return err
		}
		fmt.Fprintf(log, "%s deleted\n", ref)
	}
	nsOurs := false
	u, err := c.resource("Namespace", "").Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("namespace/%s: %s", ns, oneLine(err))
	case isOurs(u.GetLabels(), project):
		nsOurs = true
		if err := c.deleteOne(ctx, Ref{Kind: "Namespace", Name: ns}, "", false); err != nil {
			return err
		}
		fmt.Fprintf(log, "namespace/%s deleted\n", ns)
	}
	if len(found) == 0 && !nsOurs {
		fmt.Fprintf(log, "nothing of project %s in namespace %s\n", project, ns)
	}
	return c.waitGone(ctx, project, ns, nsOurs, opts.Timeout)
}

// waitGone polls until nothing of the project is left in ns (nor ns, when
// it was deleted).
func (c *Cluster) waitGone(ctx context.Context, project, ns string, nsToo bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left, err := c.found(ctx, ns, project)
		if err != nil {
			return err
		}
		pods, err := c.pods(ctx, project, ns)
		if err != nil {
			return err
		}
		for _, p := range pods {
			left = append(left, Ref{Kind: "Pod", Name: p.Name})
		}
		if nsToo {
			_, err := c.resource("Namespace", "").Get(ctx, ns, metav1.GetOptions{})
			switch {
			case err == nil:
				left = append(left, Ref{Kind: "Namespace", Name: ns})
			case !apierrors.IsNotFound(err):
				return fmt.Errorf("namespace/%s: %s", ns, oneLine(err))
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			names := make([]string, len(left))
			for i, r := range left {
				names[i] = r.String()
			}
			return fmt.Errorf("timed out after %s waiting for the deletion of %s", timeout, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// pods lists the project's pods in ns, by name.
func (c *Cluster) pods(ctx context.Context, project, ns string) ([]corev1.Pod, error) {
	l, err := c.dyn.Resource(podsResource).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: podSelector(project)})
	if err != nil {
		return nil, fmt.Errorf("list pods: %s", oneLine(err))
	}
	out := make([]corev1.Pod, len(l.Items))
	for i, it := range l.Items {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(it.Object, &out[i]); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
