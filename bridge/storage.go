package bridge

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/compose-spec/compose-go/v2/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxConfigMapBytes is the API server's limit on a ConfigMap's or Secret's
// data, less a margin for its metadata.
const maxConfigMapBytes = 1<<20 - 16<<10

func (c *converter) namespace() Object {
	m := c.meta(c.ns, "")
	m.Namespace = ""
	return &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: m}
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// claimName is the claim a named volume's mounts refer to: an external
// volume's existing claim by its name, otherwise the claim created here.
func (c *converter) claimName(key string) string {
	v := c.p.Volumes[key]
	if bool(v.External) && v.Name != "" {
		return dnsLabel(v.Name)
	}
	return dnsLabel(key)
}

// volumes makes a claim per named, non-external volume, sized by
// `x-berth: {size: 5Gi}` on the volume or the default.
func (c *converter) volumes() error {
	keys := sortedKeys(c.p.Volumes)
	for _, key := range keys {
		v := c.p.Volumes[key]
		name := c.name("volume", key)
		if bool(v.External) {
			continue
		}
		size := c.opts.VolumeSize
		if x, ok := v.Extensions["x-berth"].(map[string]any); ok {
			if s, ok := x["size"].(string); ok && s != "" {
				size = s
			}
		}
		q, err := resource.ParseQuantity(size)
		if err != nil {
			return fmt.Errorf("volume %q: size %q: %w", key, size, err)
		}
		if v.Driver != "" && v.Driver != "local" || len(v.DriverOpts) > 0 {
			c.note("volume "+key, "driver and driver_opts dropped (the cluster's default StorageClass is used)")
		}
		pvc := &corev1.PersistentVolumeClaim{
			TypeMeta:   typeMeta("v1", "PersistentVolumeClaim"),
			ObjectMeta: c.meta(name, ""),
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: q},
				},
			},
		}
		addLabels(&pvc.ObjectMeta, v.Labels)
		c.add(pvc)
	}
	return nil
}

// files makes a ConfigMap per compose config and a Secret per compose
// secret, each with one key (the object's name) holding the content.
func (c *converter) files() error {
	for _, key := range sortedKeys(c.p.Configs) {
		f := types.FileObjectConfig(c.p.Configs[key])
		if bool(f.External) {
			continue
		}
		data, err := c.fileContent(f)
		if err != nil {
			return fmt.Errorf("config %q: %w", key, err)
		}
		cm := &corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"),
			ObjectMeta: c.meta(c.name("config", "config-"+key), "")}
		putData(cm, dnsKey(key), data)
		c.add(cm)
	}
	for _, key := range sortedKeys(c.p.Secrets) {
		f := types.FileObjectConfig(c.p.Secrets[key])
		if bool(f.External) {
			continue
		}
		data, err := c.fileContent(f)
		if err != nil {
			return fmt.Errorf("secret %q: %w", key, err)
		}
		c.add(&corev1.Secret{TypeMeta: typeMeta("v1", "Secret"),
			ObjectMeta: c.meta(c.name("secret", "secret-"+key), ""),
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{dnsKey(key): data}})
	}
	return nil
}

func (c *converter) fileContent(f types.FileObjectConfig) ([]byte, error) {
	switch {
	case f.Content != "":
		return []byte(f.Content), nil
	case f.Environment != "":
		return []byte(c.p.Environment[f.Environment]), nil
	case f.File != "":
		data, err := os.ReadFile(f.File)
		if err != nil {
			return nil, err
		}
		if len(data) > maxConfigMapBytes {
			return nil, fmt.Errorf("%s: %d bytes, more than a ConfigMap holds", f.File, len(data))
		}
		return data, nil
	}
	return nil, nil
}

// putData stores text as data and anything else as binaryData.
func putData(cm *corev1.ConfigMap, key string, data []byte) {
	if utf8.Valid(data) {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[key] = string(data)
		return
	}
	if cm.BinaryData == nil {
		cm.BinaryData = map[string][]byte{}
	}
	cm.BinaryData[key] = data
}

// dnsKey makes a ConfigMap key ([-._a-zA-Z0-9]+) of a compose name.
func dnsKey(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch == '-' || ch == '.' || ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// mounts turns a service's volumes, tmpfs, configs and secrets into pod
// volumes and container mounts.
func (c *converter) mounts(s types.ServiceConfig, subject string, pod *corev1.PodSpec, ctr *corev1.Container) {
	add := func(v corev1.Volume, m corev1.VolumeMount) {
		m.Name = v.Name
		pod.Volumes = append(pod.Volumes, v)
		ctr.VolumeMounts = append(ctr.VolumeMounts, m)
	}
	svc := dnsLabel(s.Name)
	for i, v := range s.Volumes {
		vname := fmt.Sprintf("vol-%d", i)
		switch v.Type {
		case types.VolumeTypeVolume:
			src := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
			if v.Source != "" {
				src = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: c.claimName(v.Source), ReadOnly: v.ReadOnly}}
			}
			if v.Volume != nil && v.Volume.Subpath != "" {
				add(corev1.Volume{Name: vname, VolumeSource: src}, corev1.VolumeMount{MountPath: v.Target, ReadOnly: v.ReadOnly, SubPath: v.Volume.Subpath})
				continue
			}
			add(corev1.Volume{Name: vname, VolumeSource: src}, corev1.VolumeMount{MountPath: v.Target, ReadOnly: v.ReadOnly})
		case types.VolumeTypeTmpfs:
			add(tmpfsVolume(vname, v.Tmpfs), corev1.VolumeMount{MountPath: v.Target})
		case types.VolumeTypeBind:
			c.bind(s, subject, svc, vname, v, add)
		default:
			c.note(subject, "volume of type %s at %s dropped", v.Type, v.Target)
		}
	}
	for i, t := range s.Tmpfs {
		target, _, _ := strings.Cut(t, ":")
		add(tmpfsVolume(fmt.Sprintf("tmpfs-%d", i), nil), corev1.VolumeMount{MountPath: target})
	}
	for i, f := range s.Configs {
		target := f.Target
		if target == "" {
			target = "/" + f.Source
		}
		name := "config-" + dnsLabel(f.Source)
		if cfg := c.p.Configs[f.Source]; bool(cfg.External) {
			name = dnsLabel(cfg.Name)
		}
		add(corev1.Volume{Name: fmt.Sprintf("config-%d", i), VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}, DefaultMode: fileMode(f.Mode)}}},
			corev1.VolumeMount{MountPath: target, SubPath: dnsKey(f.Source), ReadOnly: true})
	}
	for i, f := range s.Secrets {
		target := f.Target
		if target == "" {
			target = "/run/secrets/" + f.Source
		} else if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		name := "secret-" + dnsLabel(f.Source)
		if sec := c.p.Secrets[f.Source]; bool(sec.External) {
			name = dnsLabel(sec.Name)
		}
		add(corev1.Volume{Name: fmt.Sprintf("secret-%d", i), VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: name, DefaultMode: fileMode(f.Mode)}}},
			corev1.VolumeMount{MountPath: target, SubPath: dnsKey(f.Source), ReadOnly: true})
	}
}

func fileMode(m *types.FileMode) *int32 {
	if m == nil {
		return nil
	}
	v := int32(*m)
	return &v
}

func tmpfsVolume(name string, t *types.ServiceVolumeTmpfs) corev1.Volume {
	ed := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
	if t != nil && t.Size > 0 {
		q := resource.NewQuantity(int64(t.Size), resource.BinarySI)
		ed.SizeLimit = q
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}}
}

// bind maps a bind mount: a file inside the project directory travels as a
// ConfigMap; anything else exists only on this host, so it is skipped (and
// reported) unless hostPath volumes are allowed.
func (c *converter) bind(s types.ServiceConfig, subject, svc, vname string, v types.ServiceVolumeConfig, add func(corev1.Volume, corev1.VolumeMount)) {
	rel, err := filepath.Rel(c.p.WorkingDir, v.Source)
	inside := err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
	if inside {
		st, err := os.Stat(v.Source)
		if err == nil && st.Mode().IsRegular() {
			if st.Size() > maxConfigMapBytes {
				c.note(subject, "bind %s skipped: %d bytes, more than a ConfigMap holds", rel, st.Size())
				return
			}
			data, err := os.ReadFile(v.Source)
			if err != nil {
				c.note(subject, "bind %s skipped: %v", rel, err)
				return
			}
			name := svc + "-" + vname
			cm := &corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"), ObjectMeta: c.meta(name, svc)}
			key := dnsKey(filepath.Base(v.Source))
			putData(cm, key, data)
			c.add(cm)
			add(corev1.Volume{Name: vname, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: name}}}},
				corev1.VolumeMount{MountPath: v.Target, SubPath: key, ReadOnly: true})
			if !v.ReadOnly {
				c.note(subject, "bind %s mounted read-only (ConfigMap)", rel)
			}
			return
		}
	}
	if !c.opts.AllowHostPath {
		c.note(subject, "host bind %s:%s skipped (--allow-hostpath keeps it)", v.Source, v.Target)
		return
	}
	add(corev1.Volume{Name: vname, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: v.Source}}},
		corev1.VolumeMount{MountPath: v.Target, ReadOnly: v.ReadOnly})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// addLabels copies compose labels that are valid Kubernetes labels and
// keeps every one of them as an annotation.
func addLabels(m *metav1.ObjectMeta, labels types.Labels) {
	for k, v := range labels {
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[k] = v
		if validLabel(k, v) {
			m.Labels[k] = v
		}
	}
}
