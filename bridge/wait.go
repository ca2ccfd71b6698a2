package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// pollInterval is how often the waits look at the objects again.
const pollInterval = time.Second

// DeploymentReady tells whether d has rolled out its current spec and has
// every replica available, as `kubectl rollout status` decides; otherwise
// it says what is missing.
func DeploymentReady(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return false, "not yet seen by its controller"
	case s.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		return false, fmt.Sprintf("%d old replicas still running", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas available", s.AvailableReplicas, want)
	}
	return true, ""
}

// errJobFailed marks a Job that will not complete.
var errJobFailed = errors.New("failed")

// JobDone tells whether j completed; a failed Job is an error (the
// converter gives Jobs no retries, as compose runs a one-shot once).
func JobDone(j *batchv1.Job) (bool, error) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, nil
		case batchv1.JobFailed:
			msg := c.Reason
			if c.Message != "" {
				msg += ": " + c.Message
			}
			return false, fmt.Errorf("%w (%s)", errJobFailed, msg)
		}
	}
	return false, nil
}

// ready looks once at one object: done, what it waits for, or an error
// that waiting will not cure.
func (c *Cluster) ready(ctx context.Context, ns string, ref Ref) (bool, string, error) {
	u, err := c.resource(ref.Kind, ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, "not found", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("%s: %s", ref, oneLine(err))
	}
	switch ref.Kind {
	case "Deployment":
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			return false, "", err
		}
		ok, why := DeploymentReady(&d)
		return ok, why, nil
	case "Job":
		var j batchv1.Job
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &j); err != nil {
			return false, "", err
		}
		ok, err := JobDone(&j)
		if err != nil {
			return false, "", fmt.Errorf("%s %w", ref, err)
		}
		return ok, "not complete", nil
	}
	return true, "", nil
}

// waitReady polls refs until each is ready, or fails naming those that
// are not at deadline, which is timeout after the apply began.
func (c *Cluster) waitReady(ctx context.Context, ns string, refs []Ref, deadline time.Time, timeout time.Duration, log io.Writer) error {
	if len(refs) == 0 {
		return nil
	}
	pending := append([]Ref(nil), refs...)
	reasons := map[Ref]string{}
	for {
		var still []Ref
		for _, r := range pending {
			ok, why, err := c.ready(ctx, ns, r)
			if err != nil {
				return err
			}
			if ok {
				fmt.Fprintf(log, "%s ready\n", r)
				continue
			}
			reasons[r] = why
			still = append(still, r)
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var parts []string
			for _, r := range pending {
				parts = append(parts, fmt.Sprintf("%s (%s)", r, reasons[r]))
			}
			return fmt.Errorf("timed out after %s waiting for %s", timeout, strings.Join(parts, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
