package bridge

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/berthrun/berth/project"
)

// convert loads compose (plus extra files in the project directory) and
// converts it.
func convert(t *testing.T, compose string, files map[string]string, opts Options) *Result {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(path, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	// The profile "web" is active, so that a service may show profiles.
	p, err := project.Load(context.Background(), project.Options{Files: []string{path}, Environ: []string{"COMPOSE_PROFILES=web"}, WorkDir: dir})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	r, err := Convert(p.Project, opts)
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	return r
}

// get returns the object of type T named name.
func get[T Object](t *testing.T, r *Result, name string) T {
	t.Helper()
	for _, o := range r.Objects {
		if v, ok := o.(T); ok && o.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %q in %v", zero, name, names(r))
	return zero
}

func has[T Object](r *Result, name string) bool {
	for _, o := range r.Objects {
		if _, ok := o.(T); ok && o.GetName() == name {
			return true
		}
	}
	return false
}

func names(r *Result) []string {
	var out []string
	for _, o := range r.Objects {
		out = append(out, kindOf(o)+"/"+o.GetName())
	}
	return out
}

func warned(t *testing.T, r *Result, subject string, parts ...string) {
	t.Helper()
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, subject+":") {
			for _, p := range parts {
				if !strings.Contains(w, p) {
					t.Errorf("warning %q lacks %q", w, p)
				}
			}
			return
		}
	}
	t.Errorf("no warning for %s in %q", subject, r.Warnings)
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

// quantities prints a resource list canonically, so that "2" and "2000m"
// compare equal.
func quantities(l corev1.ResourceList) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		out[string(k)] = v.String()
	}
	return out
}

func ctr(t *testing.T, r *Result, name string) corev1.Container {
	return get[*appsv1.Deployment](t, r, name).Spec.Template.Spec.Containers[0]
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name    string
		compose string
		files   map[string]string
		opts    Options
		check   func(t *testing.T, r *Result)
	}{
		{
			name:    "namespace named after the project",
			compose: "name: shop\nservices:\n  a:\n    image: x\n",
			check: func(t *testing.T, r *Result) {
				equal(t, "namespace", r.Namespace, "shop")
				get[*corev1.Namespace](t, r, "shop")
				equal(t, "deployment namespace", get[*appsv1.Deployment](t, r, "a").Namespace, "shop")
			},
		},
		{
			name: "replicas from deploy.replicas and scale",
			compose: `name: p
services:
  a: {image: x, deploy: {replicas: 3}}
  b: {image: x, scale: 2}
  c: {image: x}
`,
			check: func(t *testing.T, r *Result) {
				for svc, want := range map[string]int32{"a": 3, "b": 2, "c": 1} {
					equal(t, svc+" replicas", *get[*appsv1.Deployment](t, r, svc).Spec.Replicas, want)
				}
			},
		},
		{
			name: "one-shot service waited for as completed is a Job",
			compose: `name: p
services:
  seed: {image: x, restart: "no"}
  once: {image: x, restart: "no"}
  web:
    image: x
    depends_on: {seed: {condition: service_completed_successfully}}
`,
			check: func(t *testing.T, r *Result) {
				job := get[*batchv1.Job](t, r, "seed")
				equal(t, "restart policy", job.Spec.Template.Spec.RestartPolicy, corev1.RestartPolicyNever)
				equal(t, "wait annotation", get[*appsv1.Deployment](t, r, "web").Annotations[AnnotationWaitForJob], "seed")
				if has[*batchv1.Job](r, "once") {
					t.Error("a restart: no service nobody waits for became a Job")
				}
				warned(t, r, "service once", `restart "no" becomes Always`)
			},
		},
		{
			name: "ClusterIP Services for ports, expose and aliases; headless without ports",
			compose: `name: p
services:
  db:
    image: x
    expose: ["5432", "9000-9001/udp"]
    ports: ["8080"]
    networks: {default: {aliases: [database]}}
  worker: {image: x}
`,
			check: func(t *testing.T, r *Result) {
				want := []corev1.ServicePort{
					{Name: "tcp-8080", Port: 8080, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
					{Name: "tcp-5432", Port: 5432, TargetPort: intstr.FromInt32(5432), Protocol: corev1.ProtocolTCP},
					{Name: "udp-9000", Port: 9000, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolUDP},
					{Name: "udp-9001", Port: 9001, TargetPort: intstr.FromInt32(9001), Protocol: corev1.ProtocolUDP},
				}
				for _, n := range []string{"db", "database"} {
					s := get[*corev1.Service](t, r, n)
					equal(t, n+" ports", s.Spec.Ports, want)
					equal(t, n+" selector", s.Spec.Selector, map[string]string{LabelProject: "p", LabelService: "db"})
				}
				equal(t, "worker clusterIP", get[*corev1.Service](t, r, "worker").Spec.ClusterIP, corev1.ClusterIPNone)
			},
		},
		{
			name: "an alias never takes another service's name",
			compose: `name: p
services:
  db: {image: x, networks: {default: {aliases: [cache, store]}}}
  cache: {image: x, networks: {default: {aliases: [store]}}}
`,
			check: func(t *testing.T, r *Result) {
				equal(t, "cache selects", get[*corev1.Service](t, r, "cache").Spec.Selector[LabelService], "cache")
				equal(t, "store selects", get[*corev1.Service](t, r, "store").Spec.Selector[LabelService], "cache")
				warned(t, r, "service db", "alias cache dropped: the name belongs to service cache", "alias store dropped")
			},
		},
		{
			name:    "published ports keep the host port on a LoadBalancer",
			compose: "name: p\nservices:\n  web:\n    image: x\n    ports: [\"8080:80\", \"127.0.0.1:8080:80\", \"5353:53/udp\"]\n",
			check: func(t *testing.T, r *Result) {
				s := get[*corev1.Service](t, r, "web-published")
				equal(t, "type", s.Spec.Type, corev1.ServiceTypeLoadBalancer)
				equal(t, "ports", s.Spec.Ports, []corev1.ServicePort{
					{Name: "tcp-8080", Port: 8080, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP},
					{Name: "udp-5353", Port: 5353, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolUDP},
				})
				np := get[*networkingv1.NetworkPolicy](t, r, "web-published")
				equal(t, "open ports", len(np.Spec.Ingress[0].Ports), 2)
				equal(t, "open to anyone", len(np.Spec.Ingress[0].From), 0)
			},
		},
		{
			name: "networks become NetworkPolicies; internal ones have no egress",
			compose: `name: p
services:
  web: {image: x, networks: [front, back]}
  db: {image: x, networks: [back]}
networks:
  front: {}
  back: {internal: true}
`,
			check: func(t *testing.T, r *Result) {
				equal(t, "web pod labels", get[*appsv1.Deployment](t, r, "web").Spec.Template.Labels, map[string]string{
					LabelProject: "p", LabelService: "web", "network.berth.run/front": "true", "network.berth.run/back": "true"})
				back := get[*networkingv1.NetworkPolicy](t, r, "network-back")
				equal(t, "back selects", back.Spec.PodSelector.MatchLabels, map[string]string{"network.berth.run/back": "true"})
				equal(t, "back ingress from", back.Spec.Ingress[0].From[0].PodSelector.MatchLabels, map[string]string{"network.berth.run/back": "true"})
				equal(t, "back egress rules", len(back.Spec.Egress), 2)
				equal(t, "back egress to its pods", back.Spec.Egress[0].To[0].PodSelector.MatchLabels, map[string]string{"network.berth.run/back": "true"})
				front := get[*networkingv1.NetworkPolicy](t, r, "network-front")
				equal(t, "front egress", front.Spec.Egress, []networkingv1.NetworkPolicyEgressRule{{}})
			},
		},
		{
			name: "named volumes become claims; external ones refer to theirs",
			compose: `name: p
services:
  db:
    image: x
    volumes: [data:/data, big:/big, old:/old, /anon]
volumes:
  data: {}
  big: {x-berth: {size: 5Gi}}
  old: {external: true, name: legacy}
`,
			check: func(t *testing.T, r *Result) {
				equal(t, "default size", get[*corev1.PersistentVolumeClaim](t, r, "data").Spec.Resources.Requests[corev1.ResourceStorage], resource.MustParse("1Gi"))
				equal(t, "x-berth size", get[*corev1.PersistentVolumeClaim](t, r, "big").Spec.Resources.Requests[corev1.ResourceStorage], resource.MustParse("5Gi"))
				if has[*corev1.PersistentVolumeClaim](r, "old") || has[*corev1.PersistentVolumeClaim](r, "legacy") {
					t.Error("an external volume got a claim")
				}
				vols := get[*appsv1.Deployment](t, r, "db").Spec.Template.Spec.Volumes
				equal(t, "claims", []string{vols[0].PersistentVolumeClaim.ClaimName, vols[1].PersistentVolumeClaim.ClaimName, vols[2].PersistentVolumeClaim.ClaimName},
					[]string{"data", "big", "legacy"})
				if vols[3].EmptyDir == nil {
					t.Error("anonymous volume is not an emptyDir")
				}
			},
		},
		{
			name: "configs and secrets mounted where compose mounts them",
			compose: `name: p
services:
  web:
    image: x
    configs: [{source: site, target: /etc/site.conf}]
    secrets: [token]
configs:
  site: {content: "hello"}
secrets:
  token: {file: ./token.txt}
`,
			files: map[string]string{"token.txt": "s3cret"},
			check: func(t *testing.T, r *Result) {
				equal(t, "config data", get[*corev1.ConfigMap](t, r, "config-site").Data, map[string]string{"site": "hello"})
				equal(t, "secret data", get[*corev1.Secret](t, r, "secret-token").Data, map[string][]byte{"token": []byte("s3cret")})
				c := ctr(t, r, "web")
				equal(t, "mounts", c.VolumeMounts, []corev1.VolumeMount{
					{Name: "config-0", MountPath: "/etc/site.conf", SubPath: "site", ReadOnly: true},
					{Name: "secret-0", MountPath: "/run/secrets/token", SubPath: "token", ReadOnly: true},
				})
			},
		},
		{
			name: "project file binds become ConfigMaps; host binds are skipped",
			compose: `name: p
services:
  web:
    image: x
    volumes: ["./nginx.conf:/etc/nginx.conf:ro", "/var/run/x.sock:/x.sock"]
`,
			files: map[string]string{"nginx.conf": "worker 1;"},
			check: func(t *testing.T, r *Result) {
				equal(t, "bind data", get[*corev1.ConfigMap](t, r, "web-vol-0").Data, map[string]string{"nginx.conf": "worker 1;"})
				c := ctr(t, r, "web")
				equal(t, "mounts", c.VolumeMounts, []corev1.VolumeMount{{Name: "vol-0", MountPath: "/etc/nginx.conf", SubPath: "nginx.conf", ReadOnly: true}})
				warned(t, r, "service web", "host bind /var/run/x.sock:/x.sock skipped")
			},
		},
		{
			name:    "a bound file too large for a ConfigMap is reported",
			compose: "name: p\nservices:\n  web:\n    image: x\n    volumes: [\"./big.bin:/big.bin\"]\n",
			files:   map[string]string{"big.bin": strings.Repeat("x", 2<<20)},
			check: func(t *testing.T, r *Result) {
				if has[*corev1.ConfigMap](r, "web-vol-0") {
					t.Error("a 2 MiB file became a ConfigMap")
				}
				warned(t, r, "service web", "bind big.bin skipped: 2097152 bytes")
			},
		},
		{
			name:    "host binds kept with --allow-hostpath",
			compose: "name: p\nservices:\n  web:\n    image: x\n    volumes: [\"/srv:/srv\"]\n",
			opts:    Options{AllowHostPath: true},
			check: func(t *testing.T, r *Result) {
				v := get[*appsv1.Deployment](t, r, "web").Spec.Template.Spec.Volumes[0]
				equal(t, "hostPath", v.HostPath, &corev1.HostPathVolumeSource{Path: "/srv"})
			},
		},
		{
			name: "health check as readiness, liveness and startup probes",
			compose: `name: p
services:
  web:
    image: x
    healthcheck: {test: "curl -f localhost", interval: 5s, timeout: 2s, retries: 4, start_period: 20s}
`,
			check: func(t *testing.T, r *Result) {
				c := ctr(t, r, "web")
				want := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", "-c", "curl -f localhost"}}},
					PeriodSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 4}
				equal(t, "readiness", c.ReadinessProbe, want)
				equal(t, "liveness", c.LivenessProbe, want)
				equal(t, "startup threshold", c.StartupProbe.FailureThreshold, int32(20/5+4))
			},
		},
		{
			name: "depends_on healthy and started wait in init containers",
			compose: `name: p
services:
  db: {image: x, expose: ["5432"]}
  cache: {image: x}
  web:
    image: x
    depends_on: {db: {condition: service_healthy}, cache: {condition: service_started}}
`,
			opts: Options{InitImage: "wait:1"},
			check: func(t *testing.T, r *Result) {
				ic := get[*appsv1.Deployment](t, r, "web").Spec.Template.Spec.InitContainers
				equal(t, "init containers", ic, []corev1.Container{
					{Name: "wait-cache", Image: "wait:1", Command: []string{"sh", "-c", "until nslookup cache >/dev/null 2>&1; do sleep 1; done"}},
					{Name: "wait-db", Image: "wait:1", Command: []string{"sh", "-c", "until nc -z -w 2 db 5432; do sleep 1; done"}},
				})
			},
		},
		{
			name: "container keys",
			compose: `name: p
services:
  web:
    image: x
    entrypoint: ["/bin/app"]
    command: ["serve", "--port", "80"]
    environment: {B: "2", A: "1"}
    env_file: [app.env]
    working_dir: /srv
    user: "1000:2000"
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    privileged: true
    read_only: true
    sysctls: {net.core.somaxconn: "1024"}
    tmpfs: [/tmp]
    mem_limit: 256m
    cpus: 0.5
    mem_reservation: 128m
    stop_grace_period: 1m30s
    hostname: Web_1
    labels: {tier: front, "com.example/desc": "a b"}
    profiles: [web]
`,
			files: map[string]string{"app.env": "C=3\n"},
			opts:  Options{},
			check: func(t *testing.T, r *Result) {
				c := ctr(t, r, "web")
				equal(t, "command", c.Command, []string{"/bin/app"})
				equal(t, "args", c.Args, []string{"serve", "--port", "80"})
				equal(t, "env", c.Env, []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}, {Name: "C", Value: "3"}})
				equal(t, "workdir", c.WorkingDir, "/srv")
				uid, gid, yes := int64(1000), int64(2000), true
				equal(t, "security", c.SecurityContext, &corev1.SecurityContext{
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
					Privileged:   &yes, RunAsUser: &uid, RunAsGroup: &gid, ReadOnlyRootFilesystem: &yes})
				equal(t, "limits", quantities(c.Resources.Limits), map[string]string{"cpu": "500m", "memory": "256Mi"})
				equal(t, "requests", quantities(c.Resources.Requests), map[string]string{"memory": "128Mi"})
				d := get[*appsv1.Deployment](t, r, "web")
				pod := d.Spec.Template.Spec
				equal(t, "sysctls", pod.SecurityContext.Sysctls, []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}})
				equal(t, "grace", *pod.TerminationGracePeriodSeconds, int64(90))
				equal(t, "hostname", pod.Hostname, "web-1")
				equal(t, "tmpfs", pod.Volumes[0].EmptyDir.Medium, corev1.StorageMediumMemory)
				equal(t, "tmpfs mount", c.VolumeMounts[0].MountPath, "/tmp")
				equal(t, "label", d.Labels["tier"], "front")
				if _, ok := d.Labels["com.example/desc"]; ok {
					t.Error("a label value with a space became a label")
				}
				equal(t, "annotation", d.Annotations["com.example/desc"], "a b")
				equal(t, "profiles", d.Annotations["berth.run/profiles"], "web")
				warned(t, r, "names", `hostname "Web_1" is "web-1"`)
			},
		},
		{
			name:    "deploy.resources take precedence",
			compose: "name: p\nservices:\n  web:\n    image: x\n    deploy: {resources: {limits: {cpus: '2', memory: 1g}, reservations: {cpus: '0.25', memory: 64m}}}\n",
			check: func(t *testing.T, r *Result) {
				c := ctr(t, r, "web")
				equal(t, "limits", quantities(c.Resources.Limits), map[string]string{"cpu": "2", "memory": "1Gi"})
				equal(t, "requests", quantities(c.Resources.Requests), map[string]string{"cpu": "250m", "memory": "64Mi"})
			},
		},
		{
			name:    "keys without equivalent named in one line",
			compose: "name: p\nservices:\n  web:\n    image: x\n    ulimits: {nofile: 1024}\n    ipc: host\n    x-custom: 1\n",
			check: func(t *testing.T, r *Result) {
				warned(t, r, "service web", "no Kubernetes equivalent for ipc, ulimits, x-custom")
				n := 0
				for _, w := range r.Warnings {
					if strings.HasPrefix(w, "service web:") {
						n++
					}
				}
				equal(t, "warning lines for web", n, 1)
			},
		},
		{
			name: "pod-level keys: annotations, extra_hosts, dns, shm_size, hooks, group_add",
			compose: `name: p
services:
  web:
    image: x
    annotations: {com.example/a: "1"}
    extra_hosts: ["db.local=10.0.0.5", "cache.local=10.0.0.5", "api.local=10.0.0.6"]
    dns: [10.0.0.2]
    dns_search: [example.com]
    dns_opt: ["ndots:2", "use-vc"]
    shm_size: 64m
    post_start: [{command: ["touch", "/up"]}]
    pre_stop: [{command: ["rm", "/up"]}]
    group_add: ["100", "audio"]
`,
			check: func(t *testing.T, r *Result) {
				pod := get[*appsv1.Deployment](t, r, "web").Spec.Template
				equal(t, "annotations", pod.Annotations, map[string]string{"com.example/a": "1"})
				equal(t, "host aliases", pod.Spec.HostAliases, []corev1.HostAlias{
					{IP: "10.0.0.5", Hostnames: []string{"cache.local", "db.local"}}, {IP: "10.0.0.6", Hostnames: []string{"api.local"}}})
				two := "2"
				equal(t, "dns", pod.Spec.DNSConfig, &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.2"}, Searches: []string{"example.com"},
					Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "use-vc"}}})
				c := pod.Spec.Containers[0]
				equal(t, "shm mount", c.VolumeMounts, []corev1.VolumeMount{{Name: "shm", MountPath: "/dev/shm"}})
				equal(t, "shm size", pod.Spec.Volumes[0].EmptyDir.SizeLimit.String(), "64Mi")
				equal(t, "lifecycle", c.Lifecycle, &corev1.Lifecycle{
					PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"touch", "/up"}}},
					PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"rm", "/up"}}}})
				equal(t, "groups", pod.Spec.SecurityContext.SupplementalGroups, []int64{100})
				warned(t, r, "service web", `group_add "audio" is not numeric`)
			},
		},
		{
			name:    "names sanitized to DNS-1123 and reported",
			compose: "name: p\nservices:\n  Web_App:\n    image: x\n",
			check: func(t *testing.T, r *Result) {
				get[*appsv1.Deployment](t, r, "web-app")
				warned(t, r, "names", `service "Web_App" is "web-app"`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, convert(t, tt.compose, tt.files, tt.opts))
		})
	}
}

// TestDeterministic converts the same project twice and expects the same
// objects in the same order.
func TestDeterministic(t *testing.T) {
	compose := "name: p\nservices:\n  b: {image: x, ports: [\"80\"], networks: [n1, n2]}\n  a: {image: x, volumes: [\"vol:/v\"]}\nnetworks: {n1: {}, n2: {}}\nvolumes: {vol: {}}\n"
	a, b := convert(t, compose, nil, Options{}), convert(t, compose, nil, Options{})
	equal(t, "objects", a.Objects, b.Objects)
	equal(t, "names", names(a), []string{"Namespace/p", "PersistentVolumeClaim/vol", "NetworkPolicy/network-default", "NetworkPolicy/network-n1", "NetworkPolicy/network-n2",
		"Service/a", "Service/b", "Deployment/a", "Deployment/b"})
}

// TestEveryKey converts a file that uses every service key of the compose
// specification: nothing fails, and what has no equivalent is named.
func TestEveryKey(t *testing.T) {
	p, err := project.Load(context.Background(), project.Options{
		Files:   []string{"testdata/every-key/compose.yaml"},
		Environ: []string{"COMPOSE_PROFILES=full"},
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	r, err := Convert(p.Project, Options{})
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	warned(t, r, "service full", "ulimits", "security_opt", "x-extra", "deploy keys without equivalent: endpoint_mode",
		"host bind /var/log:/host-log skipped", "must be pushed")
	warned(t, r, "service provided", "no workload")
	if has[*appsv1.Deployment](r, "provided") {
		t.Error("a provider service got a Deployment")
	}
	get[*batchv1.Job](t, r, "seed")
	get[*corev1.Service](t, r, "api")
	get[*corev1.ConfigMap](t, r, "full-vol-1")
	equal(t, "legacy claim", get[*appsv1.Deployment](t, r, "db").Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName, "legacy-claim")
	equal(t, "data size", get[*corev1.PersistentVolumeClaim](t, r, "data").Spec.Resources.Requests.Storage().String(), "2Gi")
}

func TestDNSLabel(t *testing.T) {
	for in, want := range map[string]string{
		"web":                          "web",
		"Web_App":                      "web-app",
		"-a.b-":                        "a-b",
		"___":                          "x",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "_b": strings.Repeat("a", 62),
	} {
		if got := dnsLabel(in); got != want {
			t.Errorf("dnsLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPublishedAnyPort(t *testing.T) {
	// "0:80" is any free host port in compose: the load balancer offers 80.
	r := convert(t, "name: p\nservices:\n  app:\n    image: busybox\n    ports: [\"0:80\"]\n", nil, Options{})
	s := get[*corev1.Service](t, r, "app-published")
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 80 || s.Spec.Ports[0].TargetPort.IntValue() != 80 {
		t.Errorf("published ports %+v", s.Spec.Ports)
	}
}

func TestBuiltImageName(t *testing.T) {
	compose := "name: p\nservices:\n  app:\n    build: .\n  db:\n    image: postgres:16\n"
	files := map[string]string{"Dockerfile": "FROM busybox\n"}
	// compose v2's name by default, the caller's namer when given (the
	// CLI passes --compatibility's v1 names this way).
	r := convert(t, compose, files, Options{})
	equal(t, "default name", ctr(t, r, "app").Image, "p-app")
	r = convert(t, compose, files, Options{ImageName: func(s types.ServiceConfig) string {
		if s.Image != "" {
			return s.Image
		}
		return "p_" + s.Name
	}})
	equal(t, "caller's name", ctr(t, r, "app").Image, "p_app")
	equal(t, "image: kept", ctr(t, r, "db").Image, "postgres:16")
}
