package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func newPortCommand(g *globals) *cobra.Command {
	var protocol string
	var index int
	cmd := &cobra.Command{
		Use:   "port [OPTIONS] SERVICE PRIVATE_PORT",
		Short: "Print the public port for a port binding",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := args[0]
			target, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSuffix(args[1], "/tcp"), "/udp"))
			if err != nil {
				return fmt.Errorf("invalid private port %q", args[1])
			}
			proj, p, err := g.projectName(cmd.Context())
			if err != nil {
				return err
			}
			if err := checkServices(p, []string{service}); err != nil {
				return err
			}
			recs, _, err := g.records(cmd.Context(), proj)
			if err != nil {
				return err
			}
			if index == 0 {
				index = 1
			}
			for _, r := range recs {
				if r.Service != service || r.Number != index {
					continue
				}
				for _, b := range r.Ports {
					if int(b.Target) == target && b.Protocol == protocol {
						ip := b.HostIP
						if ip == "" {
							ip = "0.0.0.0"
						}
						fmt.Fprintf(cmd.OutOrStdout(), "%s:%d\n", ip, b.HostPort)
						return nil
					}
				}
				return fmt.Errorf("no port %d/%s published for service %q", target, protocol, service)
			}
			return fmt.Errorf("service %q has no container %d", service, index)
		},
	}
	cmd.Flags().StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	cmd.Flags().IntVar(&index, "index", 0, "Index of the container if service has multiple replicas")
	return cmd
}
