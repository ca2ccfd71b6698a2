package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berthrun/berth/tests/harness"
)

// kubeKinds are the resources of every kind berth's conversion makes.
var kubeKinds = map[string]schema.GroupVersionResource{
	"ConfigMap":             {Version: "v1", Resource: "configmaps"},
	"Secret":                {Version: "v1", Resource: "secrets"},
	"PersistentVolumeClaim": {Version: "v1", Resource: "persistentvolumeclaims"},
	"NetworkPolicy":         {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	"Service":               {Version: "v1", Resource: "services"},
	"Job":                   {Group: "batch", Version: "v1", Resource: "jobs"},
	"Deployment":            {Group: "apps", Version: "v1", Resource: "deployments"},
}

var (
	namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	podsGVR       = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// objects lists the project's objects in ns ("" for every namespace) as
// kind/namespace/name -> the object in JSON, less its resourceVersion.
func (c *kubeCluster) objects(project, ns string) map[string]string {
	c.t.Helper()
	out, err := c.listObjects(project, ns)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *kubeCluster) listObjects(project, ns string) (map[string]string, error) {
	out := map[string]string{}
	sel := metav1.ListOptions{LabelSelector: "com.docker.compose.project=" + project}
	for kind, gvr := range kubeKinds {
		l, err := c.dyn.Resource(gvr).Namespace(ns).List(context.Background(), sel)
		if err != nil {
			return nil, fmt.Errorf("list %s: %v", gvr.Resource, err)
		}
		for _, it := range l.Items {
			// The content without its resourceVersion: the server
			// rewrites a PersistentVolumeClaim on its first update, apply
			// or not (its status.phase, defaulted when read, is stored
			// then), with the same content and a new version.
			it.SetResourceVersion("")
			data, err := json.Marshal(it.Object)
			if err != nil {
				return nil, err
			}
			out[strings.ToLower(kind)+"/"+it.GetNamespace()+"/"+it.GetName()] = string(data)
		}
	}
	return out, nil
}

func (c *kubeCluster) exists(gvr schema.GroupVersionResource, ns, name string) bool {
	c.t.Helper()
	_, err := c.dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		c.t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return err == nil
}

func (c *kubeCluster) patchStatus(gvr schema.GroupVersionResource, ns, name string, status map[string]any) {
	c.t.Helper()
	data, _ := json.Marshal(map[string]any{"status": status})
	_, err := c.dyn.Resource(gvr).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, data, metav1.PatchOptions{}, "status")
	if err != nil {
		c.t.Fatalf("patch status of %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
}

// composeFixture is one compose file the other tests run.
type composeFixture struct {
	where, content string
}

// composeFixtures collects every sample's compose file and every compose
// file the end-to-end tests write as a literal (e.WriteFile("compose.yaml",
// `...`)), read from their source.
func composeFixtures(t *testing.T) []composeFixture {
	t.Helper()
	var out []composeFixture
	samples, _ := filepath.Glob(filepath.Join(repo(t), "samples", "*", "compose.yaml"))
	for _, s := range samples {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, composeFixture{where: s, content: string(data)})
	}
	sources, _ := filepath.Glob(filepath.Join(repo(t), "tests", "e2e", "*_test.go"))
	fset := token.NewFileSet()
	for _, src := range sources {
		f, err := parser.ParseFile(fset, src, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "WriteFile" {
				return true
			}
			name, ok1 := call.Args[0].(*ast.BasicLit)
			body, ok2 := call.Args[1].(*ast.BasicLit)
			if !ok1 || !ok2 || name.Kind != token.STRING || body.Kind != token.STRING {
				return true
			}
			n1, _ := strconv.Unquote(name.Value)
			b, _ := strconv.Unquote(body.Value)
			if (strings.HasSuffix(n1, ".yaml") || strings.HasSuffix(n1, ".yml")) && strings.Contains(b, "services:") {
				out = append(out, composeFixture{where: fset.Position(call.Pos()).String(), content: b})
			}
			return true
		})
	}
	return out
}

// TestBridgeKube takes compose projects to a real API server: every
// sample and test compose file through server-side apply (dry run and
// real, twice with nothing changed), --wait behind a Job, prune, ps on
// the pods the controllers make, down, and the errors for a bad context
// or an unreachable cluster.
func TestBridgeKube(t *testing.T) {
	c := startKubeCluster(t)
	kc := "--kubeconfig=" + c.kubeconfig

	t.Run("errors", func(t *testing.T) {
		e := harness.New(t)
		e.WriteFile("errs/compose.yaml", "services:\n  web:\n    image: nginx\n")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--context=nope"}, `context "nope" not found in kubeconfig`},
			{[]string{"--kubeconfig=" + filepath.Join(e.Dir, "none")}, "no such file"},
		} {
			r := e.Run(append([]string{"-f", "errs/compose.yaml", "bridge", "ps", kc}, tc.args...)...)
			if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
				t.Errorf("%v: exit %d, stderr %q; want one line with %q", tc.args, r.Code, r.Stderr, tc.want)
			}
		}
		dead := strings.Replace(mustRead(t, c.kubeconfig), c.server, fmt.Sprintf("https://127.0.0.1:%d", freePort(t)), 1)
		e.WriteFile("dead-kubeconfig", dead)
		r := e.Run("-f", "errs/compose.yaml", "bridge", "apply", "--kubeconfig=dead-kubeconfig")
		if r.Code == 0 || !strings.Contains(r.Stderr, "unreachable") || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("unreachable cluster: exit %d, stderr %q", r.Code, r.Stderr)
		}
	})

	t.Run("ps prune down", func(t *testing.T) {
		e := harness.New(t)
		// The controllers run for this part only: they would otherwise
		// make pods for every project below, and overwrite the status the
		// wait test writes.
		defer c.startControllerManager()()
		shop := `
services:
  web:
    image: nginx
    ports: ["8080:80"]
  db:
    image: postgres
    volumes: [data:/var/lib/postgresql/data]
  worker:
    image: busybox
    command: sleep 1000
volumes:
  data: {}
`
		e.WriteFile("shop/compose.yaml", shop)
		args := []string{"-f", "shop/compose.yaml", "-p", "shop", "bridge"}
		e.MustRun(append(args, "apply", kc)...)
		ps := func() []map[string]any {
			r := e.MustRun(append(args, "ps", kc, "--format", "json")...)
			var out []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				if line == "" {
					continue
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("ps --format json: %q: %v", line, err)
				}
				out = append(out, m)
			}
			return out
		}
		services := func() []string {
			var s []string
			for _, p := range ps() {
				s = append(s, p["Service"].(string))
			}
			sort.Strings(s)
			return s
		}
		// The Deployments' controllers make a pod each; no scheduler binds it.
		waitFor(t, 90*time.Second, "a pod per service", func() bool {
			return strings.Join(services(), ",") == "db,web,worker"
		})
		for _, p := range ps() {
			if p["Status"] != "Pending (unscheduled)" || p["Namespace"] != "shop" {
				t.Errorf("pod %v", p)
			}
			if p["Service"] == "web" && p["Ports"] != "8080->80/tcp" {
				t.Errorf("web's ports %v", p["Ports"])
			}
		}
		table := e.MustRun(append(args, "ps", kc)...).Stdout
		if !strings.HasPrefix(table, "NAME") || !strings.Contains(table, "SERVICE") || strings.Count(table, "\n") != 4 {
			t.Errorf("ps table:\n%s", table)
		}

		// worker leaves the file: apply prunes its Deployment, and the
		// garbage collector its pod.
		e.WriteFile("shop/compose.yaml", strings.Replace(shop, "  worker:\n    image: busybox\n    command: sleep 1000\n", "", 1))
		r := e.MustRun(append(args, "apply", kc)...)
		if !strings.Contains(r.Stdout, "deployment/worker pruned") {
			t.Errorf("apply without worker:\n%s", r.Stdout)
		}
		for k := range c.objects("shop", "shop") {
			if strings.HasSuffix(k, "/worker") {
				t.Errorf("%s left after prune", k)
			}
		}
		waitFor(t, 90*time.Second, "worker's pod to go", func() bool {
			return strings.Join(services(), ",") == "db,web"
		})

		// A namespace berth did not make stays; its objects go.
		e.WriteFile("guest/compose.yaml", "services:\n  api:\n    image: nginx\n")
		gargs := []string{"-f", "guest/compose.yaml", "-p", "guest", "bridge"}
		r = e.MustRun(append(gargs, "apply", kc, "-n", "default")...)
		if !strings.Contains(r.Stdout, "namespace/default exists and is not this project's") {
			t.Errorf("apply into default:\n%s", r.Stdout)
		}
		e.MustRun(append(gargs, "down", kc, "-n", "default", "--timeout=2m")...)
		if left := c.objects("guest", ""); len(left) > 0 || !c.exists(namespacesGVR, "", "default") {
			t.Errorf("after down in default: %v left, default exists: %v", left, c.exists(namespacesGVR, "", "default"))
		}

		r = e.MustRun(append(args, "down", kc, "--timeout=3m")...)
		if !strings.Contains(r.Stdout, "namespace/shop deleted") {
			t.Errorf("down:\n%s", r.Stdout)
		}
		if c.exists(namespacesGVR, "", "shop") {
			t.Error("namespace shop left after down")
		}
		if left := c.objects("shop", ""); len(left) > 0 {
			t.Errorf("left after down: %v", left)
		}
		pods, err := c.dyn.Resource(podsGVR).List(context.Background(), metav1.ListOptions{LabelSelector: "com.docker.compose.project=shop"})
		if err != nil || len(pods.Items) > 0 {
			t.Errorf("pods after down: %v %v", err, len(pods.Items))
		}
		if r := e.MustRun(append(args, "ps", kc)...); strings.Count(r.Stdout, "\n") != 1 {
			t.Errorf("ps after down:\n%s", r.Stdout)
		}
	})

	t.Run("wait", func(t *testing.T) {
		e := harness.New(t)
		// No controllers run now: the test plays them, completing the Job
		// and making the Deployment available through their status.
		e.WriteFile("wait/compose.yaml", `
services:
  seed:
    image: busybox
    restart: "no"
  web:
    image: nginx
    depends_on: {seed: {condition: service_completed_successfully}}
`)
		cmd := e.Command("-f", "wait/compose.yaml", "-p", "waiter", "bridge", "apply", kc, "--wait", "--timeout=2m")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		jobs, deps := kubeKinds["Job"], kubeKinds["Deployment"]
		waitFor(t, 60*time.Second, "job/seed", func() bool { return c.exists(jobs, "waiter", "seed") })
		time.Sleep(2 * time.Second)
		if c.exists(deps, "waiter", "web") {
			t.Fatal("deployment/web applied before job/seed completed")
		}
		now := time.Now().UTC().Format(time.RFC3339)
		c.patchStatus(jobs, "waiter", "seed", map[string]any{
			"startTime": now, "completionTime": now, "succeeded": 1,
			"conditions": []map[string]any{
				{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
				{"type": "Complete", "status": "True", "lastTransitionTime": now},
			},
		})
		waitFor(t, 60*time.Second, "deployment/web", func() bool { return c.exists(deps, "waiter", "web") })
		u, err := c.dyn.Resource(deps).Namespace("waiter").Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.patchStatus(deps, "waiter", "web", map[string]any{
			"observedGeneration": u.GetGeneration(), "replicas": 1, "updatedReplicas": 1,
			"readyReplicas": 1, "availableReplicas": 1,
		})
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("apply --wait: %v\n%s\n%s", err, out.String(), errb.String())
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("apply --wait did not return:\n%s", out.String())
		}
		for _, want := range []string{"job/seed ready", "deployment/web ready"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("apply --wait output lacks %q:\n%s", want, out.String())
			}
		}

		e.WriteFile("slow/compose.yaml", "services:\n  web:\n    image: nginx\n")
		r := e.Run("-f", "slow/compose.yaml", "-p", "slow", "bridge", "apply", kc, "--wait", "--timeout=2s")
		if r.Code == 0 || !strings.Contains(r.Stderr, "timed out after 2s waiting for deployment/web") {
			t.Errorf("apply --wait on a Deployment nothing runs: exit %d, stderr %q", r.Code, r.Stderr)
		}
	})

	t.Run("job replaced", func(t *testing.T) {
		// A one-shot service that another waits for is a Job, whose pod template the server
		// refuses to change: apply replaces it.
		e := harness.New(t)
		seed := "services:\n  seed:\n    image: busybox\n    command: [\"echo\", \"one\"]\n    restart: \"no\"\n" +
			"  web:\n    image: nginx\n    depends_on: {seed: {condition: service_completed_successfully}}\n"
		e.WriteFile("jobs/compose.yaml", seed)
		args := []string{"-f", "jobs/compose.yaml", "-p", "jobs", "bridge", "apply", kc}
		e.MustRun(args...)
		e.WriteFile("jobs/compose.yaml", strings.Replace(seed, "one", "two", 1))
		if r := e.MustRun(append(args, "--dry-run=server")...); !strings.Contains(r.Stdout, "job/seed replaced (server dry run)") {
			t.Errorf("dry run of a changed Job:\n%s", r.Stdout)
		}
		r := e.MustRun(args...)
		if !strings.Contains(r.Stdout, "job/seed replaced") {
			t.Errorf("apply of a changed Job:\n%s", r.Stdout)
		}
		u, err := c.dyn.Resource(kubeKinds["Job"]).Namespace("jobs").Get(context.Background(), "seed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cmd, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		if !strings.Contains(fmt.Sprint(cmd), "two") {
			t.Errorf("the Job after apply: %v", cmd)
		}
		if r := e.MustRun(args...); !strings.Contains(r.Stdout, "job/seed applied") {
			t.Errorf("apply of an unchanged Job:\n%s", r.Stdout)
		}
		// No down: without the controllers a namespace never finishes
		// terminating; the cluster goes with the test.
	})

	t.Run("every compose file", func(t *testing.T) {
		e := harness.New(t)
		fixtures := composeFixtures(t)
		type outcome struct {
			skipped  string
			problems []string
		}
		outcomes := make([]outcome, len(fixtures))
		for i, fx := range fixtures {
			e.WriteFile(filepath.Join("fixtures", fmt.Sprintf("kf-%d", i), "compose.yaml"), fx.content)
		}
		// Two at a time: each project is three berth runs and a few dozen
		// requests, and the two cores are shared.
		start := time.Now()
		next := make(chan int)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					skipped, problems := c.checkFixture(e, fmt.Sprintf("kf-%d", i))
					outcomes[i] = outcome{skipped, problems}
				}
			}()
		}
		for i := range fixtures {
			next <- i
		}
		close(next)
		wg.Wait()
		applied, skipped := 0, 0
		for i, o := range outcomes {
			switch {
			case o.skipped != "":
				skipped++
				t.Logf("%s: skipped: %s", fixtures[i].where, o.skipped)
			case len(o.problems) > 0:
				t.Errorf("%s:\n%s", fixtures[i].where, strings.Join(o.problems, "\n"))
			default:
				applied++
			}
		}
		t.Logf("%d compose files applied, %d skipped, in %s", applied, skipped, time.Since(start).Round(time.Millisecond))
		if applied < 2*skipped || applied < 20 {
			t.Errorf("only %d of %d compose files applied", applied, len(fixtures))
		}
	})
}

// checkFixture takes the compose file fixtures/<project>/compose.yaml
// through apply --dry-run=server, apply, apply again and a dry run again,
// the last two changing nothing. A file berth
// does not convert (a test of bad input, one that needs files beside it)
// is skipped, with the reason.
func (c *kubeCluster) checkFixture(e *harness.Env, project string) (skipped string, problems []string) {
	run := func(args ...string) (string, string, int) {
		cmd := e.Command(args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		return out.String(), errb.String(), code
	}
	args := []string{"-f", filepath.Join("fixtures", project, "compose.yaml"), "-p", project, "bridge", "apply", "--kubeconfig=" + c.kubeconfig}
	_, stderr, code := run(append(args, "--dry-run=server")...)
	if code != 0 {
		if !strings.Contains(stderr, "apply project") {
			return strings.TrimSpace(stderr), nil
		}
		return "", []string{"dry run refused: " + stderr}
	}
	if _, err := c.dyn.Resource(namespacesGVR).Get(context.Background(), project, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		problems = append(problems, fmt.Sprintf("namespace %s after the dry run: %v", project, err))
	}
	stdout, stderr, code := run(args...)
	if code != 0 {
		return "", append(problems, "apply refused: "+stderr)
	}
	first, err := c.listObjects(project, project)
	if err != nil {
		return "", append(problems, err.Error())
	}
	if n := strings.Count(stdout, " applied\n"); len(first)+1 != n {
		problems = append(problems, fmt.Sprintf("%d objects on the server, %d applied:\n%s", len(first), n, stdout))
	}
	if _, stderr, code := run(args...); code != 0 {
		return "", append(problems, "second apply refused: "+stderr)
	}
	// A dry run in the namespace that exists now stores nothing either.
	if _, stderr, code := run(append(args, "--dry-run=server")...); code != 0 {
		return "", append(problems, "dry run in the namespace refused: "+stderr)
	}
	again, err := c.listObjects(project, project)
	if err != nil {
		return "", append(problems, err.Error())
	}
	for k, v := range first {
		if again[k] != v {
			problems = append(problems, fmt.Sprintf("a second apply or dry run changed %s:\n%s\n%s", k, v, again[k]))
		}
	}
	if len(again) != len(first) {
		problems = append(problems, fmt.Sprintf("a second apply left %d objects, not %d", len(again), len(first)))
	}
	return "", problems
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
