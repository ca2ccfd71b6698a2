package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthrun/berth/engine/image/dockerconfig"
)

type loginFlags struct {
	user          string
	password      string
	passwordStdin bool
	insecure      []string
}

func newLoginCommand(g *globals) *cobra.Command {
	f := &loginFlags{}
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Long: "Log in to a registry. Credentials are stored in $DOCKER_CONFIG/config.json\n" +
			"(default ~/.docker/config.json), shared with docker. Docker Hub when no server is given.",
		Args: cobra.MaximumNArgs(1),
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.user, "username", "u", "", "Username")
	fl.StringVarP(&f.password, "password", "p", "", "Password or personal access token")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "Take the password from stdin")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "Registry (host[:port]) to reach over plain HTTP (repeatable)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		server := dockerconfig.HubServer
		if len(args) == 1 {
			server = args[0]
		}
		return runLogin(cmd, server, f)
	}
	return cmd
}

func runLogin(cmd *cobra.Command, server string, f *loginFlags) error {
	in := cmd.InOrStdin()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.password != "" && f.passwordStdin {
		return errors.New("--password and --password-stdin are mutually exclusive")
	}
	reader := bufio.NewReader(in)
	if f.passwordStdin {
		if f.user == "" {
			return errors.New("must provide --username with --password-stdin")
		}
		b, err := io.ReadAll(reader)
		if err != nil {
			return err
		}
		f.password = strings.TrimRight(string(b), "\r\n")
	} else if f.password != "" {
		fmt.Fprintln(errOut, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
	}
	if f.user == "" {
		fmt.Fprint(out, "Username: ")
		line, err := reader.ReadString('\n')
		if err != nil && line == "" {
			return errors.New("error: cannot perform an interactive login without a username")
		}
		f.user = strings.TrimSpace(line)
	}
	if f.password == "" {
		fmt.Fprint(out, "Password: ")
		pw, err := readLoginSecret(in, reader)
		fmt.Fprintln(out)
		if err != nil {
			return err
		}
		f.password = pw
	}
	if f.user == "" || f.password == "" {
		return errors.New("error: username and password are required")
	}
	host := dockerconfig.ServerKey(server)
	insecure := false
	for _, r := range insecureRegistryList(f.insecure) {
		if dockerconfig.ServerKey(r) == host {
			insecure = true
		}
	}
	if err := dockerconfig.Login(cmd.Context(), server, f.user, f.password, insecure, nil); err != nil {
		return err
	}
	fmt.Fprintln(out, "Login Succeeded")
	return nil
}

// readLoginSecret reads a line without echo when in is a terminal. A
// terminal hands over one line per read, so reader holds nothing past the
// username and the password can be read from the file itself.
func readLoginSecret(in io.Reader, reader *bufio.Reader) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pw, err := term.ReadPassword(int(f.Fd()))
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(pw), nil
	}
	line, err := reader.ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("error: cannot perform an interactive login without a password")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newLogoutCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := dockerconfig.HubServer
			if len(args) == 1 {
				server = args[0]
			}
			key := dockerconfig.ServerKey(server)
			found, err := dockerconfig.Remove(server)
			if err != nil {
				return err
			}
			if !found {
				fmt.Fprintf(cmd.OutOrStdout(), "Not logged in to %s\n", key)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removing login credentials for %s\n", key)
			return nil
		},
	}
}
