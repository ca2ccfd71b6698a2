package bridge

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// isJob tells a one-shot service: restart "no" and some other service
// waits for it to complete successfully.
func (c *converter) isJob(name string) bool {
	s := c.p.Services[name]
	if s.Restart != types.RestartPolicyNo && s.Restart != "" {
		return false
	}
	for _, o := range c.p.Services {
		if d, ok := o.DependsOn[name]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
			return true
		}
	}
	return false
}

// service converts one compose service into its workload, Services and
// published-port policy.
func (c *converter) service(s types.ServiceConfig) error {
	svc := c.name("service", s.Name)
	subject := "service " + s.Name
	if d := droppedKeys(s); len(d) > 0 {
		c.note(subject, "no Kubernetes equivalent for %s", strings.Join(d, ", "))
	}
	if s.Provider != nil {
		// A provider service stands for something an external tool creates;
		// there is no container to run.
		c.note(subject, "provider %s: no workload", s.Provider.Type)
		return nil
	}
	if s.Deploy != nil {
		if d := droppedDeployKeys(*s.Deploy); len(d) > 0 {
			c.note(subject, "deploy keys without equivalent: %s", strings.Join(d, ", "))
		}
	}
	for _, key := range sortedKeys(s.Networks) {
		if n := s.Networks[key]; n != nil && (n.Ipv4Address != "" || n.Ipv6Address != "" || n.MacAddress != "") {
			c.note(subject, "fixed addresses on network %s dropped (pods get theirs from the cluster)", key)
		}
	}
	ctr, err := c.container(s, svc, subject)
	if err != nil {
		return err
	}
	pod := corev1.PodSpec{Containers: []corev1.Container{ctr}}
	c.mounts(s, subject, &pod, &pod.Containers[0])
	c.podSecurity(s, &pod)
	if s.Hostname != "" {
		pod.Hostname = c.name("hostname", s.Hostname)
	}
	if s.StopGracePeriod != nil {
		g := int64(math.Ceil(time.Duration(*s.StopGracePeriod).Seconds()))
		pod.TerminationGracePeriodSeconds = &g
	}
	waitJobs := c.dependencies(s, subject, &pod)
	c.podExtras(s, subject, &pod)

	labels := map[string]string{LabelProject: c.ns, LabelService: svc}
	for _, key := range sortedKeys(s.Networks) {
		labels[networkLabel(key)] = "true"
	}
	tmplMeta := metav1.ObjectMeta{Labels: labels}
	meta := c.meta(svc, svc)
	addLabels(&meta, s.Labels)
	addLabels(&tmplMeta, s.Labels)
	for k, v := range s.Annotations {
		tmplMeta.Annotations = setAnnotation(tmplMeta.Annotations, k, v)
	}
	if len(s.Profiles) > 0 {
		meta.Annotations = setAnnotation(meta.Annotations, annotationProfiles, strings.Join(s.Profiles, ","))
	}
	if len(waitJobs) > 0 {
		meta.Annotations = setAnnotation(meta.Annotations, AnnotationWaitForJob, strings.Join(waitJobs, ","))
	}

	if c.isJob(s.Name) {
		pod.RestartPolicy = corev1.RestartPolicyNever
		backoff := int32(0)
		c.add(&batchv1.Job{
			TypeMeta:   typeMeta("batch/v1", "Job"),
			ObjectMeta: meta,
			Spec: batchv1.JobSpec{
				BackoffLimit: &backoff,
				Template:     corev1.PodTemplateSpec{ObjectMeta: tmplMeta, Spec: pod},
			},
		})
	} else {
		switch s.Restart {
		case "", types.RestartPolicyAlways, types.RestartPolicyUnlessStopped:
		default:
			c.note(subject, "restart %q becomes Always (a Deployment's only policy)", s.Restart)
		}
		replicas := int32(1)
		if s.Deploy != nil && s.Deploy.Replicas != nil {
			replicas = int32(*s.Deploy.Replicas)
		} else if s.Scale != nil {
			replicas = int32(*s.Scale)
		}
		c.add(&appsv1.Deployment{
			TypeMeta:   typeMeta("apps/v1", "Deployment"),
			ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelProject: c.ns, LabelService: svc}},
				Template: corev1.PodTemplateSpec{ObjectMeta: tmplMeta, Spec: pod},
			},
		})
	}
	for _, o := range c.services(s, svc, subject) {
		c.add(o)
	}
	if np := c.publishedPolicy(svc, s.Ports); np != nil {
		c.add(np)
	}
	return nil
}

func setAnnotation(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// container maps the container-level keys.
func (c *converter) container(s types.ServiceConfig, svc, subject string) (corev1.Container, error) {
	ctr := corev1.Container{
		Name:       svc,
		Image:      s.Image,
		Command:    []string(s.Entrypoint),
		Args:       []string(s.Command),
		WorkingDir: s.WorkingDir,
		Stdin:      s.StdinOpen,
		TTY:        s.Tty,
	}
	if c.opts.ImageName != nil {
		ctr.Image = c.opts.ImageName(s)
	} else if ctr.Image == "" {
		// compose names a built image after the project and service.
		ctr.Image = c.p.Name + "-" + s.Name
	}
	if s.Build != nil {
		c.note(subject, "built image %s must be pushed to a registry the cluster pulls from", ctr.Image)
	}
	switch s.PullPolicy {
	case types.PullPolicyAlways:
		ctr.ImagePullPolicy = corev1.PullAlways
	case types.PullPolicyNever:
		ctr.ImagePullPolicy = corev1.PullNever
	case types.PullPolicyMissing, types.PullPolicyIfNotPresent:
		ctr.ImagePullPolicy = corev1.PullIfNotPresent
	}
	for _, k := range sortedKeys(s.Environment) {
		if v := s.Environment[k]; v != nil {
			ctr.Env = append(ctr.Env, corev1.EnvVar{Name: k, Value: *v})
		}
	}
	res, err := resources(s)
	if err != nil {
		return ctr, err
	}
	ctr.Resources = res
	ctr.ReadinessProbe, ctr.LivenessProbe, ctr.StartupProbe = probes(s.HealthCheck)

	sc := &corev1.SecurityContext{}
	set := false
	if s.Privileged {
		sc.Privileged = &s.Privileged
		set = true
	}
	if s.ReadOnly {
		sc.ReadOnlyRootFilesystem = &s.ReadOnly
		set = true
	}
	if len(s.CapAdd) > 0 || len(s.CapDrop) > 0 {
		sc.Capabilities = &corev1.Capabilities{Add: capabilities(s.CapAdd), Drop: capabilities(s.CapDrop)}
		set = true
	}
	if s.User != "" {
		u, g, _ := strings.Cut(s.User, ":")
		uid, err := strconv.ParseInt(u, 10, 64)
		if err == nil {
			sc.RunAsUser = &uid
			set = true
			if g != "" {
				if gid, err := strconv.ParseInt(g, 10, 64); err == nil {
					sc.RunAsGroup = &gid
				} else {
					c.note(subject, "group %q is not numeric: dropped", g)
				}
			}
		} else {
			c.note(subject, "user %q is not numeric: dropped (Kubernetes takes ids)", s.User)
		}
	}
	if set {
		ctr.SecurityContext = sc
	}
	return ctr, nil
}

func capabilities(caps []string) []corev1.Capability {
	var out []corev1.Capability
	for _, c := range caps {
		out = append(out, corev1.Capability(strings.TrimPrefix(strings.ToUpper(c), "CAP_")))
	}
	return out
}

func (c *converter) podSecurity(s types.ServiceConfig, pod *corev1.PodSpec) {
	if len(s.Sysctls) == 0 {
		return
	}
	psc := &corev1.PodSecurityContext{}
	for _, k := range sortedKeys(s.Sysctls) {
		psc.Sysctls = append(psc.Sysctls, corev1.Sysctl{Name: k, Value: s.Sysctls[k]})
	}
	pod.SecurityContext = psc
}

// resources takes limits and reservations from deploy.resources, and
// mem_limit, cpus and mem_reservation where deploy gives none.
func resources(s types.ServiceConfig) (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	put := func(list *corev1.ResourceList, cpus float64, mem int64) {
		if cpus <= 0 && mem <= 0 {
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		if cpus > 0 {
			(*list)[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(cpus*1000)), resource.DecimalSI)
		}
		if mem > 0 {
			(*list)[corev1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
		}
	}
	var limCPU, resCPU float64
	var limMem, resMem int64
	if s.Deploy != nil {
		if l := s.Deploy.Resources.Limits; l != nil {
			limCPU, limMem = float64(l.NanoCPUs), int64(l.MemoryBytes)
		}
		if l := s.Deploy.Resources.Reservations; l != nil {
			resCPU, resMem = float64(l.NanoCPUs), int64(l.MemoryBytes)
		}
	}
	if limCPU == 0 {
		limCPU = float64(s.CPUS)
	}
	if limMem == 0 {
		limMem = int64(s.MemLimit)
	}
	if resMem == 0 {
		resMem = int64(s.MemReservation)
	}
	put(&r.Limits, limCPU, limMem)
	put(&r.Requests, resCPU, resMem)
	return r, nil
}

// probes maps a health check onto readiness and liveness probes (the
// same exec), and start_period onto a startup probe that gives the
// container that long before liveness counts.
func probes(h *types.HealthCheckConfig) (readiness, liveness, startup *corev1.Probe) {
	if h == nil || h.Disable || len(h.Test) == 0 {
		return nil, nil, nil
	}
	var cmd []string
	switch h.Test[0] {
	case "NONE":
		return nil, nil, nil
	case "CMD":
		cmd = append(cmd, h.Test[1:]...)
	case "CMD-SHELL":
		cmd = []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	default:
		cmd = []string{"/bin/sh", "-c", strings.Join(h.Test, " ")}
	}
	base := corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}}
	period := 30 * time.Second // compose's default interval
	if h.Interval != nil {
		period = time.Duration(*h.Interval)
	}
	base.PeriodSeconds = seconds(period)
	if h.Timeout != nil {
		base.TimeoutSeconds = seconds(time.Duration(*h.Timeout))
	} else {
		base.TimeoutSeconds = 30
	}
	base.FailureThreshold = 3
	if h.Retries != nil && *h.Retries > 0 {
		base.FailureThreshold = int32(*h.Retries)
	}
	r, l := base, base
	if h.StartPeriod != nil && *h.StartPeriod > 0 {
		s := base
		sp := period
		if h.StartInterval != nil && *h.StartInterval > 0 {
			sp = time.Duration(*h.StartInterval)
		}
		s.PeriodSeconds = seconds(sp)
		s.FailureThreshold = int32(math.Ceil(float64(*h.StartPeriod)/float64(time.Duration(s.PeriodSeconds)*time.Second))) + base.FailureThreshold
		startup = &s
	}
	return &r, &l, startup
}

// seconds rounds d up to whole seconds, at least one (the API's minimum).
func seconds(d time.Duration) int32 {
	s := int32(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// dependencies adds an init container per service_started/service_healthy
// dependency that waits until the dependency's Service answers (a Service
// only routes to ready pods, so readiness stands for health), and returns
// the Jobs that service_completed_successfully waits for.
func (c *converter) dependencies(s types.ServiceConfig, subject string, pod *corev1.PodSpec) []string {
	var jobs []string
	for _, dep := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[dep]
		name := dnsLabel(dep)
		if d.Condition == types.ServiceConditionCompletedSuccessfully {
			if c.isJob(dep) {
				jobs = append(jobs, name)
			} else {
				c.note(subject, "depends_on %s: service_completed_successfully on a restarting service has no equivalent", dep)
			}
			continue
		}
		if d.Restart {
			c.note(subject, "depends_on %s: restart dropped", dep)
		}
		script := fmt.Sprintf("until nslookup %s >/dev/null 2>&1; do sleep 1; done", name)
		if port := firstPort(c.p.Services[dep]); port != 0 {
			script = fmt.Sprintf("until nc -z -w 2 %s %d; do sleep 1; done", name, port)
		}
		pod.InitContainers = append(pod.InitContainers, corev1.Container{
			Name:    dnsLabel("wait-" + name),
			Image:   c.opts.InitImage,
			Command: []string{"sh", "-c", script},
		})
	}
	sort.Strings(jobs)
	return jobs
}

// firstPort is the lowest TCP port a service's ClusterIP Service has.
func firstPort(s types.ServiceConfig) uint32 {
	var best uint32
	consider := func(p uint32) {
		if p != 0 && (best == 0 || p < best) {
			best = p
		}
	}
	for _, p := range s.Ports {
		if p.Protocol == "" || p.Protocol == "tcp" {
			consider(p.Target)
		}
	}
	for _, e := range s.Expose {
		num, proto, _ := strings.Cut(e, "/")
		num, _, _ = strings.Cut(num, "-")
		if proto != "" && proto != "tcp" {
			continue
		}
		if n, err := strconv.Atoi(num); err == nil {
			consider(uint32(n))
		}
	}
	return best
}

// podExtras maps the keys with a pod-level equivalent: extra_hosts as
// hostAliases, dns* as dnsConfig (added to the cluster's DNS), shm_size
// as a memory emptyDir on /dev/shm, post_start/pre_stop as lifecycle
// hooks (the first command of each) and numeric group_add as
// supplementalGroups.
func (c *converter) podExtras(s types.ServiceConfig, subject string, pod *corev1.PodSpec) {
	byIP := map[string][]string{}
	for _, host := range sortedKeys(s.ExtraHosts) {
		for _, ip := range s.ExtraHosts[host] {
			if ip == "host-gateway" {
				c.note(subject, "extra_hosts %s=host-gateway dropped", host)
				continue
			}
			byIP[ip] = append(byIP[ip], host)
		}
	}
	for _, ip := range sortedKeys(byIP) {
		pod.HostAliases = append(pod.HostAliases, corev1.HostAlias{IP: ip, Hostnames: byIP[ip]})
	}
	if len(s.DNS) > 0 || len(s.DNSSearch) > 0 || len(s.DNSOpts) > 0 {
		dc := &corev1.PodDNSConfig{Nameservers: s.DNS, Searches: s.DNSSearch}
		for _, o := range s.DNSOpts {
			name, value, ok := strings.Cut(o, ":")
			opt := corev1.PodDNSConfigOption{Name: name}
			if ok {
				opt.Value = &value
			}
			dc.Options = append(dc.Options, opt)
		}
		pod.DNSConfig = dc
	}
	ctr := &pod.Containers[0]
	if s.ShmSize > 0 {
		q := resource.NewQuantity(int64(s.ShmSize), resource.BinarySI)
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "shm", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: q}}})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "shm", MountPath: "/dev/shm"})
	}
	hook := func(what string, hooks []types.ServiceHook) *corev1.LifecycleHandler {
		if len(hooks) == 0 {
			return nil
		}
		if len(hooks) > 1 || hooks[0].User != "" || hooks[0].Privileged || hooks[0].WorkingDir != "" || len(hooks[0].Environment) > 0 {
			c.note(subject, "%s: only the first hook's command is kept", what)
		}
		return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string(hooks[0].Command)}}
	}
	post, pre := hook("post_start", s.PostStart), hook("pre_stop", s.PreStop)
	if post != nil || pre != nil {
		ctr.Lifecycle = &corev1.Lifecycle{PostStart: post, PreStop: pre}
	}
	for _, g := range s.GroupAdd {
		gid, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			c.note(subject, "group_add %q is not numeric: dropped", g)
			continue
		}
		if pod.SecurityContext == nil {
			pod.SecurityContext = &corev1.PodSecurityContext{}
		}
		pod.SecurityContext.SupplementalGroups = append(pod.SecurityContext.SupplementalGroups, gid)
	}
}
