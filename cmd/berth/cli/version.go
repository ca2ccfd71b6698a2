package cli

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/internal/version"
)

func newVersionCommand() *cobra.Command {
	var format string
	var short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the berth version information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			switch {
			case short:
				fmt.Fprintln(out, version.Version)
			case format == "json":
				b, _ := json.Marshal(map[string]string{"version": version.Version})
				fmt.Fprintln(out, string(b))
			case isTemplate(format):
				info := struct{ Version, GoVersion, Os, Arch string }{version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH}
				return templateTable(out, format, []any{info})
			case format != "" && format != "pretty":
				return fmt.Errorf("unsupported format %q: use pretty or json", format)
			default:
				fmt.Fprintf(out, "berth version %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output. Values: [pretty | json]")
	cmd.Flags().BoolVar(&short, "short", false, "Shows only berth's version number")
	return cmd
}
