package image

import (
	"encoding/json"
	"strings"
	"time"
)

// InspectInfo is `image inspect` output, shaped like docker's.
type InspectInfo struct {
	ID           string         `json:"Id"`
	RepoTags     []string       `json:"RepoTags"`
	RepoDigests  []string       `json:"RepoDigests"`
	Parent       string         `json:"Parent"`
	Comment      string         `json:"Comment"`
	Created      string         `json:"Created"`
	Author       string         `json:"Author"`
	Config       map[string]any `json:"Config"`
	Architecture string         `json:"Architecture"`
	Os           string         `json:"Os"`
	Size         int64          `json:"Size"`
	GraphDriver  GraphDriver    `json:"GraphDriver"`
	RootFS       RootFS         `json:"RootFS"`
	Metadata     Metadata       `json:"Metadata"`
}

// GraphDriver names the storage driver and the image's layer directories.
type GraphDriver struct {
	Name string            `json:"Name"`
	Data map[string]string `json:"Data"`
}

// RootFS lists the image's diff IDs, bottom first.
type RootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

// Metadata holds store-side facts.
type Metadata struct {
	LastTagTime string `json:"LastTagTime"`
}

// Inspect returns ref's image in the shape of `docker image inspect`.
func (s *Store) Inspect(ref string) (*InspectInfo, error) {
	img, err := s.Image(ref)
	if err != nil {
		return nil, err
	}
	raw, err := s.readBlob(img.ID)
	if err != nil {
		return nil, err
	}
	var cf struct {
		Author  string         `json:"author"`
		Config  map[string]any `json:"config"`
		History []struct {
			Comment string `json:"comment"`
		} `json:"history"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil {
		return nil, err
	}
	info := &InspectInfo{
		ID:           img.ID,
		RepoTags:     []string{},
		RepoDigests:  []string{},
		Created:      img.Created.Format(time.RFC3339Nano),
		Author:       cf.Author,
		Config:       cf.Config,
		Architecture: img.Architecture,
		Os:           img.OS,
		Size:         img.Size,
		RootFS:       RootFS{Type: "layers", Layers: []string{}},
		Metadata:     Metadata{LastTagTime: img.Stored.Format(time.RFC3339Nano)},
	}
	for _, t := range img.RepoTags {
		info.RepoTags = append(info.RepoTags, FamiliarName(t))
	}
	for _, d := range img.RepoDigests {
		info.RepoDigests = append(info.RepoDigests, FamiliarName(d))
	}
	if n := len(cf.History); n > 0 {
		info.Comment = cf.History[n-1].Comment
	}
	var lowers []string
	for i := len(img.Layers) - 1; i >= 0; i-- {
		lowers = append(lowers, s.LayerDir(img.Layers[i].DiffID))
	}
	for _, l := range img.Layers {
		info.RootFS.Layers = append(info.RootFS.Layers, l.DiffID)
	}
	info.GraphDriver = GraphDriver{Name: "overlay", Data: map[string]string{}}
	if len(lowers) > 0 {
		info.GraphDriver.Data["UpperDir"] = lowers[0]
		if len(lowers) > 1 {
			info.GraphDriver.Data["LowerDir"] = strings.Join(lowers[1:], ":")
		}
	}
	return info, nil
}
