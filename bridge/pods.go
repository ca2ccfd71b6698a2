package bridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Pod is one pod of the project as `bridge ps` shows it, in the spirit of
// compose ps's columns.
type Pod struct {
	Name      string
	Namespace string
	Service   string
	Image     string
	// Created is when the API server made the pod.
	Created time.Time
	// State is the pod's phase (Pending, Running, Succeeded, Failed,
	// Unknown), or Terminating once deleted.
	State string
	// Status says more: readiness, restarts, why it waits.
	Status   string
	Ready    string
	Restarts int32
	Node     string
	IP       string
	Ports    string
}

// Pods lists the project's pods in ns, by name.
func (c *Cluster) Pods(ctx context.Context, project, ns string) ([]Pod, error) {
	pods, err := c.pods(ctx, project, ns)
	if err != nil {
		return nil, err
	}
	out := make([]Pod, len(pods))
	for i := range pods {
		out[i] = NewPod(&pods[i])
	}
	return out, nil
}

// NewPod summarizes p.
func NewPod(p *corev1.Pod) Pod {
	out := Pod{
		Name: p.Name, Namespace: p.Namespace, Service: p.Labels[LabelService],
		Created: p.CreationTimestamp.Time, State: string(p.Status.Phase),
		Node: p.Spec.NodeName, IP: p.Status.PodIP,
	}
	if out.State == "" {
		out.State = string(corev1.PodPending)
	}
	var ports []string
	for _, c := range p.Spec.Containers {
		if out.Image == "" {
			out.Image = c.Image
		}
		for _, port := range c.Ports {
			proto := port.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ports = append(ports, fmt.Sprintf("%d/%s", port.ContainerPort, strings.ToLower(string(proto))))
		}
	}
	out.Ports = strings.Join(ports, ", ")
	ready := 0
	why := ""
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
		out.Restarts += cs.RestartCount
		if w := cs.State.Waiting; w != nil && w.Reason != "" && why == "" {
			why = w.Reason
		}
		if t := cs.State.Terminated; t != nil && why == "" && p.Status.Phase != corev1.PodRunning {
			why = fmt.Sprintf("exited (%d)", t.ExitCode)
		}
	}
	out.Ready = fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))
	if why == "" && (p.Status.Phase == corev1.PodPending || p.Status.Phase == "") {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
				why = "unscheduled"
			}
		}
		if why == "" && p.Spec.NodeName == "" {
			why = "unscheduled"
		}
	}
	status := out.State
	switch {
	case p.DeletionTimestamp != nil:
		out.State, status = "Terminating", "Terminating"
	case p.Status.Phase == corev1.PodRunning:
		status += " (" + out.Ready + " ready"
		if out.Restarts > 0 {
			status += fmt.Sprintf(", %d restarts", out.Restarts)
		}
		status += ")"
	case why != "":
		status += " (" + why + ")"
	}
	out.Status = status
	return out
}
