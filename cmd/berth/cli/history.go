package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
)

// newImageHistoryCommand is docker's `image history`: an image's steps,
// newest first, each with the size of the layer it made.
func newImageHistoryCommand(g *globals) *cobra.Command {
	var noTrunc, quiet, human bool
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			rec, err := s.Image(args[0])
			if err != nil {
				return imageErr(err)
			}
			img, err := s.V1Image(rec.ID)
			if err != nil {
				return err
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return err
			}
			type row struct{ id, created, by, size, comment string }
			var rows []row
			layer := 0
			for _, h := range cf.History {
				var size int64
				if !h.EmptyLayer && layer < len(rec.Layers) {
					size = s.LayerSize(rec.Layers[layer].DiffID)
					layer++
				}
				r := row{id: "<missing>", by: h.CreatedBy, comment: h.Comment}
				if h.Created.IsZero() {
					r.created = "N/A"
				} else if human {
					r.created = units.HumanDuration(time.Since(h.Created.Time)) + " ago"
				} else {
					r.created = h.Created.Time.Format(time.RFC3339)
				}
				if human {
					r.size = units.HumanSizeWithPrecision(float64(size), 3)
				} else {
					r.size = fmt.Sprint(size)
				}
				rows = append(rows, r)
			}
			// Newest first; the image's own ID on its top line.
			for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
				rows[i], rows[j] = rows[j], rows[i]
			}
			id := rec.ID
			if !noTrunc {
				id = strings.TrimPrefix(id, "sha256:")[:12]
			}
			if len(rows) > 0 {
				rows[0].id = id
			}
			out := cmd.OutOrStdout()
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(out, r.id)
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
			for _, r := range rows {
				by := strings.ReplaceAll(r.by, "\n", " ")
				if !noTrunc && len(by) > 45 {
					by = by[:44] + "…"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.id, r.created, by, r.size, r.comment)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	cmd.Flags().BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	return cmd
}
