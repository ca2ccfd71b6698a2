package volmgr

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

func newManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func names(vs []*Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func projectLabels(project, key string) map[string]string {
	return map[string]string{LabelProject: project, LabelVolume: key, LabelVersion: "2.x"}
}

func TestCreateInspectListRemove(t *testing.T) {
	m := newManager(t)
	v, created, err := m.Ensure(VolumeSpec{Name: "demo_db", Labels: projectLabels("demo", "db")})
	if err != nil || !created {
		t.Fatalf("Ensure = %v, %v", created, err)
	}
	if v.Driver != DriverLocal || v.Scope != "local" || v.Mountpoint != m.DataPath("demo_db") || v.CreatedAt.IsZero() {
		t.Errorf("volume = %+v", v)
	}
	if st, err := os.Stat(v.Mountpoint); err != nil || !st.IsDir() {
		t.Fatalf("mountpoint: %v", err)
	}
	if st := lstat(t, m.Root()); st.Mode&0o777 != 0o700 {
		t.Errorf("volume root mode %o, want 700", st.Mode&0o777)
	}
	// The metadata file is where the brief says, and readable.
	if _, err := os.Stat(filepath.Join(m.Root(), "demo_db", "volume.json")); err != nil {
		t.Fatal(err)
	}

	// Idempotent: the same volume comes back, not created again, and the
	// data stays.
	os.WriteFile(filepath.Join(v.Mountpoint, "keep"), []byte("x"), 0o644)
	v2, created, err := m.Ensure(VolumeSpec{Name: "demo_db", Labels: projectLabels("demo", "db")})
	if err != nil || created || !v2.CreatedAt.Equal(v.CreatedAt) {
		t.Fatalf("second Ensure = %v, %v", created, err)
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "keep")); err != nil {
		t.Fatal("data lost on second create")
	}
	if w := v2.Warning("demo"); w != "" {
		t.Errorf("own project warning %q", w)
	}
	if w := v2.Warning("other"); !strings.Contains(w, `not created for project "other"`) {
		t.Errorf("foreign project warning %q", w)
	}

	if _, err := m.Create(VolumeSpec{Name: "plain"}); err != nil {
		t.Fatal(err)
	}
	pv, _ := m.Inspect("plain")
	if w := pv.Warning("demo"); !strings.Contains(w, "not created by Docker Compose") {
		t.Errorf("unlabelled warning %q", w)
	}

	got, err := m.Inspect("demo_db")
	if err != nil || got.Labels[LabelProject] != "demo" {
		t.Fatalf("Inspect = %+v, %v", got, err)
	}
	all, err := m.List(Filters{})
	if err != nil || !slices.Equal(names(all), []string{"demo_db", "plain"}) {
		t.Fatalf("List = %v, %v", names(all), err)
	}
	byLabel, _ := m.List(Filters{Labels: []string{LabelProject + "=demo"}})
	if !slices.Equal(names(byLabel), []string{"demo_db"}) {
		t.Errorf("label filter = %v", names(byLabel))
	}

	if err := m.Remove("demo_db", false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Inspect("demo_db"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	if err := m.Remove("demo_db", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove missing = %v", err)
	}
	if err := m.Remove("demo_db", true); err != nil {
		t.Errorf("remove -f missing = %v", err)
	}
	// Nothing of berth's own is left behind in the root.
	entries, _ := os.ReadDir(m.Root())
	for _, e := range entries {
		if e.Name() != "plain" && e.Name() != ".lock" {
			t.Errorf("left in root: %s", e.Name())
		}
	}
}

func TestCreateErrors(t *testing.T) {
	m := newManager(t)
	for _, tc := range []struct {
		spec VolumeSpec
		kind error
		msg  string
	}{
		{VolumeSpec{Name: "../etc"}, ErrInvalid, "invalid characters"},
		{VolumeSpec{Name: "a"}, ErrInvalid, "invalid characters"},
		{VolumeSpec{Name: ".hidden"}, ErrInvalid, "invalid characters"},
		{VolumeSpec{Name: "ok", Driver: "rexray"}, ErrUnsupported, `driver "rexray" is unsupported`},
		{VolumeSpec{Name: "ok", DriverOpts: map[string]string{"type": "nfs", "o": "addr=1.2.3.4", "device": ":/x"}}, ErrUnsupported, `type "nfs" is unsupported`},
		{VolumeSpec{Name: "ok", DriverOpts: map[string]string{"type": "none", "o": "bind", "device": "rel/dir"}}, ErrInvalid, "absolute"},
		{VolumeSpec{Name: "ok", DriverOpts: map[string]string{"type": "none", "device": "/x"}}, ErrUnsupported, "o=bind"},
		{VolumeSpec{Name: "ok", DriverOpts: map[string]string{"type": "tmpfs", "o": "size=1m,bogus=1"}}, ErrUnsupported, "bogus"},
		{VolumeSpec{Name: "ok", DriverOpts: map[string]string{"size": "10G"}}, ErrUnsupported, `"size"`},
	} {
		_, err := m.Create(tc.spec)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Create(%+v) = %v, want %v containing %q", tc.spec, err, tc.kind, tc.msg)
		}
	}
	if vs, _ := m.List(Filters{}); len(vs) != 0 {
		t.Errorf("volumes created by failed calls: %v", names(vs))
	}

	// Same name, other driver options: AlreadyExists, not a silent reuse.
	if _, err := m.Create(VolumeSpec{Name: "cache"}); err != nil {
		t.Fatal(err)
	}
	_, err := m.Create(VolumeSpec{Name: "cache", DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs"}})
	if !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("conflicting opts = %v", err)
	}
}

func TestCreateWithoutNameIsAnonymous(t *testing.T) {
	m := newManager(t)
	v, err := m.Create(VolumeSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v.Name) || !v.Anonymous() {
		t.Errorf("unnamed volume = %+v", v)
	}
}

func TestRemoveInUse(t *testing.T) {
	m := newManager(t)
	if _, err := m.Create(VolumeSpec{Name: "shared"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2", "c1"} {
		src, err := m.Use("shared", c)
		if err != nil || src != m.DataPath("shared") {
			t.Fatalf("Use = %q, %v", src, err)
		}
	}
	v, _ := m.Inspect("shared")
	if !slices.Equal(v.Users, []string{"c1", "c2"}) {
		t.Errorf("users = %v", v.Users)
	}
	for _, force := range []bool{false, true} {
		err := m.Remove("shared", force)
		var iu *InUseError
		if !errors.Is(err, ErrInUse) || !errors.As(err, &iu) {
			t.Fatalf("Remove(force=%v) = %v", force, err)
		}
		if err.Error() != "remove shared: volume is in use - [c1, c2]" {
			t.Errorf("message %q", err)
		}
	}
	dangling := true
	if vs, _ := m.List(Filters{Dangling: &dangling}); len(vs) != 0 {
		t.Errorf("in-use volume listed as dangling")
	}
	m.Release("shared", "c1")
	m.Release("shared", "c1") // idempotent
	if err := m.Remove("shared", false); !errors.Is(err, ErrInUse) {
		t.Fatalf("still used by c2: %v", err)
	}
	m.Release("shared", "c2")
	if vs, _ := m.List(Filters{Dangling: &dangling}); len(vs) != 1 {
		t.Errorf("released volume not dangling")
	}
	if err := m.Remove("shared", false); err != nil {
		t.Fatal(err)
	}
	if err := m.Release("shared", "c2"); err != nil {
		t.Errorf("release of a removed volume: %v", err)
	}
}

func TestExternal(t *testing.T) {
	m := newManager(t)
	_, err := m.External("graylog")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("External missing = %v", err)
	}
	want := `external volume "graylog" not found: create it with "berth volume create graylog"`
	if err.Error() != want {
		t.Errorf("message\n got %s\nwant %s", err, want)
	}
	if _, err := m.Inspect("graylog"); !errors.Is(err, ErrNotFound) {
		t.Error("External created the volume")
	}
	if _, err := m.Create(VolumeSpec{Name: "graylog"}); err != nil {
		t.Fatal(err)
	}
	if v, err := m.External("graylog"); err != nil || v.Name != "graylog" {
		t.Errorf("External existing = %v, %v", v, err)
	}
}

func TestRemoveProjectVolumesSkipsExternal(t *testing.T) {
	m := newManager(t)
	mustCreate := func(spec VolumeSpec) {
		t.Helper()
		if _, err := m.Create(spec); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(VolumeSpec{Name: "demo_db", Labels: projectLabels("demo", "db")})
	mustCreate(VolumeSpec{Name: "demo_cache", Labels: projectLabels("demo", "cache")})
	mustCreate(VolumeSpec{Name: "graylog"})                                            // external, made by the user
	mustCreate(VolumeSpec{Name: "other_data", Labels: projectLabels("other", "data")}) // external, another project's
	if _, err := m.Use("demo_cache", "c1"); err != nil {
		t.Fatal(err)
	}

	removed, err := m.RemoveProjectVolumes("demo", []string{"demo_db", "demo_cache", "graylog", "other_data", "demo_missing"})
	if !slices.Equal(removed, []string{"demo_db"}) {
		t.Errorf("removed %v", removed)
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("err = %v, want the in-use demo_cache reported", err)
	}
	left, _ := m.List(Filters{})
	if !slices.Equal(names(left), []string{"demo_cache", "graylog", "other_data"}) {
		t.Errorf("left %v", names(left))
	}
	// An empty project name matches nothing, not the unlabelled volumes.
	if removed, _ := m.RemoveProjectVolumes("", []string{"graylog"}); len(removed) != 0 {
		t.Errorf("removed with empty project: %v", removed)
	}
}

func TestAnonymousVolumes(t *testing.T) {
	m := newManager(t)
	a, err := m.CreateAnonymous("demo", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(a.Name) {
		t.Errorf("name %q", a.Name)
	}
	if v, ok := a.Labels[LabelAnonymous]; !ok || v != "" || a.Labels[LabelProject] != "demo" {
		t.Errorf("labels %v", a.Labels)
	}
	b, _ := m.CreateAnonymous("demo", "c2")
	if _, err := m.Create(VolumeSpec{Name: "demo_db", Labels: projectLabels("demo", "db")}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Use("demo_db", "c1"); err != nil {
		t.Fatal(err)
	}
	// c2 shares c1's anonymous volume (volumes_from): c1's rm -v keeps it.
	if _, err := m.Use(a.Name, "c2"); err != nil {
		t.Fatal(err)
	}

	removed, err := m.ReleaseAll("c1", true)
	if err != nil || len(removed) != 0 {
		t.Fatalf("ReleaseAll(c1) = %v, %v", removed, err)
	}
	if v, _ := m.Inspect("demo_db"); v.InUse() {
		t.Error("demo_db still used by c1")
	}
	removed, err = m.ReleaseAll("c2", true)
	if err != nil || !slices.Equal(removed, []string{b.Name}) {
		t.Fatalf("ReleaseAll(c2) = %v, %v", removed, err)
	}
	// a's owner is c1, gone already: prune picks it up; named volumes stay
	// unless --all.
	pruned, _, err := m.Prune(PruneOptions{})
	if err != nil || !slices.Equal(pruned, []string{a.Name}) {
		t.Fatalf("Prune = %v, %v", pruned, err)
	}
	if _, err := m.Inspect("demo_db"); err != nil {
		t.Fatal("prune without --all removed a named volume")
	}
}

func TestPrune(t *testing.T) {
	m := newManager(t)
	m.Create(VolumeSpec{Name: "keep_me", Labels: map[string]string{"keep": "yes"}})
	m.Create(VolumeSpec{Name: "named"})
	m.Create(VolumeSpec{Name: "busy"})
	m.Use("busy", "c9")
	anon, _ := m.CreateAnonymous("demo", "")
	os.WriteFile(filepath.Join(anon.Mountpoint, "f"), make([]byte, 1000), 0o644)

	removed, size, err := m.Prune(PruneOptions{})
	if err != nil || !slices.Equal(removed, []string{anon.Name}) || size != 1000 {
		t.Fatalf("Prune = %v, %d, %v", removed, size, err)
	}
	removed, _, err = m.Prune(PruneOptions{All: true, Filters: Filters{NotLabels: []string{"keep"}}})
	if err != nil || !slices.Equal(removed, []string{"named"}) {
		t.Fatalf("Prune --all label!=keep = %v, %v", removed, err)
	}
	left, _ := m.List(Filters{})
	if !slices.Equal(names(left), []string{"busy", "keep_me"}) {
		t.Errorf("left %v", names(left))
	}
}

func TestParseFilters(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		args []string
		want Filters
		err  bool
	}{
		{[]string{"label=a=b", "label=c"}, Filters{Labels: []string{"a=b", "c"}}, false},
		{[]string{"label!=keep"}, Filters{NotLabels: []string{"keep"}}, false},
		{[]string{"dangling=true"}, Filters{Dangling: &yes}, false},
		{[]string{"dangling=0"}, Filters{Dangling: &no}, false},
		{[]string{"name=db", "driver=local"}, Filters{Names: []string{"db"}, Driver: "local"}, false},
		{[]string{"all=true"}, Filters{All: true}, false},
		{[]string{"dangling=maybe"}, Filters{}, true},
		{[]string{"colour=red"}, Filters{}, true},
		{[]string{"label"}, Filters{}, true},
	} {
		got, err := ParseFilters(tc.args)
		if (err != nil) != tc.err {
			t.Errorf("ParseFilters(%v) error = %v", tc.args, err)
			continue
		}
		if err != nil {
			continue
		}
		if !slices.Equal(got.Labels, tc.want.Labels) || !slices.Equal(got.NotLabels, tc.want.NotLabels) ||
			!slices.Equal(got.Names, tc.want.Names) || got.Driver != tc.want.Driver || got.All != tc.want.All ||
			(got.Dangling == nil) != (tc.want.Dangling == nil) || (got.Dangling != nil && *got.Dangling != *tc.want.Dangling) {
			t.Errorf("ParseFilters(%v) = %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

// Two berth processes creating and using volumes at once must not lose an
// update of volume.json: the root's flock serialises them.
func TestConcurrentUse(t *testing.T) {
	m := newManager(t)
	m.Create(VolumeSpec{Name: "shared"})
	// A second Manager on the same root stands for another process.
	m2, _ := New(m.Root())
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mm := m
			if i%2 == 1 {
				mm = m2
			}
			if _, err := mm.Use("shared", "c"+string(rune('a'+i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	v, _ := m.Inspect("shared")
	if len(v.Users) != 20 {
		t.Errorf("users = %d, want 20", len(v.Users))
	}
}

func TestBequeath(t *testing.T) {
	m := newManager(t)
	a, err := m.CreateAnonymous("demo", "old")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateAnonymous("other", "x"); err != nil {
		t.Fatal(err)
	}
	vols := map[string]string{"/data": a.Name}
	if err := m.Bequeath(vols, "app", 2); err != nil {
		t.Fatal(err)
	}
	// Still used by the old container: nothing to take yet.
	if got, _ := m.Bequeathed("demo", "app", 2); len(got) != 0 {
		t.Errorf("bequeathed while in use: %v", got)
	}
	if _, err := m.ReleaseAll("old", false); err != nil {
		t.Fatal(err)
	}
	for _, miss := range []struct {
		project, service string
		n                int
	}{{"demo", "app", 1}, {"demo", "web", 2}, {"other", "app", 2}} {
		if got, _ := m.Bequeathed(miss.project, miss.service, miss.n); len(got) != 0 {
			t.Errorf("Bequeathed(%v) = %v", miss, got)
		}
	}
	got, err := m.Bequeathed("demo", "app", 2)
	if err != nil || got["/data"] != a.Name || len(got) != 1 {
		t.Fatalf("Bequeathed = %v, %v", got, err)
	}
	if err := m.Settle(got); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Bequeathed("demo", "app", 2); len(got) != 0 {
		t.Errorf("bequeathed after Settle: %v", got)
	}
	v, _ := m.Inspect(a.Name)
	if v.Heir != nil {
		t.Errorf("heir kept after Settle: %+v", v.Heir)
	}
}
