package supervisor

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/internal/errdefs"
	"github.com/berthrun/berth/netmgr"
	"github.com/berthrun/berth/project/model"
)

// fakeImages is an image store holding the images named, by ID; Pull adds
// the ref to have (as pulledID) unless pullErr is set.
type fakeImages struct {
	have     map[string]string
	pulled   []string
	pullErr  error
	pulledAt time.Time // of every image it has
}

func (f *fakeImages) Image(ref string) (*image.Image, error) {
	id, ok := f.have[ref]
	if !ok {
		return nil, &image.NotFoundError{Ref: ref}
	}
	return &image.Image{ID: id, Pulled: f.pulledAt}, nil
}

func (f *fakeImages) Pull(_ context.Context, ref string, _ image.PullOptions) (*image.PullResult, error) {
	if f.pullErr != nil {
		return nil, f.pullErr
	}
	f.pulled = append(f.pulled, ref)
	f.have[ref] = "pulled"
	return &image.PullResult{}, nil
}

func (f *fakeImages) Mount(context.Context, string, string, ...image.Target) (string, error) {
	return "", nil
}
func (f *fakeImages) RemoveRootfs(string) error { return nil }

func TestEnsureImagePullPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		have    bool
		policy  string
		pullErr error
		wantID  string
		pulls   bool
		wantErr bool
		age     time.Duration // since the present image's last pull
	}{
		{"present, missing policy", true, "", nil, "local", false, false, 0},
		{"absent, missing policy", false, "", nil, "pulled", true, false, 0},
		{"present, always", true, "always", nil, "pulled", true, false, 0},
		{"absent, never", false, "never", nil, "", false, true, 0},
		{"absent, pull fails", false, "", errors.New("registry down"), "", false, true, 0},
		{"present, daily, pulled an hour ago", true, "daily", nil, "local", false, false, time.Hour},
		{"present, daily, pulled a day ago", true, "daily", nil, "pulled", true, false, 25 * time.Hour},
		{"present, every_2h, pulled 3h ago", true, "every_2h", nil, "pulled", true, false, 3 * time.Hour},
		{"present, weekly, pulled a day ago", true, "weekly", nil, "local", false, false, 25 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeImages{have: map[string]string{}, pullErr: tc.pullErr, pulledAt: time.Now().Add(-tc.age)}
			if tc.have {
				f.have["app:1"] = "local"
			}
			s := &Supervisor{images: f}
			img, err := s.ensureImage(context.Background(), &model.Service{Name: "web", Image: "app:1", PullPolicy: tc.policy}, func(Event) {})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if err == nil && img.ID != tc.wantID {
				t.Errorf("image %s, want %s", img.ID, tc.wantID)
			}
			if (len(f.pulled) > 0) != tc.pulls {
				t.Errorf("pulled %v, want a pull %v", f.pulled, tc.pulls)
			}
		})
	}
}

type fakeLister struct {
	nets []netmgr.Network
	err  error
}

func (f fakeLister) Networks() ([]netmgr.Network, error) { return f.nets, f.err }

func TestProjectNetworks(t *testing.T) {
	l := fakeLister{nets: []netmgr.Network{
		{Name: "p_default", Users: []string{"p"}},
		{Name: "shared", Users: []string{"other", "p"}},
		{Name: "q_default", Users: []string{"q"}},
	}}
	got, err := ProjectNetworks(l, "p")
	if err != nil || !slices.Equal(got, []string{"p_default", "shared"}) {
		t.Fatalf("got %v %v", got, err)
	}
	// A failure to read netmgr's records is reported, not read as "none".
	if _, err := ProjectNetworks(fakeLister{err: errdefs.ErrUnavailable}, "p"); !errdefs.IsUnavailable(err) {
		t.Fatalf("got %v, want the listing's error", err)
	}
}
