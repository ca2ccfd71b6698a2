package bridge

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// kustomization is the subset of kustomize's Kustomization this layout
// writes; kustomize's own module would bring its whole dependency tree.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
}

// FileName is the file of o in base/: its kind and name, lowercase.
func FileName(o Object) string {
	return strings.ToLower(kindOf(o)) + "-" + o.GetName() + ".yaml"
}

// Write lays r out under dir: base/ with one file per object and its
// kustomization.yaml, and overlays/<overlay>/ referring to base, where
// cluster-specific patches go.
func Write(r *Result, dir, overlay string) error {
	base := filepath.Join(dir, "base")
	ov := filepath.Join(dir, "overlays", overlay)
	for _, d := range []string{base, ov} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	k := kustomization{APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization"}
	for _, o := range r.Objects {
		data, err := yaml.Marshal(o)
		if err != nil {
			return fmt.Errorf("%s %s: %w", kindOf(o), o.GetName(), err)
		}
		name := FileName(o)
		if err := os.WriteFile(filepath.Join(base, name), data, 0o644); err != nil {
			return err
		}
		k.Resources = append(k.Resources, name)
	}
	if err := writeYAML(filepath.Join(base, "kustomization.yaml"), k); err != nil {
		return err
	}
	return writeYAML(filepath.Join(ov, "kustomization.yaml"), kustomization{
		APIVersion: k.APIVersion, Kind: k.Kind, Namespace: r.Namespace, Resources: []string{"../../base"}})
}

func writeYAML(path string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
