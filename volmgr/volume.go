package volmgr

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berthrun/berth/internal/atomicfile"
	namerules "github.com/berthrun/berth/internal/names"
)

// Labels compose and Docker put on volumes; berth writes and reads the same.
const (
	LabelProject   = "com.docker.compose.project"
	LabelVolume    = "com.docker.compose.volume"
	LabelVersion   = "com.docker.compose.version"
	LabelAnonymous = "com.docker.volume.anonymous"
)

// DriverLocal is the only volume driver berth has.
const DriverLocal = "local"

const (
	metaFile = "volume.json"
	dataDir  = "_data"
)

// VolumeSpec is what Create needs.
type VolumeSpec struct {
	Name       string
	Driver     string // "" or "local"
	Labels     map[string]string
	DriverOpts map[string]string
}

// Volume is a volume as stored in <root>/<name>/volume.json.
type Volume struct {
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Labels     map[string]string `json:"labels,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	Scope      string            `json:"scope"`
	// Mountpoint is <root>/<name>/_data. A volume backed by a host
	// directory (o=bind) keeps its data in the device instead: see Source.
	Mountpoint string `json:"mountpoint"`
	// Users are the containers that have the volume mounted (or will, once
	// started): a volume with users cannot be removed.
	Users []string `json:"users,omitempty"`
	// Owner is the container an anonymous volume was created for.
	Owner string `json:"owner,omitempty"`
	// Heir is the replica an anonymous volume passes to while its owner is
	// being recreated (see Manager.Bequeath).
	Heir *Heir `json:"heir,omitempty"`
}

// Heir names a replica of a project's service and where in it an anonymous
// volume is mounted.
type Heir struct {
	Service     string `json:"service"`
	Number      int    `json:"number"`
	Destination string `json:"destination"`
}

// Anonymous reports whether v is an anonymous volume (`- /data`, image VOLUME).
func (v *Volume) Anonymous() bool {
	_, ok := v.Labels[LabelAnonymous]
	return ok
}

// InUse reports whether a container uses v.
func (v *Volume) InUse() bool { return len(v.Users) > 0 }

// Warning returns the warning compose prints when a project finds an existing
// volume that it did not create, or "" when v belongs to project.
func (v *Volume) Warning(project string) string {
	p, ok := v.Labels[LabelProject]
	switch {
	case !ok:
		return fmt.Sprintf("volume %q already exists but was not created by Docker Compose. Use `external: true` to use an existing volume", v.Name)
	case p != project:
		return fmt.Sprintf("volume %q already exists but was not created for project %q. Use `external: true` to use an existing volume", v.Name, project)
	}
	return ""
}

// ValidateName checks a volume name by the local driver's rule, which also
// keeps names from being paths.
func ValidateName(name string) error {
	if namerules.Volume(name) != nil {
		return invalidf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed (at least two characters); to mount a host directory, use an absolute path", name)
	}
	return nil
}

// randomName returns 64 hex digits, the shape of anonymous volume names.
func randomName() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

func readVolume(dir string) (*Volume, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	v := &Volume{}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("volume metadata %s: %w", filepath.Join(dir, metaFile), err)
	}
	// The root may have moved since the file was written.
	v.Mountpoint = filepath.Join(dir, dataDir)
	return v, nil
}

// writeVolume replaces dir/volume.json atomically: a reader sees the old
// file or the new one, never half of one.
func writeVolume(dir string, v *Volume) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFileSync(filepath.Join(dir, metaFile), append(b, '\n'), 0o600)
}
