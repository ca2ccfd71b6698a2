package image_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/internal/testimage"
)

// BenchmarkPull pulls a ~32 MB image (busybox, 200 files of 100 KiB, one of
// 10 MiB; random content, so it compresses to about its own size) from an
// in-process registry: into an empty store, then again into a store that has it.
func BenchmarkPull(b *testing.B) {
	b.Setenv("DOCKER_CONFIG", b.TempDir())
	needRoot(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) string {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		return string(buf)
	}
	var small []testimage.Entry
	for i := range 200 {
		small = append(small, testimage.File(fmt.Sprintf("data/small/%03d", i), 0o644, random(100<<10)))
	}
	img := busybox(b, testimage.WithEntries(small...),
		testimage.WithLayer(testimage.File("data/big", 0o644, random(10<<20))))
	reg := testimage.StartRegistry(b)
	ref, err := reg.Push(ctx, "bench:latest", img)
	if err != nil {
		b.Fatal(err)
	}
	size := int64(0)
	layers, _ := img.Layers()
	for _, l := range layers {
		n, _ := l.Size()
		size += n
	}

	b.Run("first", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			s, err := image.Open(filepath.Join(b.TempDir(), fmt.Sprint(i)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Pull(ctx, ref, image.PullOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("second", func(b *testing.B) {
		s, err := image.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Pull(ctx, ref, image.PullOptions{}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			res, err := s.Pull(ctx, ref, image.PullOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if !res.UpToDate {
				b.Fatal("second pull was not up to date")
			}
		}
	})
}
