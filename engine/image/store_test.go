package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/sys/mountinfo"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/engine/image/dockerconfig"
	"github.com/berthrun/berth/internal/testimage"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mknod, chown, overlayfs)")
	}
}

func newStore(t testing.TB) *image.Store {
	t.Helper()
	needRoot(t)
	s, err := image.Open(filepath.Join(t.TempDir(), "image"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// isolateDockerConfig points DOCKER_CONFIG at an empty temp dir.
func isolateDockerConfig(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	return dir
}

func busybox(t testing.TB, opts ...testimage.Option) v1.Image {
	t.Helper()
	img, err := testimage.Busybox(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digests(t testing.TB, img v1.Image) (id, manifest string) {
	t.Helper()
	cn, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	md, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return cn.String(), md.String()
}

func layerBlobGets(t testing.TB, reg *testimage.Registry, img v1.Image) map[string]int {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, l := range layers {
		d, _ := l.Digest()
		out[d.String()] = 0
		for _, q := range reg.Requests() {
			if strings.HasPrefix(q, "GET ") && strings.HasSuffix(q, "/blobs/"+d.String()) {
				out[d.String()]++
			}
		}
	}
	return out
}

func TestPullFromRegistry(t *testing.T) {
	isolateDockerConfig(t)
	ctx := context.Background()
	reg := testimage.StartRegistry(t)
	img := busybox(t,
		testimage.WithFile("srv/index.html", 0o644, "hello\n"),
		testimage.WithConfig(func(c *v1.Config) {
			c.Entrypoint = []string{"/bin/sh", "-c"}
			c.Cmd = []string{"httpd -f -p 80"}
			c.Env = append(c.Env, "GREETING=hi")
			c.WorkingDir = "/srv"
			c.User = "app"
			c.ExposedPorts = map[string]struct{}{"80/tcp": {}}
			c.Volumes = map[string]struct{}{"/data": {}}
			c.Labels = map[string]string{"org.example": "yes"}
			c.StopSignal = "SIGQUIT"
			c.Healthcheck = &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: 2 * time.Second, Retries: 3}
		}))
	wantID, wantManifest := digests(t, img)
	ref, err := reg.Push(ctx, "test/busybox:1", img)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	var events []image.Progress
	var mu sync.Mutex
	res, err := s.Pull(ctx, ref, image.PullOptions{Progress: func(p image.Progress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Image
	if got.ID != wantID || got.ManifestDigest != wantManifest {
		t.Errorf("pulled ID %s manifest %s, want %s %s", got.ID, got.ManifestDigest, wantID, wantManifest)
	}
	if res.UpToDate {
		t.Error("first pull reported up to date")
	}
	c := got.Config
	if !slices.Equal(c.Cmd, []string{"httpd -f -p 80"}) || !slices.Equal(c.Entrypoint, []string{"/bin/sh", "-c"}) ||
		c.WorkingDir != "/srv" || c.User != "app" || !slices.Contains(c.Env, "GREETING=hi") ||
		!slices.Equal(c.ExposedPorts, []string{"80/tcp"}) || !slices.Equal(c.Volumes, []string{"/data"}) ||
		c.Labels["org.example"] != "yes" || c.StopSignal != "SIGQUIT" ||
		c.Healthcheck == nil || c.Healthcheck.Interval != 2*time.Second || c.Healthcheck.Retries != 3 {
		t.Errorf("config not carried over: %+v", c)
	}
	if len(got.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(got.Layers))
	}
	if fi, err := os.Stat(filepath.Join(s.LayerDir(got.Layers[0].DiffID), "bin/busybox")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/busybox in the base layer: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.LayerDir(got.Layers[1].DiffID), "srv/index.html")); err != nil || string(b) != "hello\n" {
		t.Errorf("srv/index.html: %q %v", b, err)
	}
	if len(events) == 0 {
		t.Error("no progress events")
	}

	// By its name, its familiar repo and ID prefix.
	for _, r := range []string{ref, got.ID, got.ID[7:19], reg.Host + "/test/busybox@" + wantManifest} {
		if g, err := s.Image(r); err != nil || g.ID != wantID {
			t.Errorf("Image(%q) = %v, %v", r, g, err)
		}
	}

	// Pulling again downloads nothing.
	reg.Reset()
	res, err = s.Pull(ctx, ref, image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.UpToDate || res.Image.ID != wantID {
		t.Errorf("second pull: up to date %v, ID %s", res.UpToDate, res.Image.ID)
	}
	if n := reg.BlobGets(); n != 0 {
		t.Errorf("second pull fetched %d blobs: %v", n, reg.Requests())
	}

	// The same image under another name: only the config is fetched.
	if _, err := reg.Push(ctx, "test/other:2", img); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	if _, err := s.Pull(ctx, reg.Host+"/test/other:2", image.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	for d, n := range layerBlobGets(t, reg, img) {
		if n != 0 {
			t.Errorf("layer %s fetched %d times for an image whose layers are stored", d, n)
		}
	}
	if g, _ := s.Image(ref); len(g.RepoTags) != 2 {
		t.Errorf("RepoTags = %v", g.RepoTags)
	}
}

func TestPullNotFound(t *testing.T) {
	isolateDockerConfig(t)
	reg := testimage.StartRegistry(t)
	s := newStore(t)
	_, err := s.Pull(context.Background(), reg.Host+"/nope:latest", image.PullOptions{})
	if !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("pull of a missing image: %v", err)
	}
	_, err = s.Image("nope")
	var nf *image.NotFoundError
	if !errors.Is(err, image.ErrNotFound) || !errors.As(err, &nf) || err.Error() != "No such image: nope" {
		t.Fatalf("Image(nope) = %v", err)
	}
}

func TestPullMultiArch(t *testing.T) {
	isolateDockerConfig(t)
	ctx := context.Background()
	reg := testimage.StartRegistry(t)
	amd := busybox(t, testimage.WithEnv("ARCH=amd64"))
	arm, err := mutate.ConfigFile(amd, func() *v1.ConfigFile {
		cf, _ := amd.ConfigFile()
		cf = cf.DeepCopy()
		cf.Architecture = "arm64"
		cf.Config.Env = []string{"ARCH=arm64"}
		return cf
	}())
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref, err := reg.PushIndex(ctx, "multi:latest", idx)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	res, err := s.Pull(ctx, ref, image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := digests(t, amd)
	if res.Image.ID != wantID || res.Image.Architecture != "amd64" || !slices.Contains(res.Image.Config.Env, "ARCH=amd64") {
		t.Errorf("picked %s (%s), want the amd64 image %s", res.Image.ID, res.Image.Architecture, wantID)
	}
	idxDigest, _ := idx.Digest()
	if res.Digest != idxDigest.String() || !slices.Contains(res.Image.RepoDigests, reg.Host+"/multi@"+idxDigest.String()) {
		t.Errorf("repo digests %v, want the index digest %s", res.Image.RepoDigests, idxDigest)
	}
}

func TestPullWithLogin(t *testing.T) {
	cfgDir := isolateDockerConfig(t)
	ctx := context.Background()
	reg := testimage.StartRegistry(t, testimage.WithBasicAuth("alice", "s3cret"))
	img := busybox(t)
	ref, err := reg.Push(ctx, "private/app:1", img, authFor("alice", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	if _, err := s.Pull(ctx, ref, image.PullOptions{}); err == nil || !strings.Contains(err.Error(), "login") {
		t.Fatalf("pull without credentials: %v", err)
	}
	if err := dockerconfig.Login(ctx, reg.Host, "alice", "wrong", false, nil); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "config.json")); err == nil {
		t.Fatal("a failed login wrote config.json")
	}
	if err := dockerconfig.Login(ctx, reg.Host, "alice", "s3cret", false, nil); err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Auths map[string]struct{ Auth string }
	}
	data, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	if got := cf.Auths[reg.Host].Auth; got != base64.StdEncoding.EncodeToString([]byte("alice:s3cret")) {
		t.Fatalf("config.json auths[%s] = %q", reg.Host, got)
	}
	res, err := s.Pull(ctx, ref, image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := digests(t, img); res.Image.ID != id {
		t.Errorf("pulled %s, want %s", res.Image.ID, id)
	}
	if ok, err := dockerconfig.Remove(reg.Host); !ok || err != nil {
		t.Fatalf("logout: %v %v", ok, err)
	}
	if ok, _ := dockerconfig.Remove(reg.Host); ok {
		t.Fatal("second logout found credentials")
	}
}

func TestConcurrentPullsUnpackOnce(t *testing.T) {
	isolateDockerConfig(t)
	ctx := context.Background()
	reg := testimage.StartRegistry(t)
	img := busybox(t, testimage.WithFile("a", 0o644, "a"), testimage.WithLayer(testimage.File("b", 0o644, "b")))
	ref, err := reg.Push(ctx, "conc:latest", img)
	if err != nil {
		t.Fatal(err)
	}
	s1 := newStore(t)
	s2, err := image.Open(s1.Root()) // a second handle, as another berth process would have
	if err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			_, errs[i] = s.Pull(ctx, ref, image.PullOptions{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for d, n := range layerBlobGets(t, reg, img) {
		if n != 1 {
			t.Errorf("layer %s fetched %d times by concurrent pulls, want 1", d, n)
		}
	}
}

func TestImportSaveLoad(t *testing.T) {
	ctx := context.Background()
	rootfs, err := testimage.BusyboxTar(testimage.WithFile("etc/motd", 0o644, "hi\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarPath, rootfs, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	imp, err := s.Import(ctx, tarPath, "imported:v1", image.ImportOptions{Changes: []string{
		`CMD ["sh", "-c", "echo hi"]`,
		`ENTRYPOINT /bin/env`,
		`ENV A=1 B="two words"`,
		`ENV LEGACY some value`,
		`WORKDIR /srv`,
		`USER app`,
		`EXPOSE 80 53/udp`,
		`LABEL a=b`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := imp.Config
	if !slices.Equal(c.Cmd, []string{"sh", "-c", "echo hi"}) || !slices.Equal(c.Entrypoint, []string{"/bin/sh", "-c", "/bin/env"}) ||
		!slices.Equal(c.Env, []string{"A=1", "B=two words", "LEGACY=some value"}) || c.WorkingDir != "/srv" || c.User != "app" ||
		!slices.Equal(c.ExposedPorts, []string{"53/udp", "80/tcp"}) || c.Labels["a"] != "b" {
		t.Errorf("import config: %+v", c)
	}
	if len(imp.Layers) != 1 || !slices.Equal(imp.RepoTags, []string{"docker.io/library/imported:v1"}) {
		t.Errorf("import: %d layers, tags %v", len(imp.Layers), imp.RepoTags)
	}

	archive := filepath.Join(dir, "saved.tar")
	if err := s.SaveFile(ctx, archive, "imported:v1"); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t)
	loaded, err := s2.Load(ctx, archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 {
		t.Fatalf("loaded %d images", len(loaded))
	}
	l := loaded[0]
	if l.ID != imp.ID || l.ManifestDigest != imp.ManifestDigest || l.Layers[0] != imp.Layers[0] {
		t.Errorf("round trip changed digests:\nimport %s %s %+v\nload   %s %s %+v", imp.ID, imp.ManifestDigest, imp.Layers, l.ID, l.ManifestDigest, l.Layers)
	}
	if !slices.Equal(l.RepoTags, imp.RepoTags) {
		t.Errorf("loaded tags %v, want %v", l.RepoTags, imp.RepoTags)
	}
	// Save by ID: untagged.
	byID := filepath.Join(dir, "byid.tar")
	if err := s.SaveFile(ctx, byID, imp.ID); err != nil {
		t.Fatal(err)
	}
	s3 := newStore(t)
	loaded, err = s3.Load(ctx, byID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if loaded[0].ID != imp.ID || len(loaded[0].RepoTags) != 0 {
		t.Errorf("load of an untagged save: %s %v", loaded[0].ID, loaded[0].RepoTags)
	}
}

func TestLoadArchiveFormats(t *testing.T) {
	ctx := context.Background()
	img := busybox(t, testimage.WithFile("x", 0o644, "x"))
	wantID, wantManifest := digests(t, img)
	dir := t.TempDir()

	docker := filepath.Join(dir, "docker.tar")
	if err := testimage.WriteDockerArchive(docker, "example.com/team/app:1.0", img); err != nil {
		t.Fatal(err)
	}
	oci := filepath.Join(dir, "oci.tar")
	if err := testimage.WriteOCIArchive(oci, "example.com/team/app:1.0", img); err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(dir, "legacy.tar")
	writeUncompressedDockerArchive(t, legacy, "legacy:1", img)
	// `docker save | gzip`: the whole archive compressed.
	raw, err := os.ReadFile(docker)
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(raw)
	zw.Close()
	dockerGz := filepath.Join(dir, "docker.tar.gz")
	if err := os.WriteFile(dockerGz, zipped.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path, tag    string
		sameManifest bool
	}{
		{docker, "example.com/team/app:1.0", true},
		{dockerGz, "example.com/team/app:1.0", true},
		{oci, "example.com/team/app:1.0", true},
		{legacy, "docker.io/library/legacy:1", false}, // uncompressed layers: another manifest, same image
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			s := newStore(t)
			imgs, err := s.Load(ctx, tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].ID != wantID || !slices.Equal(imgs[0].RepoTags, []string{tc.tag}) {
				t.Fatalf("loaded %+v, want ID %s tag %s", imgs, wantID, tc.tag)
			}
			if tc.sameManifest && imgs[0].ManifestDigest != wantManifest {
				t.Errorf("manifest %s, want %s", imgs[0].ManifestDigest, wantManifest)
			}
			if _, err := os.Stat(filepath.Join(s.LayerDir(imgs[0].Layers[1].DiffID), "x")); err != nil {
				t.Error(err)
			}
		})
	}
}

// writeUncompressedDockerArchive writes what `docker save` wrote for years:
// manifest.json, the config, and each layer as an uncompressed layer.tar.
func writeUncompressedDockerArchive(t *testing.T, path, tag string, img v1.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := img.RawConfigFile()
	cn, _ := img.ConfigName()
	add(cn.Hex+".json", cfg)
	layers, _ := img.Layers()
	var names []string
	for _, l := range layers {
		d, _ := l.DiffID()
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		b := make([]byte, 1<<16)
		for {
			n, err := rc.Read(b)
			buf.Write(b[:n])
			if err != nil {
				break
			}
		}
		rc.Close()
		name := d.Hex + "/layer.tar"
		add(name, []byte(buf.String()))
		names = append(names, name)
	}
	m, _ := json.Marshal([]map[string]any{{"Config": cn.Hex + ".json", "RepoTags": []string{tag}, "Layers": names}})
	add("manifest.json", m)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOverlayRootfs(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	img, err := testimage.Image(v1.Config{Cmd: []string{"sh"}},
		[]testimage.Entry{
			testimage.File("etc/keep", 0o644, "keep"),
			testimage.File("etc/gone", 0o644, "gone"),
			testimage.File("data/old", 0o644, "old"),
			testimage.File("data/sub/older", 0o644, "older"),
		},
		[]testimage.Entry{
			testimage.Dir("etc/", 0o755),
			testimage.Whiteout("etc/gone"),
			testimage.Dir("data/", 0o755),
			testimage.Opaque("data"),
			testimage.File("data/new", 0o644, "new"),
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	if err := testimage.WriteDockerArchive(archive, "overlay:test", img); err != nil {
		t.Fatal(err)
	}
	// Overlay separates its options with "," and ":": the store path has both.
	s, err := image.Open(filepath.Join(t.TempDir(), "odd,path:name", "image"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, archive, nil); err != nil {
		t.Fatal(err)
	}
	const cid = "c0ffee"
	t.Cleanup(func() {
		if err := s.RemoveRootfs(cid); err != nil {
			t.Error(err)
		}
	})
	root, err := s.Mount(ctx, cid, "overlay:test")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Mount(ctx, cid, "overlay:test"); err != nil || again != root {
		t.Fatalf("second Mount = %q, %v", again, err)
	}
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(root, p))
		return err == nil
	}
	for p, want := range map[string]bool{
		"etc/keep": true, "etc/gone": false, "data/new": true, "data/old": false, "data/sub": false,
	} {
		if got := exists(p); got != want {
			t.Errorf("%s exists = %v, want %v", p, got, want)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/written"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "upper/etc/written")); err != nil {
		t.Errorf("write did not land in the upper dir: %v", err)
	}
	rec, _ := s.Image("overlay:test")
	for _, l := range rec.Layers {
		if _, err := os.Stat(filepath.Join(s.LayerDir(l.DiffID), "etc/written")); err == nil {
			t.Error("a container write reached a shared layer")
		}
	}
	if err := s.Unmount(cid); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount(cid); err != nil {
		t.Fatalf("second Unmount: %v", err)
	}
	if ok, _ := mountinfo.Mounted(root); ok {
		t.Fatal("still mounted after Unmount")
	}
	// Mount again: the container's writes are still there.
	if _, err := s.Mount(ctx, cid, "overlay:test"); err != nil {
		t.Fatal(err)
	}
	if !exists("etc/written") {
		t.Error("upper layer lost across remount")
	}
	if err := s.RemoveRootfs(cid); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRootfs(cid); err != nil {
		t.Fatalf("second RemoveRootfs: %v", err)
	}
	if ok, _ := mountinfo.Mounted(root); ok {
		t.Fatal("still mounted after RemoveRootfs")
	}
	if _, err := os.Stat(filepath.Dir(root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container dir left: %v", err)
	}
}

func TestMountManyLayers(t *testing.T) {
	ctx := context.Background()
	// A long store path and many layers make the lowerdir option exceed a page.
	needRoot(t)
	root := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 6), "image")
	s, err := image.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	const n = 90
	var layers [][]testimage.Entry
	for i := range n {
		layers = append(layers, []testimage.Entry{testimage.File("layers/"+strings.Repeat("f", 1+i%7)+string(rune('a'+i%26))+"-"+strconv.Itoa(i), 0o644, strconv.Itoa(i))})
	}
	img, err := testimage.Image(v1.Config{}, layers...)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "many.tar")
	if err := testimage.WriteDockerArchive(archive, "many:layers", img); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, archive, nil); err != nil {
		t.Fatal(err)
	}
	const cid = "many"
	t.Cleanup(func() {
		if err := s.RemoveRootfs(cid); err != nil {
			t.Error(err)
		}
	})
	wd, _ := os.Getwd()
	mnt, err := s.Mount(ctx, cid, "many:layers")
	if err != nil {
		t.Fatal(err)
	}
	if links, _ := os.ReadDir(filepath.Join(root, "l")); len(links) == 0 {
		t.Error("the mount did not go through short layer names")
	}
	if now, _ := os.Getwd(); now != wd {
		t.Errorf("Mount changed the working directory to %s", now)
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != n {
		t.Errorf("%d files visible, want %d", len(ents), n)
	}
}

func authFor(user, pass string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
}

func TestRemoveAndPrune(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t)
	load := func(ref string, img v1.Image) *image.Image {
		t.Helper()
		p := filepath.Join(dir, strings.ReplaceAll(ref, ":", "_")+".tar")
		if err := testimage.WriteDockerArchive(p, ref, img); err != nil {
			t.Fatal(err)
		}
		imgs, err := s.Load(ctx, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return imgs[0]
	}
	a := load("a:1", busybox(t, testimage.WithFile("a", 0o644, "a")))
	b := load("b:1", busybox(t, testimage.WithFile("b", 0o644, "b")))
	if err := s.Tag("a:1", "a:2"); err != nil {
		t.Fatal(err)
	}

	// Two tags: removing one only untags.
	rm, err := s.Remove("a:2", false)
	if err != nil || len(rm) != 1 || rm[0].Untagged != "docker.io/library/a:2" {
		t.Fatalf("rm a:2 = %+v, %v", rm, err)
	}
	// In use: refused without force.
	if _, err := s.Use("ctr1", "a:1"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Remove("a:1", false)
	if !errors.Is(err, image.ErrInUse) {
		t.Fatalf("rm of an image in use: %v", err)
	}
	if _, _, err := s.Prune(true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image("a:1"); err != nil {
		t.Fatalf("prune -a removed an image in use: %v", err)
	}
	if _, err := s.Image("b:1"); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("prune -a kept an unused image: %v", err)
	}
	// Forced: untagged, kept for its container.
	if _, err := s.Remove("a:1", true); err != nil {
		t.Fatal(err)
	}
	if img, err := s.Image(a.ID); err != nil || len(img.RepoTags) != 0 {
		t.Fatalf("forced rm of an image in use: %+v %v", img, err)
	}
	if err := s.Release("ctr1"); err != nil {
		t.Fatal(err)
	}
	rm, n, err := s.Prune(false)
	if err != nil || len(rm) != 1 || rm[0].Deleted != a.ID || n == 0 {
		t.Fatalf("prune = %+v %d %v", rm, n, err)
	}
	for _, sub := range []string{"layers", "blobs/sha256", "images"} {
		ents, _ := os.ReadDir(filepath.Join(s.Root(), sub))
		if len(ents) != 0 {
			t.Errorf("%s not empty after removing every image: %d entries", sub, len(ents))
		}
	}
	_ = b
}

// TestBusyboxRootfsRuns mounts the test busybox image and runs its shell in a
// chroot: the layers, symlinks and /etc/passwd make a usable root.
func TestBusyboxRootfsRuns(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	archive := filepath.Join(t.TempDir(), "bb.tar")
	if err := testimage.WriteDockerArchive(archive, "busybox:test", busybox(t, testimage.WithFile("etc/motd", 0o644, "motd\n"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, archive, nil); err != nil {
		t.Fatal(err)
	}
	const cid = "runs"
	t.Cleanup(func() {
		if err := s.RemoveRootfs(cid); err != nil {
			t.Error(err)
		}
	})
	root, err := s.Mount(ctx, cid, "busybox:test")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "cat /etc/motd; id -u app; ls / | wc -l")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{testimage.DefaultPath}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if lines := strings.Fields(string(out)); len(lines) != 3 || lines[0] != "motd" || lines[1] != "1000" {
		t.Errorf("output %q", out)
	}
}

// TestLoadRefusesMaliciousLayer: a layer that escapes its root fails the
// load and leaves neither a layer nor an image behind.
func TestLoadRefusesMaliciousLayer(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	for name, entries := range map[string][]testimage.Entry{
		"dotdot":   {testimage.File("../../../escaped", 0o644, "x")},
		"absolute": {testimage.File(filepath.Join(outside, "escaped"), 0o644, "x")},
		"symlink":  {testimage.Symlink("evil", outside), testimage.File("evil/escaped", 0o644, "x")},
		"hardlink": {testimage.Hardlink("hl", "../../../../etc/passwd")},
	} {
		t.Run(name, func(t *testing.T) {
			img, err := testimage.Image(v1.Config{}, []testimage.Entry{testimage.File("ok", 0o644, "ok")}, entries)
			if err != nil {
				t.Fatal(err)
			}
			archive := filepath.Join(t.TempDir(), "evil.tar")
			if err := testimage.WriteDockerArchive(archive, "evil:1", img); err != nil {
				t.Fatal(err)
			}
			s := newStore(t)
			if _, err := s.Load(ctx, archive, nil); err == nil {
				t.Fatal("loaded an image with an escaping layer")
			}
			if _, err := s.Image("evil:1"); !errors.Is(err, image.ErrNotFound) {
				t.Errorf("image recorded: %v", err)
			}
			if _, err := os.Stat(filepath.Join(outside, "escaped")); err == nil {
				t.Error("a file was written outside the store")
			}
			for _, sub := range []string{"tmp", "images"} {
				ents, _ := os.ReadDir(filepath.Join(s.Root(), sub))
				if len(ents) != 0 {
					t.Errorf("%s: %d entries left", sub, len(ents))
				}
			}
			// Only the good layer may be stored (it was unpacked alongside).
			ents, _ := os.ReadDir(filepath.Join(s.Root(), "layers"))
			if len(ents) > 1 {
				t.Errorf("%d layers stored", len(ents))
			}
		})
	}
}

// TestPruneSweepsTmp: prune removes what interrupted pulls, loads,
// pushes and removals left in the store's tmp directory, and nothing else.
func TestPruneSweepsTmp(t *testing.T) {
	s := newStore(t)
	tmp := filepath.Join(s.Root(), "tmp")
	left := []string{"layer-1", "gc-2", "init-3", "archive-4", "push-5"}
	for _, n := range left {
		if err := os.WriteFile(filepath.Join(tmp, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(tmp, "other")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Prune(false); err != nil {
		t.Fatal(err)
	}
	for _, n := range left {
		if _, err := os.Stat(filepath.Join(tmp, n)); !os.IsNotExist(err) {
			t.Errorf("%s left after prune: %v", n, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("prune removed a file it does not own: %v", err)
	}
}
