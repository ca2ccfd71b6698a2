package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
	"github.com/berthrun/berth/project"
	"github.com/berthrun/berth/supervisor"
	"github.com/berthrun/berth/volmgr"
)

// --- volumes ----------------------------------------------------------------

func newVolumesCommand(g *globals) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "volumes [OPTIONS] [SERVICE...]",
		Short: "List volumes",
		Long: "List the project's volumes: those labelled with its name. With services,\n" +
			"only the volumes those services mount.",
		RunE: func(cmd *cobra.Command, args []string) error {
			proj, p, err := g.projectName(cmd.Context())
			if err != nil {
				return err
			}
			if err := checkServices(p, args); err != nil {
				return err
			}
			if format != "table" && format != "json" && !isTemplate(format) {
				return formatError(format)
			}
			m, err := volumeManager(g)
			if err != nil {
				return err
			}
			vols, err := m.List(volmgr.Filters{Labels: []string{volmgr.LabelProject + "=" + proj}})
			if err != nil {
				return fmt.Errorf("list volumes of project %s: %w", proj, err)
			}
			if len(args) > 0 {
				want, err := serviceVolumes(g, proj, p, args)
				if err != nil {
					return err
				}
				kept := vols[:0]
				for _, v := range vols {
					if want[v.Name] {
						kept = append(kept, v)
					}
				}
				vols = kept
			}
			return printVolumeList(cmd.OutOrStdout(), vols, &volumeLsFlags{quiet: quiet, format: format})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	cmd.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	return cmd
}

// serviceVolumes names the volumes that services mount: the named volumes
// of their compose definition when the file is at hand, and the volumes of
// their containers, anonymous ones included.
func serviceVolumes(g *globals, proj string, p *project.Project, services []string) (map[string]bool, error) {
	want := map[string]bool{}
	if p != nil {
		for _, s := range services {
			for _, v := range p.Services[s].Volumes {
				if v.Type == "volume" && v.Source != "" {
					want[p.VolumeName(v.Source)] = true
				}
			}
		}
	}
	recs, err := supervisor.LoadRecords(g.paths(), proj)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if !slices.Contains(services, r.Service) {
			continue
		}
		for _, m := range r.Mounts {
			if m.Volume != "" {
				want[m.Volume] = true
			}
		}
	}
	return want, nil
}

// --- images -----------------------------------------------------------------

// composeImage is one line of `images`, with compose's keys for --format json.
type composeImage struct {
	ID            string `json:"ID"`
	ContainerName string `json:"ContainerName"`
	Repository    string `json:"Repository"`
	Tag           string `json:"Tag"`
	Platform      string `json:"Platform"`
	Size          int64  `json:"Size"`
}

func newImagesCommand(g *globals) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [SERVICE...]",
		Short: "List images used by the created containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			proj, p, err := g.projectName(cmd.Context())
			if err != nil {
				return err
			}
			if err := checkServices(p, args); err != nil {
				return err
			}
			if format != "table" && format != "json" && !isTemplate(format) {
				return formatError(format)
			}
			recs, err := supervisor.LoadRecords(g.paths(), proj)
			if err != nil {
				return err
			}
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			var rows []composeImage
			for _, r := range recs {
				if len(args) > 0 && !slices.Contains(args, r.Service) {
					continue
				}
				row, err := containerImage(s, r)
				if err != nil {
					return err
				}
				rows = append(rows, row)
			}
			return printImages(cmd.OutOrStdout(), rows, quiet, format)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	cmd.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	return cmd
}

// containerImage describes the image a container was created from. An image
// removed since is still listed, by the container's record alone.
func containerImage(s *image.Store, r *supervisor.Record) (composeImage, error) {
	row := composeImage{ID: r.ImageID, ContainerName: r.Name, Repository: "<none>", Tag: "<none>"}
	ref := r.ImageID
	if ref == "" {
		ref = r.Image
	}
	img, err := s.Image(ref)
	var nf *image.NotFoundError
	switch {
	case errors.As(err, &nf):
		row.Repository, row.Tag = splitFamiliar(image.FamiliarName(r.Image))
		return row, nil
	case err != nil:
		return row, fmt.Errorf("image of container %s: %w", r.Name, err)
	}
	row.ID, row.Size = img.ID, img.Size
	row.Platform = img.OS + "/" + img.Architecture
	// The tag the compose file names, when it still points at this image;
	// else any of the image's tags.
	want := image.FamiliarName(r.Image)
	if repo, tag := splitFamiliar(want); tag == "" {
		want = repo + ":latest"
	}
	for i, t := range img.RepoTags {
		if f := image.FamiliarName(t); i == 0 || f == want {
			row.Repository, row.Tag = splitFamiliar(f)
		}
	}
	return row, nil
}

// splitFamiliar splits "repo:tag" ("registry:5000/repo" has no tag).
func splitFamiliar(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

func printImages(out io.Writer, rows []composeImage, quiet bool, format string) error {
	switch {
	case quiet:
		seen := map[string]bool{}
		for _, r := range rows {
			if id := strings.TrimPrefix(r.ID, "sha256:"); !seen[id] {
				seen[id] = true
				fmt.Fprintln(out, id)
			}
		}
		return nil
	case format == "json":
		if rows == nil {
			rows = []composeImage{}
		}
		b, err := json.Marshal(rows)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	case isTemplate(format):
		return templateTable(out, format, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE")
	for _, r := range rows {
		size := units.HumanSizeWithPrecision(float64(r.Size), 3)
		if r.Size == 0 {
			size = "N/A"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ContainerName, r.Repository, r.Tag, short12(r.ID), size)
	}
	return tw.Flush()
}

// short12 is an image ID as docker prints it: 12 hex digits, no algorithm.
func short12(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
