package bridge

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const stagedCompose = `
name: shop
services:
  migrate:
    image: busybox
    restart: "no"
  seed:
    image: busybox
    restart: "no"
    depends_on: {migrate: {condition: service_completed_successfully}}
  web:
    image: nginx
    ports: ["8080:80"]
    depends_on:
      seed: {condition: service_completed_successfully}
      db: {condition: service_started}
  db:
    image: postgres
    volumes: ["data:/var/lib/postgresql/data"]
volumes:
  data: {}
`

func refs(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = refOf(o).String()
	}
	return out
}

func TestStages(t *testing.T) {
	r := convert(t, stagedCompose, nil, Options{})
	st := Stages(r.Objects)
	if len(st) != 3 {
		t.Fatalf("stages: got %d, want 3: %v", len(st), st)
	}
	// The first stage keeps apply order: namespace, config, claims,
	// policies, Services, then the Job and Deployment that wait for nothing.
	first := refs(st[0])
	if first[0] != "namespace/shop" {
		t.Errorf("first object %s, want the namespace", first[0])
	}
	joined := strings.Join(first, " ")
	for _, want := range []string{"persistentvolumeclaim/data", "service/web", "job/migrate", "deployment/db"} {
		if !strings.Contains(joined, want) {
			t.Errorf("first stage %v lacks %s", first, want)
		}
	}
	if i, j := strings.Index(joined, "service/web"), strings.Index(joined, "deployment/db"); i > j {
		t.Errorf("Services after workloads: %v", first)
	}
	equal(t, "second stage", refs(st[1]), []string{"job/seed"})
	equal(t, "third stage", refs(st[2]), []string{"deployment/web"})
}

func TestStale(t *testing.T) {
	r := convert(t, stagedCompose, nil, Options{})
	found := []Ref{
		{"Deployment", "web"}, {"Deployment", "old"}, {"Service", "old"}, {"ConfigMap", "config-gone"},
		{"Job", "seed"}, {"Namespace", "shop"}, {"Service", "web"},
	}
	var got []string
	for _, s := range Stale(r.Objects, found) {
		got = append(got, s.String())
	}
	// Workloads first, never the namespace, nothing still produced.
	equal(t, "stale", got, []string{"deployment/old", "service/old", "configmap/config-gone"})
}

func TestSetNamespace(t *testing.T) {
	r := convert(t, stagedCompose, nil, Options{})
	if err := r.SetNamespace("staging"); err != nil {
		t.Fatal(err)
	}
	equal(t, "namespace", r.Namespace, "staging")
	equal(t, "project", r.Project(), "shop")
	for _, o := range r.Objects {
		if kindOf(o) == "Namespace" {
			equal(t, "namespace object", o.GetName(), "staging")
		} else if o.GetNamespace() != "staging" {
			t.Errorf("%s in namespace %q", refOf(o), o.GetNamespace())
		}
	}
	if err := r.SetNamespace("Not_A_Label"); err == nil {
		t.Error("a namespace that is not a DNS label was taken")
	}
}

func TestToUnstructuredDropsNulls(t *testing.T) {
	r := convert(t, stagedCompose, nil, Options{})
	u, err := toUnstructured(get[*appsv1.Deployment](t, r, "web"))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			t.Errorf("null at %s", path)
		case map[string]any:
			for k, y := range x {
				walk(path+"."+k, y)
			}
		case []any:
			for _, y := range x {
				walk(path+"[]", y)
			}
		}
	}
	walk("", u.Object)
	if _, ok := u.Object["status"]; ok {
		t.Error("status sent in an apply")
	}
	equal(t, "kind", u.GetKind(), "Deployment")
}

func TestKubeconfigPaths(t *testing.T) {
	for _, tc := range []struct {
		name, explicit, env, home string
		want                      []string
	}{
		{"explicit wins", "/k/a", "/k/b:/k/c", "/root", []string{"/k/a"}},
		{"env list", "", "/k/b::/k/c", "/root", []string{"/k/b", "/k/c"}},
		{"home", "", "", "/root", []string{"/root/.kube/config"}},
		{"nothing", "", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			equal(t, "paths", KubeconfigPaths(tc.explicit, tc.env, tc.home), tc.want)
		})
	}
}

// kubeconfig writes a kubeconfig with one context "one" for server.
func kubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	data := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "` + server + `"}
users:
- name: u
  user: {token: secret}
contexts:
- name: one
  context: {cluster: c, user: u}
current-context: one
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConnectErrors(t *testing.T) {
	// A port nothing listens on: bind one, close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	good := kubeconfig(t, "http://"+addr)
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Config\nclusters: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	for _, tc := range []struct {
		name string
		opts ClusterOptions
		env  string
		want string
	}{
		{"unreachable", ClusterOptions{Kubeconfig: good}, "", "unreachable"},
		{"unknown context", ClusterOptions{Kubeconfig: good, Context: "two"}, "", `context "two" not found in kubeconfig`},
		{"bad file", ClusterOptions{Kubeconfig: bad}, "", "kubeconfig " + bad + ": "},
		{"missing file", ClusterOptions{Kubeconfig: bad + "-none"}, "", "no such file"},
		{"none found", ClusterOptions{}, "", "no kubeconfig found"},
		{"from KUBECONFIG", ClusterOptions{Context: "two"}, good, `context "two" not found in kubeconfig ` + good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := Connect(ctx, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error on several lines: %q", err)
			}
		})
	}
}

func TestDeploymentReady(t *testing.T) {
	two := int32(2)
	d := func(gen, observed int64, replicas, updated, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: &two},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas,
				UpdatedReplicas: updated, AvailableReplicas: available},
		}
	}
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		ok   bool
		why  string
	}{
		{"ready", d(2, 2, 2, 2, 2), true, ""},
		{"unseen", d(3, 2, 2, 2, 2), false, "not yet seen by its controller"},
		{"rolling", d(2, 2, 3, 1, 2), false, "1 of 2 replicas updated"},
		{"old left", d(2, 2, 3, 2, 2), false, "1 old replicas still running"},
		{"unavailable", d(2, 2, 2, 2, 1), false, "1 of 2 replicas available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := DeploymentReady(tc.d)
			if ok != tc.ok || why != tc.why {
				t.Errorf("got %v %q, want %v %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}

func TestJobDone(t *testing.T) {
	job := func(conds ...batchv1.JobCondition) *batchv1.Job {
		return &batchv1.Job{Status: batchv1.JobStatus{Conditions: conds}}
	}
	if ok, err := JobDone(job()); ok || err != nil {
		t.Errorf("new job: %v %v", ok, err)
	}
	if ok, err := JobDone(job(batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue})); !ok || err != nil {
		t.Errorf("complete job: %v %v", ok, err)
	}
	if ok, err := JobDone(job(batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionFalse})); ok || err != nil {
		t.Errorf("condition false: %v %v", ok, err)
	}
	_, err := JobDone(job(batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
		Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}))
	if err == nil || !strings.Contains(err.Error(), "failed (BackoffLimitExceeded: Job has reached") {
		t.Errorf("failed job: %v", err)
	}
}

func TestNewPod(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{LabelService: "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Image: "nginx", Ports: []corev1.ContainerPort{
				{ContainerPort: 80}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}}},
		}
	}
	unscheduled := base()
	running := base()
	running.Spec.NodeName = "n1"
	running.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Ready: true, RestartCount: 2}}}
	pulling := base()
	pulling.Spec.NodeName = "n1"
	pulling.Status = corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
		{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}}
	failed := base()
	failed.Spec.NodeName = "n1"
	failed.Status = corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{
		{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3}}}}}
	gone := base()
	gone.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	for _, tc := range []struct {
		name   string
		p      *corev1.Pod
		status string
	}{
		{"unscheduled", unscheduled, "Pending (unscheduled)"},
		{"running", running, "Running (1/1 ready, 2 restarts)"},
		{"pulling", pulling, "Pending (ImagePullBackOff)"},
		{"failed", failed, "Failed (exited (3))"},
		{"terminating", gone, "Terminating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPod(tc.p)
			equal(t, "status", p.Status, tc.status)
			equal(t, "service", p.Service, "web")
			equal(t, "ports", p.Ports, "80/tcp, 53/udp")
			equal(t, "image", p.Image, "nginx")
		})
	}
}

func TestServicePorts(t *testing.T) {
	r := convert(t, `
name: p
services:
  web:
    image: nginx
    ports: ["8080:80", "8443:443"]
    expose: ["9000"]
  db:
    image: postgres
    expose: ["5432"]
  side:
    image: busybox
`, nil, Options{})
	var svcs []corev1.Service
	for _, o := range r.Objects {
		if s, ok := o.(*corev1.Service); ok {
			svcs = append(svcs, *s)
		}
	}
	got := ServicePorts(svcs)
	equal(t, "web", got["web"], "8080->80/tcp, 8443->443/tcp, 9000/tcp")
	equal(t, "db", got["db"], "5432/tcp")
	if _, ok := got["side"]; ok {
		t.Errorf("side (no ports): %q", got["side"])
	}
	for i := range svcs {
		if svcs[i].Spec.Type == corev1.ServiceTypeLoadBalancer {
			svcs[i].Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		}
	}
	equal(t, "web with an address", ServicePorts(svcs)["web"], "203.0.113.7:8080->80/tcp, 203.0.113.7:8443->443/tcp, 9000/tcp")
}
