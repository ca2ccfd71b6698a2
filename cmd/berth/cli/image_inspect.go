package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

func newImageInspectCommand(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  cobra.MinimumNArgs(1),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template or 'json'")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := g.openImageStore()
		if err != nil {
			return err
		}
		var docs []*image.InspectInfo
		var failed []error
		for _, ref := range args {
			d, err := s.Inspect(ref)
			if err != nil {
				failed = append(failed, imageErr(err))
				continue
			}
			docs = append(docs, d)
		}
		out := cmd.OutOrStdout()
		if format != "" && format != "json" {
			// As docker: templates see the JSON keys ({{.Id}}, {{.Config.Cmd}}).
			b, err := json.Marshal(docs)
			if err != nil {
				return err
			}
			var generic []any
			if err := json.Unmarshal(b, &generic); err != nil {
				return err
			}
			if err := imageTemplateLines(out, format, generic); err != nil {
				return err
			}
		} else {
			if docs == nil {
				docs = []*image.InspectInfo{}
			}
			b, err := json.MarshalIndent(docs, "", "    ")
			if err != nil {
				return err
			}
			fmt.Fprintln(out, string(b))
		}
		if len(failed) > 0 {
			for _, e := range failed {
				fmt.Fprintln(cmd.ErrOrStderr(), e)
			}
			return &exitError{code: 1}
		}
		return nil
	}
	return cmd
}
