package volmgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/project/model"
)

type svcVolume = model.VolumeMount

func TestPlanMounts(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists")
	must(t, os.Mkdir(existing, 0o755))
	home := filepath.Join(dir, "home")
	root := "/var/lib/berth/volumes"
	prefix := func(k string) string { return "demo_" + k }

	for _, tc := range []struct {
		name    string
		vol     svcVolume
		want    Mount
		err     string
		created string // host path the plan must have created
	}{
		{
			name:    "short bind, missing host path created",
			vol:     svcVolume{Type: "bind", Source: filepath.Join(dir, "new/deep"), Target: "/app", HasBind: true, CreateHostPath: true},
			want:    Mount{Source: filepath.Join(dir, "new/deep"), Destination: "/app", Type: "bind", Options: []string{"rbind", "rprivate"}},
			created: filepath.Join(dir, "new/deep"),
		},
		{
			name: "long bind, missing host path",
			vol:  svcVolume{Type: "bind", Source: filepath.Join(dir, "absent"), Target: "/app"},
			err:  "bind source path does not exist: " + filepath.Join(dir, "absent"),
		},
		{
			name:    "long bind with create_host_path",
			vol:     svcVolume{Type: "bind", Source: filepath.Join(dir, "made"), Target: "/app", HasBind: true, CreateHostPath: true},
			want:    Mount{Source: filepath.Join(dir, "made"), Destination: "/app", Type: "bind", Options: []string{"rbind", "rprivate"}},
			created: filepath.Join(dir, "made"),
		},
		{
			name: "bind read-only",
			vol:  svcVolume{Type: "bind", Source: existing, Target: "/etc/app/", ReadOnly: true},
			want: Mount{Source: existing, Destination: "/etc/app", Type: "bind", Options: []string{"rbind", "rprivate", "ro"}},
		},
		{
			name: "bind propagation, consistency and selinux accepted",
			vol:  svcVolume{Type: "bind", Source: existing, Target: "/mnt", Consistency: "cached", HasBind: true, Propagation: "rshared", SELinux: "z"},
			want: Mount{Source: existing, Destination: "/mnt", Type: "bind", Options: []string{"rbind", "rshared"}},
		},
		{
			name: "bind bad propagation",
			vol:  svcVolume{Type: "bind", Source: existing, Target: "/mnt", HasBind: true, Propagation: "sideways"},
			err:  `invalid propagation "sideways"`,
		},
		{
			name: "bind not recursive",
			vol:  svcVolume{Type: "bind", Source: existing, Target: "/mnt", HasBind: true, Recursive: "disabled"},
			want: Mount{Source: existing, Destination: "/mnt", Type: "bind", Options: []string{"bind", "rprivate"}},
		},
		{
			name:    "tilde expanded",
			vol:     svcVolume{Type: "bind", Source: "~/src", Target: "/src", HasBind: true, CreateHostPath: true},
			want:    Mount{Source: filepath.Join(home, "src"), Destination: "/src", Type: "bind", Options: []string{"rbind", "rprivate"}},
			created: filepath.Join(home, "src"),
		},
		{
			name: "relative bind refused",
			vol:  svcVolume{Type: "bind", Source: "./src", Target: "/src"},
			err:  "must be absolute",
		},
		{
			name: "tmpfs size and mode",
			vol:  svcVolume{Type: "tmpfs", Target: "/run/cache", TmpfsSize: 64 << 20, TmpfsMode: 0o1770},
			want: Mount{Source: "tmpfs", Destination: "/run/cache", Type: "tmpfs", Options: []string{"size=67108864", "mode=1770"}},
		},
		{
			name: "tmpfs read-only, no options",
			vol:  svcVolume{Type: "tmpfs", Target: "/ro", ReadOnly: true},
			want: Mount{Source: "tmpfs", Destination: "/ro", Type: "tmpfs", Options: []string{"ro"}},
		},
		{
			name: "named volume",
			vol:  svcVolume{Type: "volume", Source: "db", Target: "/var/lib/postgresql/data"},
			want: Mount{Source: root + "/demo_db/_data", Destination: "/var/lib/postgresql/data", Type: "bind", Options: []string{"rbind", "rprivate"}, CopyUp: true, Volume: "demo_db"},
		},
		{
			name: "named volume nocopy, read-only",
			vol:  svcVolume{Type: "volume", Source: "db", Target: "/data", ReadOnly: true, NoCopy: true},
			want: Mount{Source: root + "/demo_db/_data", Destination: "/data", Type: "bind", Options: []string{"rbind", "rprivate", "ro"}, Volume: "demo_db"},
		},
		{
			name: "named volume subpath",
			vol:  svcVolume{Type: "volume", Source: "db", Target: "/conf", Subpath: "etc/app"},
			want: Mount{Source: root + "/demo_db/_data", Destination: "/conf", Type: "bind", Options: []string{"rbind", "rprivate"}, Volume: "demo_db", Subpath: "etc/app"},
		},
		{
			name: "anonymous volume",
			vol:  svcVolume{Type: "volume", Target: "/data"},
			want: Mount{Destination: "/data", Type: "bind", Options: []string{"rbind", "rprivate"}, CopyUp: true, Anonymous: true},
		},
		{
			name: "image volume unsupported",
			vol:  svcVolume{Type: "image", Source: "alpine", Target: "/img"},
			err:  "unsupported",
		},
		{
			name: "relative target",
			vol:  svcVolume{Type: "volume", Source: "db", Target: "data"},
			err:  "must be absolute",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanMounts(PlanInput{VolumesRoot: root, Volumes: []svcVolume{tc.vol}, VolumeName: prefix, HomeDir: home})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !mountEqual(got[0], tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			if tc.created != "" {
				if st, err := os.Stat(tc.created); err != nil || !st.IsDir() {
					t.Errorf("host path not created: %v", err)
				}
			}
		})
	}
}

func mountEqual(a, b Mount) bool {
	return a.Source == b.Source && a.Destination == b.Destination && a.Type == b.Type &&
		slices.Equal(a.Options, b.Options) && a.CopyUp == b.CopyUp && a.Volume == b.Volume &&
		a.Anonymous == b.Anonymous && a.Subpath == b.Subpath
}

func TestPlanMountsMissingBindIsNotExist(t *testing.T) {
	_, err := PlanMounts(PlanInput{Volumes: []svcVolume{{Type: "bind", Source: "/nonexistent/berth", Target: "/x"}}})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat("/nonexistent/berth"); err == nil {
		t.Error("long syntax created the host path")
	}
}

func TestPlanMountsVolumesFrom(t *testing.T) {
	dir := t.TempDir()
	from := []Mount{
		{Source: "/v/demo_db/_data", Destination: "/data", Type: "bind", Options: []string{"rbind", "rprivate"}, Volume: "demo_db", CopyUp: true},
		{Source: dir, Destination: "/conf", Type: "bind", Options: []string{"rbind", "rprivate", "ro"}},
		{Source: "tmpfs", Destination: "/tmp", Type: "tmpfs"},
		{Source: "/v/abc/_data", Destination: "/anon", Type: "bind", Options: []string{"rbind", "rprivate"}, Volume: "abc", Anonymous: true},
	}
	got, err := PlanMounts(PlanInput{
		VolumesRoot: "/v",
		VolumesFrom: []VolumesFrom{{Mounts: from, Mode: "ro"}},
		Volumes:     []svcVolume{{Type: "bind", Source: dir, Target: "/conf"}},
	})
	must(t, err)
	want := []Mount{
		{Source: "/v/demo_db/_data", Destination: "/data", Type: "bind", Options: []string{"rbind", "rprivate", "ro"}, Volume: "demo_db"},
		{Source: dir, Destination: "/conf", Type: "bind", Options: []string{"rbind", "rprivate"}}, // the service's own mount wins
		{Source: "/v/abc/_data", Destination: "/anon", Type: "bind", Options: []string{"rbind", "rprivate", "ro"}, Volume: "abc"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if !mountEqual(got[i], want[i]) {
			t.Errorf("mount %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if from[0].Options[len(from[0].Options)-1] == "ro" {
		t.Error("PlanMounts changed its input")
	}
	// rw on a read-only source makes it writable; "" keeps its mode.
	got, _ = PlanMounts(PlanInput{VolumesFrom: []VolumesFrom{{Mounts: from[1:2], Mode: "rw"}}})
	if got[0].ReadOnly() {
		t.Error("rw kept ro")
	}
	got, _ = PlanMounts(PlanInput{VolumesFrom: []VolumesFrom{{Mounts: from[1:2]}}})
	if !got[0].ReadOnly() {
		t.Error("inherited mode lost")
	}
	_, err = PlanMounts(PlanInput{Volumes: []svcVolume{{Type: "tmpfs", Target: "/a"}, {Type: "volume", Target: "/a/"}}})
	if err == nil || !strings.Contains(err.Error(), "duplicate mount point: /a") {
		t.Errorf("duplicate = %v", err)
	}
}

// The rules above, checked against what the project loader (compose-go, then
// the model) actually produces from a compose file: short syntax creates, long syntax without a bind block does
// not, a bind block defaults create_host_path to true.
func TestPlanMountsFromComposeFile(t *testing.T) {
	dir := t.TempDir()
	yaml := `
services:
  app:
    image: busybox
    volumes:
      - ./short:/short
      - ./ro:/ro:ro
      - data:/data:nocopy
      - /anon
      - type: bind
        source: ./long
        target: /long
        bind:
          propagation: rslave
      - type: tmpfs
        target: /cache
        tmpfs:
          size: 1m
          mode: 0700
  strict:
    image: busybox
    volumes:
      - type: bind
        source: ./absent
        target: /absent
volumes:
  data: {}
`
	must(t, os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yaml), 0o644))
	p, err := project.Load(context.Background(), project.Options{
		Files: []string{filepath.Join(dir, "compose.yaml")}, Name: "demo", WorkDir: dir, Environ: []string{},
	})
	must(t, err)
	m, err := p.Model()
	must(t, err)
	volumes := func(name string) []model.VolumeMount {
		svc, ok := m.Service(name)
		if !ok {
			t.Fatalf("no service %s", name)
		}
		return svc.Volumes
	}
	got, err := PlanMounts(PlanInput{VolumesRoot: "/v", Volumes: volumes("app"), VolumeName: func(k string) string { return m.Volumes[k].Name }})
	must(t, err)
	want := []Mount{
		{Source: filepath.Join(dir, "short"), Destination: "/short", Type: "bind", Options: []string{"rbind", "rprivate"}},
		{Source: filepath.Join(dir, "ro"), Destination: "/ro", Type: "bind", Options: []string{"rbind", "rprivate", "ro"}},
		{Source: "/v/demo_data/_data", Destination: "/data", Type: "bind", Options: []string{"rbind", "rprivate"}, Volume: "demo_data"},
		{Destination: "/anon", Type: "bind", Options: []string{"rbind", "rprivate"}, CopyUp: true, Anonymous: true},
		{Source: filepath.Join(dir, "long"), Destination: "/long", Type: "bind", Options: []string{"rbind", "rslave"}},
		{Source: "tmpfs", Destination: "/cache", Type: "tmpfs", Options: []string{"size=1048576", "mode=0700"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if !mountEqual(got[i], want[i]) {
			t.Errorf("mount %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	_, err = PlanMounts(PlanInput{VolumesRoot: "/v", Volumes: volumes("strict")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("long syntax, missing path: %v", err)
	}
}
