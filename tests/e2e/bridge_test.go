package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/berthrun/berth/internal/testimage"
	"github.com/berthrun/berth/tests/harness"
)

// manifests is what one `bridge convert` wrote, parsed back into the
// typed objects.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	services    map[string]*corev1.Service
	policies    map[string]*networkingv1.NetworkPolicy
	claims      map[string]*corev1.PersistentVolumeClaim
	namespaces  []string
	all         []metav1.Object
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
}

// readManifests parses every file base/kustomization.yaml lists, by kind.
func readManifests(t *testing.T, dir string) *manifests {
	t.Helper()
	var k kustomization
	readYAML(t, filepath.Join(dir, "base", "kustomization.yaml"), &k)
	if k.Kind != "Kustomization" || len(k.Resources) == 0 {
		t.Fatalf("base/kustomization.yaml: %+v", k)
	}
	m := &manifests{deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{},
		services: map[string]*corev1.Service{}, policies: map[string]*networkingv1.NetworkPolicy{},
		claims: map[string]*corev1.PersistentVolumeClaim{}}
	for _, f := range k.Resources {
		path := filepath.Join(dir, "base", f)
		var tm metav1.TypeMeta
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &tm); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var o metav1.Object
		switch tm.Kind {
		case "Deployment":
			v := &appsv1.Deployment{}
			readYAML(t, path, v)
			m.deployments[v.Name], o = v, v
		case "Job":
			v := &batchv1.Job{}
			readYAML(t, path, v)
			m.jobs[v.Name], o = v, v
		case "Service":
			v := &corev1.Service{}
			readYAML(t, path, v)
			m.services[v.Name], o = v, v
		case "NetworkPolicy":
			v := &networkingv1.NetworkPolicy{}
			readYAML(t, path, v)
			m.policies[v.Name], o = v, v
		case "PersistentVolumeClaim":
			v := &corev1.PersistentVolumeClaim{}
			readYAML(t, path, v)
			m.claims[v.Name], o = v, v
		case "Namespace":
			v := &corev1.Namespace{}
			readYAML(t, path, v)
			m.namespaces, o = append(m.namespaces, v.Name), v
		case "ConfigMap":
			v := &corev1.ConfigMap{}
			readYAML(t, path, v)
			o = v
		case "Secret":
			v := &corev1.Secret{}
			readYAML(t, path, v)
			o = v
		default:
			t.Fatalf("%s: unexpected kind %q", f, tm.Kind)
		}
		m.all = append(m.all, o)
	}
	var ov kustomization
	readYAML(t, filepath.Join(dir, "overlays", "default", "kustomization.yaml"), &ov)
	if len(ov.Resources) != 1 || ov.Resources[0] != "../../base" || len(m.namespaces) != 1 || ov.Namespace != m.namespaces[0] {
		t.Errorf("overlay %+v, namespaces %v", ov, m.namespaces)
	}
	return m
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// check holds for every converted project: all objects in the project's
// namespace and labelled as berth's, every Service selecting the pods of a
// workload, every selector matching its template.
func (m *manifests) check(t *testing.T) {
	t.Helper()
	ns := m.namespaces[0]
	for _, o := range m.all {
		if o.GetName() != ns && o.GetNamespace() != ns {
			t.Errorf("%s in namespace %q, not %q", o.GetName(), o.GetNamespace(), ns)
		}
		if o.GetLabels()["app.kubernetes.io/managed-by"] != "berth" || o.GetLabels()["com.docker.compose.project"] != ns {
			t.Errorf("%s labels %v", o.GetName(), o.GetLabels())
		}
	}
	templates := map[string]map[string]string{}
	for name, d := range m.deployments {
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("deployment %s: selector %s=%s misses its template", name, k, v)
			}
		}
		templates[name] = d.Spec.Template.Labels
	}
	for name, j := range m.jobs {
		templates[name] = j.Spec.Template.Labels
	}
	for name, s := range m.services {
		svc := s.Spec.Selector["com.docker.compose.service"]
		if tl, ok := templates[svc]; !ok || tl["com.docker.compose.service"] != svc {
			t.Errorf("service %s selects %v, which no workload has", name, s.Spec.Selector)
		}
	}
}

// TestBridgeConvert runs `berth bridge convert` on the samples and the
// tests' compose files, and parses what it wrote back into typed objects.
func TestBridgeConvert(t *testing.T) {
	e := harness.New(t)
	var files []string
	for _, pattern := range []string{"samples/*/compose.yaml", "tests/testdata/seed/*.yaml", "tests/vm/testdata/compose.yaml", "bridge/testdata/*/compose.yaml"} {
		m, _ := filepath.Glob(filepath.Join(repo(t), pattern))
		for _, f := range m {
			if !strings.Contains(f, "verbatim") {
				files = append(files, f)
			}
		}
	}
	if len(files) < 5 {
		t.Fatalf("only %d compose files found", len(files))
	}
	for i, f := range files {
		out := filepath.Join(e.Dir, fmt.Sprintf("out-%d", i))
		r := e.RunEnv([]string{"COMPOSE_PROFILES=full"}, "-f", f, "bridge", "convert", "-o", out)
		if r.Code != 0 {
			t.Errorf("bridge convert %s: exit %d: %s", f, r.Code, r.Stderr)
			continue
		}
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			m := readManifests(t, out)
			m.check(t)
			if strings.HasSuffix(f, "samples/demo/compose.yaml") {
				checkDemo(t, m, r.Stderr)
			}
		})
	}
}

// checkDemo checks the demo's compose semantics in the manifests: the
// one-shot init is a Job web waits for, kv's health check gates its
// dependents, web keeps 2 replicas and its published port.
func checkDemo(t *testing.T, m *manifests, stderr string) {
	if _, ok := m.jobs["init"]; !ok {
		t.Errorf("init is not a Job: jobs %v", m.jobs)
	}
	web := m.deployments["web"]
	if web == nil {
		t.Fatal("no web Deployment")
	}
	if *web.Spec.Replicas != 2 || web.Annotations["berth.run/wait-for-jobs"] != "init" {
		t.Errorf("web: replicas %d, annotations %v", *web.Spec.Replicas, web.Annotations)
	}
	if ic := web.Spec.Template.Spec.InitContainers; len(ic) != 1 || ic[0].Name != "wait-kv" {
		t.Errorf("web init containers %+v", ic)
	}
	kv := m.deployments["kv"].Spec.Template.Spec
	if c := kv.Containers[0]; c.ReadinessProbe == nil || c.StartupProbe == nil || kv.Volumes[0].PersistentVolumeClaim.ClaimName != "kv-data" {
		t.Errorf("kv: %+v", kv)
	}
	lb := m.services["web-published"]
	if lb == nil || lb.Spec.Type != corev1.ServiceTypeLoadBalancer || lb.Spec.Ports[0].Port != 8080 || lb.Spec.Ports[0].TargetPort.IntValue() != 80 {
		t.Errorf("web-published: %+v", lb)
	}
	if _, ok := m.claims["kv-data"]; !ok {
		t.Error("no kv-data claim")
	}
	if !strings.Contains(stderr, "WARN service web: host_ip 127.0.0.1") {
		t.Errorf("stderr %q", stderr)
	}
}

// TestBridgeConvertPush: --push sends a built image to --registry and the
// Deployment refers to it by digest.
func TestBridgeConvertPush(t *testing.T) {
	reg := testimage.StartRegistry(t)
	e := harness.New(t)
	e.WriteFile("app/msg", "hi\n")
	e.WriteFile("app/Dockerfile", "FROM scratch\nCOPY msg /msg\n")
	e.WriteFile("compose.yaml", "name: pushy\nservices:\n  app:\n    build: ./app\n")
	e.MustRun("build")
	out := filepath.Join(e.Dir, "out")
	if r := e.Run("bridge", "convert", "--push", "-o", out); r.Code == 0 || !strings.Contains(r.Stderr, "--push needs --registry") {
		t.Errorf("--push without --registry: exit %d, %q", r.Code, r.Stderr)
	}
	r := e.MustRun("bridge", "convert", "--push", "--registry", reg.Host+"/team", "-o", out)
	if strings.Contains(r.Stderr, "must be pushed") {
		t.Errorf("stderr after push: %q", r.Stderr)
	}
	m := readManifests(t, out)
	m.check(t)
	img := m.deployments["app"].Spec.Template.Spec.Containers[0].Image
	if want := reg.Host + "/team/pushy-app:latest@sha256:"; !strings.HasPrefix(img, want) {
		t.Fatalf("image %q, want %s...", img, want)
	}
	// The pushed reference pulls back.
	e.MustRun("image", "rm", "pushy-app")
	e.MustRun("image", "pull", img)
}
