package bridge

import (
	"fmt"
	"strconv"

	"github.com/compose-spec/compose-go/v2/types"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

func validLabel(k, v string) bool {
	return len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0
}

// networkLabel marks the pods of services attached to a compose network.
func networkLabel(network string) string { return labelNetworkPrefix + dnsLabel(network) }

// networkPolicies reproduce compose networks: a pod accepts traffic only
// from pods that share one of its networks (policies add up), and a pod
// whose networks are all internal reaches only those networks (and DNS).
func (c *converter) networkPolicies() {
	for _, key := range sortedKeys(c.p.Networks) {
		n := c.p.Networks[key]
		name := c.name("network", "network-"+key)
		sel := metav1.LabelSelector{MatchLabels: map[string]string{networkLabel(key): "true"}}
		peer := networkingv1.NetworkPolicyPeer{PodSelector: &sel}
		np := &networkingv1.NetworkPolicy{
			TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
			ObjectMeta: c.meta(name, ""),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: sel,
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{peer}}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			},
		}
		if n.Internal {
			udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
			dns := intstr.FromInt32(53)
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{peer}},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}}},
			}
		} else {
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
		}
		if bool(n.External) || n.Driver != "" && n.Driver != "bridge" || n.Ipam.Config != nil {
			c.note("network "+key, "external, driver and ipam have no equivalent: the policy stands for the network")
		}
		c.add(np)
	}
}

// publishedPolicy lets traffic from anywhere reach a service's published
// ports, as the host's port would.
func (c *converter) publishedPolicy(svc string, ports []types.ServicePortConfig) Object {
	var np []networkingv1.NetworkPolicyPort
	seen := map[string]bool{}
	for _, p := range ports {
		key := fmt.Sprintf("%d/%s", p.Target, p.Protocol)
		if p.Published == "" || seen[key] {
			continue
		}
		seen[key] = true
		proto := protocol(p.Protocol)
		port := intstr.FromInt32(int32(p.Target))
		np = append(np, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port})
	}
	if len(np) == 0 {
		return nil
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
		ObjectMeta: c.meta(svc+"-published", svc),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelService: svc}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: np}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

func protocol(p string) corev1.Protocol {
	switch p {
	case "udp":
		return corev1.ProtocolUDP
	case "sctp":
		return corev1.ProtocolSCTP
	}
	return corev1.ProtocolTCP
}

// services makes the Services through which other services and the
// outside reach s: a ClusterIP one under the service's name and one per
// alias (headless when s has no port, so that the name still resolves),
// and a LoadBalancer one keeping the published ports.
func (c *converter) services(s types.ServiceConfig, svc, subject string) []Object {
	var ports []corev1.ServicePort
	seen := map[string]bool{}
	addPort := func(port uint32, proto corev1.Protocol) {
		key := fmt.Sprintf("%d/%s", port, proto)
		if port == 0 || seen[key] {
			return
		}
		seen[key] = true
		ports = append(ports, corev1.ServicePort{Name: fmt.Sprintf("%s-%d", lower(proto), port),
			Port: int32(port), TargetPort: intstr.FromInt32(int32(port)), Protocol: proto})
	}
	for _, p := range s.Ports {
		addPort(p.Target, protocol(p.Protocol))
	}
	for _, e := range s.Expose {
		// expose takes "80", "80/udp" or a range "8000-8001".
		num, proto := e, "tcp"
		if i := indexByte(e, '/'); i >= 0 {
			num, proto = e[:i], e[i+1:]
		}
		lo, hi := num, num
		if i := indexByte(num, '-'); i >= 0 {
			lo, hi = num[:i], num[i+1:]
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || b < a || b-a > 100 {
			c.note(subject, "expose %q dropped", e)
			continue
		}
		for p := a; p <= b; p++ {
			addPort(uint32(p), protocol(proto))
		}
	}
	names := []string{svc}
	for _, key := range sortedKeys(s.Networks) {
		if n := s.Networks[key]; n != nil {
			for _, a := range n.Aliases {
				names = append(names, c.name("alias", a))
			}
		}
	}
	var out []Object
	for i, name := range names {
		// A name another service or alias already holds stays with it, as
		// compose's DNS answers the service name first.
		if owner, taken := c.serviceNames[name]; taken && (owner != svc || i > 0) {
			if owner != svc {
				c.note(subject, "alias %s dropped: the name belongs to service %s", name, owner)
			}
			continue
		}
		c.serviceNames[name] = svc
		k := &corev1.Service{
			TypeMeta:   typeMeta("v1", "Service"),
			ObjectMeta: c.meta(name, svc),
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{LabelProject: c.ns, LabelService: svc},
				Ports:    ports,
			},
		}
		if len(ports) == 0 {
			k.Spec.ClusterIP = corev1.ClusterIPNone
		}
		out = append(out, k)
	}
	var published []corev1.ServicePort
	for _, p := range s.Ports {
		if p.Published == "" {
			continue
		}
		lo, hi := p.Published, p.Published
		if i := indexByte(lo, '-'); i >= 0 {
			lo, hi = lo[:i], lo[i+1:]
			c.note(subject, "published range %s uses its first port", p.Published)
		}
		_ = hi
		host, err := strconv.Atoi(lo)
		if err != nil {
			c.note(subject, "published port %q dropped", p.Published)
			continue
		}
		if host == 0 {
			// Host port 0 is any free port in compose; the load balancer
			// offers the container's own.
			host = int(p.Target)
		}
		proto := protocol(p.Protocol)
		key := fmt.Sprintf("%s-%d", lower(proto), host)
		if seen["published "+key] {
			continue // the same port on several host addresses
		}
		seen["published "+key] = true
		published = append(published, corev1.ServicePort{Name: key,
			Port: int32(host), TargetPort: intstr.FromInt32(int32(p.Target)), Protocol: proto})
		if p.HostIP != "" {
			c.note(subject, "host_ip %s of port %s dropped (the load balancer decides)", p.HostIP, p.Published)
		}
	}
	if len(published) > 0 {
		out = append(out, &corev1.Service{
			TypeMeta:   typeMeta("v1", "Service"),
			ObjectMeta: c.meta(svc+"-published", svc),
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{LabelProject: c.ns, LabelService: svc},
				Ports:    published,
			},
		})
	}
	return out
}

func lower(p corev1.Protocol) string {
	switch p {
	case corev1.ProtocolUDP:
		return "udp"
	case corev1.ProtocolSCTP:
		return "sctp"
	}
	return "tcp"
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}
