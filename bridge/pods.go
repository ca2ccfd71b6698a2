package bridge

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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

// Pods lists the project's pods in ns, by name, with the ports their
// service's Services offer.
func (c *Cluster) Pods(ctx context.Context, project, ns string) ([]Pod, error) {
	pods, err := c.pods(ctx, project, ns)
	if err != nil {
		return nil, err
	}
	l, err := c.resource("Service", ns).List(ctx, metav1.ListOptions{LabelSelector: ProjectSelector(project)})
	if err != nil {
		return nil, fmt.Errorf("list services: %s", oneLine(err))
	}
	svcs := make([]corev1.Service, len(l.Items))
	for i, it := range l.Items {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(it.Object, &svcs[i]); err != nil {
			return nil, err
		}
	}
	ports := ServicePorts(svcs)
	out := make([]Pod, len(pods))
	for i := range pods {
		out[i] = NewPod(&pods[i])
		if p, ok := ports[out[i].Service]; ok {
			out[i].Ports = p
		}
	}
	return out, nil
}

// ServicePorts says, per compose service, what its Services offer, as
// compose ps shows ports: a published one as "[ADDRESS:]PORT->TARGET/proto"
// (the address once the load balancer has one), another as "TARGET/proto".
func ServicePorts(svcs []corev1.Service) map[string]string {
	published := map[string][]string{}
	exposed := map[string][]string{}
	seen := map[string]bool{}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	for _, s := range svcs {
		svc := s.Labels[LabelService]
		if svc == "" {
			continue
		}
		addr := ""
		if ing := s.Status.LoadBalancer.Ingress; len(ing) > 0 {
			addr = ing[0].IP
			if addr == "" {
				addr = ing[0].Hostname
			}
			addr += ":"
		}
		for _, p := range s.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			target := p.TargetPort.String()
			if p.TargetPort.IntValue() == 0 && p.TargetPort.StrVal == "" {
				target = fmt.Sprint(p.Port)
			}
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				published[svc] = append(published[svc], fmt.Sprintf("%s%d->%s/%s", addr, p.Port, target, proto))
				seen[svc+" "+target+"/"+proto] = true
			} else {
				exposed[svc] = append(exposed[svc], target+"/"+proto)
			}
		}
	}
	out := map[string]string{}
	for svc, ps := range published {
		out[svc] = strings.Join(ps, ", ")
	}
	for svc, ps := range exposed {
		var keep []string
		for _, p := range ps {
			if !seen[svc+" "+p] {
				seen[svc+" "+p] = true
				keep = append(keep, p)
			}
		}
		if len(keep) > 0 {
			if out[svc] != "" {
				out[svc] += ", "
			}
			out[svc] += strings.Join(keep, ", ")
		}
	}
	return out
}

// NewPod summarizes p; its ports are the containers' declared ones.
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
