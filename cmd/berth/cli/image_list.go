package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

type imageListFlags struct {
	quiet   bool
	all     bool
	noTrunc bool
	digests bool
	format  string
}

func newImageListCommand(g *globals) *cobra.Command {
	f := &imageListFlags{}
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS] [REPOSITORY[:TAG]]",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			filter := ""
			if len(args) == 1 {
				filter = args[0]
			}
			return runImageList(cmd.OutOrStdout(), s, filter, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Only show image IDs")
	fl.BoolVarP(&f.all, "all", "a", false, "Show all images (berth keeps no intermediate images)")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "Don't truncate output")
	fl.BoolVar(&f.digests, "digests", false, "Show digests")
	fl.StringVar(&f.format, "format", "", "Format output: 'table', 'json' or a Go template")
	return cmd
}

// imageRow is one line of `image ls`, with docker's field names for --format.
type imageRow struct {
	Containers   string
	CreatedAt    string
	CreatedSince string
	Digest       string
	ID           string
	Repository   string
	SharedSize   string
	Size         string
	Tag          string
	UniqueSize   string
	VirtualSize  string
}

func imageRows(imgs []*image.Image, filter string, noTrunc bool) []imageRow {
	var rows []imageRow
	for _, img := range imgs {
		id := img.ID
		if !noTrunc {
			id = strings.TrimPrefix(id, "sha256:")[:12]
		}
		base := imageRow{
			Containers:   "N/A",
			CreatedAt:    img.Created.Format("2006-01-02 15:04:05 -0700 MST"),
			CreatedSince: units.HumanDuration(time.Since(img.Created)) + " ago",
			Digest:       "<none>",
			ID:           id,
			SharedSize:   "N/A",
			Size:         units.HumanSizeWithPrecision(float64(img.Size), 3),
			UniqueSize:   "N/A",
		}
		base.VirtualSize = base.Size
		if img.Created.IsZero() {
			base.CreatedSince = "N/A"
		}
		digestFor := func(repo string) string {
			for _, d := range img.RepoDigests {
				if r, dg, ok := strings.Cut(d, "@"); ok && r == repo {
					return dg
				}
			}
			return "<none>"
		}
		if len(img.RepoTags) == 0 {
			r := base
			r.Repository, r.Tag = "<none>", "<none>"
			if len(img.RepoDigests) > 0 {
				repo, dg, _ := strings.Cut(img.RepoDigests[0], "@")
				r.Repository, r.Digest = image.FamiliarName(repo), dg
			}
			if filter == "" {
				rows = append(rows, r)
			}
			continue
		}
		for _, t := range img.RepoTags {
			i := strings.LastIndex(t, ":")
			repo, tag := t[:i], t[i+1:]
			r := base
			r.Repository, r.Tag, r.Digest = image.FamiliarName(repo), tag, digestFor(repo)
			if filter != "" && !matchRepoFilter(filter, r.Repository, tag, repo) {
				continue
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func matchRepoFilter(filter, familiar, tag, canonicalRepo string) bool {
	fr, ft, hasTag := strings.Cut(filter, ":")
	if strings.Contains(ft, "/") { // a registry port, not a tag
		fr, ft, hasTag = filter, "", false
	}
	if fr != familiar && fr != canonicalRepo {
		return false
	}
	return !hasTag || ft == tag
}

func runImageList(out io.Writer, s *image.Store, filter string, f *imageListFlags) error {
	imgs, err := s.List()
	if err != nil {
		return err
	}
	rows := imageRows(imgs, filter, f.noTrunc)
	switch {
	case f.quiet:
		seen := map[string]bool{}
		for _, r := range rows {
			if !seen[r.ID] {
				seen[r.ID] = true
				fmt.Fprintln(out, r.ID)
			}
		}
		return nil
	case f.format == "json":
		enc := json.NewEncoder(out)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case f.format != "" && f.format != "table":
		return imageTemplateLines(out, f.format, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	if f.digests {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	for _, r := range rows {
		if f.digests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size)
		}
	}
	return tw.Flush()
}
