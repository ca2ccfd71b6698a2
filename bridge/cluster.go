package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager is the name berth's server-side applies own their fields by.
const FieldManager = "berth"

// ClusterOptions say which cluster to reach, as kubectl's flags do.
type ClusterOptions struct {
	// Kubeconfig is --kubeconfig: the only file read when set.
	Kubeconfig string
	// Context is --context: the kubeconfig context instead of its current one.
	Context string
}

// Cluster is a connection to the API server of one kubeconfig context.
// It speaks through the dynamic client: the objects are the converter's
// typed values, turned into unstructured ones, and the resources of the
// few kinds berth makes are known without asking for discovery.
type Cluster struct {
	Host    string
	Context string
	dyn     dynamic.Interface
}

// KubeconfigPaths lists the kubeconfig files read, in kubectl's order: the
// explicit file alone, else every file of $KUBECONFIG (merged, the first
// to set a value wins), else ~/.kube/config.
func KubeconfigPaths(explicit, env, home string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	var out []string
	for _, p := range filepath.SplitList(env) {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 && home != "" {
		out = []string{filepath.Join(home, ".kube", "config")}
	}
	return out
}

// Connect loads the kubeconfig, picks the context and checks that the API
// server answers, so that a bad file, an unknown context and an
// unreachable cluster each fail here with one line.
func Connect(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	home, _ := os.UserHomeDir()
	paths := KubeconfigPaths(o.Kubeconfig, os.Getenv("KUBECONFIG"), home)
	where := strings.Join(paths, string(filepath.ListSeparator))
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: o.Kubeconfig}
	if o.Kubeconfig == "" {
		rules.Precedence = paths
		if !anyExists(paths) {
			return nil, fmt.Errorf("no kubeconfig found (looked at %s): pass --kubeconfig or set KUBECONFIG", where)
		}
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %s", where, oneLine(err))
	}
	name := o.Context
	if name == "" {
		name = raw.CurrentContext
	}
	if name == "" {
		return nil, fmt.Errorf("kubeconfig %s has no current context: pass --context", where)
	}
	if _, ok := raw.Contexts[name]; !ok {
		return nil, fmt.Errorf("context %q not found in kubeconfig %s", name, where)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s, context %q: %s", where, name, oneLine(err))
	}
	cfg.UserAgent = "berth"
	// The defaults (5 per second, bursts of 10) would pace a project's
	// few dozen objects and the waits' polls for nothing.
	cfg.QPS, cfg.Burst = 50, 100
	if err := ping(ctx, cfg); err != nil {
		return nil, fmt.Errorf("cluster %s (context %q): %w", cfg.Host, name, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s (context %q): %s", cfg.Host, name, oneLine(err))
	}
	return &Cluster{Host: cfg.Host, Context: name, dyn: dyn}, nil
}

func anyExists(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// ping asks the API server for its version with the context's credentials.
func ping(ctx context.Context, cfg *rest.Config) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return errors.New(oneLine(err))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/version", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable: %s", oneLine(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("refused the kubeconfig's credentials (%s)", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("answered %s to GET /version: not a Kubernetes API server?", resp.Status)
	}
	return nil
}

// oneLine folds a multi-line error (kubeconfig parse errors) into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// kinds are the resources of every kind the converter makes; all but the
// Namespace live in the project's namespace.
var kinds = map[string]schema.GroupVersionResource{
	"Namespace":             {Version: "v1", Resource: "namespaces"},
	"ConfigMap":             {Version: "v1", Resource: "configmaps"},
	"Secret":                {Version: "v1", Resource: "secrets"},
	"PersistentVolumeClaim": {Version: "v1", Resource: "persistentvolumeclaims"},
	"NetworkPolicy":         {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	"Service":               {Version: "v1", Resource: "services"},
	"Job":                   {Group: "batch", Version: "v1", Resource: "jobs"},
	"Deployment":            {Group: "apps", Version: "v1", Resource: "deployments"},
}

var podsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// namespacedKinds are the kinds berth makes inside the namespace, in apply
// order.
func namespacedKinds() []string {
	out := make([]string, 0, len(kindOrder))
	for k := range kindOrder {
		if k != "Namespace" {
			out = append(out, k)
		}
	}
	sortKinds(out)
	return out
}

func sortKinds(ks []string) {
	sort.Slice(ks, func(i, j int) bool { return kindOrder[ks[i]] < kindOrder[ks[j]] })
}

func (c *Cluster) resource(kind, ns string) dynamic.ResourceInterface {
	r := c.dyn.Resource(kinds[kind])
	if kind == "Namespace" {
		return r
	}
	return r.Namespace(ns)
}
