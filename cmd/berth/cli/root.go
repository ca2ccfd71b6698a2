// Package cli holds berth's cobra commands: flags, output and exit codes.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/supervisor"
)

// Main runs the CLI with args and returns the process exit code.
func Main(args []string) int {
	return run(args, os.Stdout, os.Stderr)
}

func run(args []string, stdout, stderr io.Writer) int {
	// compose-go reports warnings through logrus; show them as compose does.
	logrus.SetOutput(stderr)
	logrus.SetFormatter(logFormatter{})
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	code, msg := exitStatus(err)
	if msg != "" {
		fmt.Fprintln(stderr, msg)
	}
	return code
}

// exitStatus decides, for every command, the exit code of an error and the
// one line printed for it: a command's own code (exitError), the code docker
// gives an exec whose command could not start, or 1.
func exitStatus(err error) (int, string) {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code, ee.msg
	}
	var xe *supervisor.ExecError
	if errors.As(err, &xe) {
		return xe.Code, "OCI runtime exec failed: " + xe.Msg
	}
	return 1, strings.TrimSpace(err.Error())
}

// logFormatter prints "WARN message", one line per entry.
type logFormatter struct{}

func (logFormatter) Format(e *logrus.Entry) ([]byte, error) {
	level := strings.ToUpper(e.Level.String())
	if len(level) > 4 {
		level = level[:4]
	}
	return []byte(level + " " + e.Message + "\n"), nil
}

// exitError ends the CLI with a given code, as `exec` does with the exit code of
// the command it ran.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// globals are compose's global flags plus berth's roots.
type globals struct {
	files      []string
	projectDir string
	name       string
	profiles   []string
	envFiles   []string
	root       string
	runRoot    string
	// parallel is --parallel: at most this many containers created,
	// started, stopped or removed at once by one command; -1 (or 0) is no
	// bound.
	parallel int
	dryRun   bool
	// compatibility names containers as compose v1 did.
	compatibility bool
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "berth",
		Short: "Run compose projects without Docker",
		Long: "berth reads compose files (compose.yaml, docker-compose.yml) and runs the stack\n" +
			"on its own embedded container engine: bridge networks with DNS, volumes,\n" +
			"restart policies, health checks and scaled replicas behind a proxy.",
		SilenceUsage:  true,
		SilenceErrors: true,
		// "berth" alone prints help, as docker compose does; an unknown
		// command is an error (exit 1).
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return checkUI()
		},
	}
	// Global flags come before the command, as with docker compose, so that
	// a command may reuse their letters (logs -f is --follow).
	root.TraverseChildren = true
	f := root.Flags()
	f.StringArrayVarP(&g.files, "file", "f", nil, "Compose configuration files")
	f.StringVarP(&g.name, "project-name", "p", "", "Project name")
	f.StringVar(&g.projectDir, "project-directory", "", "Specify an alternate working directory\n(default: the path of the first specified Compose file)")
	f.StringArrayVar(&g.profiles, "profile", nil, "Specify a profile to enable")
	f.StringArrayVar(&g.envFiles, "env-file", nil, "Specify an alternate environment file")
	f.StringVar(&ui.progress, "progress", "", `Set type of progress output (auto, tty, plain, json, quiet)`)
	f.StringVar(&ui.ansi, "ansi", "auto", `Control when to print ANSI control characters ("never"|"always"|"auto")`)
	f.IntVar(&g.parallel, "parallel", -1, "Control max parallelism, -1 for unlimited")
	f.BoolVar(&g.dryRun, "dry-run", false, "Execute command in dry run mode")
	f.BoolVar(&g.compatibility, "compatibility", false, "Run compose in backward compatibility mode")
	f.StringVar(&g.root, "root", envOr("BERTH_ROOT", "/var/lib/berth"), "Root of berth's persistent state (images, volumes, layers) [$BERTH_ROOT]")
	f.StringVar(&g.runRoot, "run-root", envOr("BERTH_RUN_ROOT", "/run/berth"), "Root of berth's runtime state (sockets, FIFOs) [$BERTH_RUN_ROOT]")

	root.AddCommand(
		newVersionCommand(),
		newConfigCommand(g),
		newBridgeCommand(g),
		newImageCommand(g),
		newLoginCommand(g),
		newLogoutCommand(g),
		newUpCommand(g),
		newWatchCommand(g),
		newDownCommand(g),
		newPsCommand(g),
		newLogsCommand(g),
		newExecCommand(g),
		newRunCommand(g),
		newCpCommand(g),
		newStatsCommand(g),
		newAttachCommand(g),
		newExportCommand(g),
		newCommitCommand(g),
		newPushCommand(g),
		newContainersCommand(g, "start", "start [SERVICE...]", "Start services"),
		newContainersCommand(g, "stop", "stop [OPTIONS] [SERVICE...]", "Stop services"),
		newContainersCommand(g, "restart", "restart [OPTIONS] [SERVICE...]", "Restart service containers"),
		newContainersCommand(g, "kill", "kill [OPTIONS] [SERVICE...]", "Force stop service containers"),
		newContainersCommand(g, "rm", "rm [OPTIONS] [SERVICE...]", "Removes stopped service containers"),
		newContainersCommand(g, "pause", "pause [SERVICE...]", "Pause services"),
		newContainersCommand(g, "unpause", "unpause [SERVICE...]", "Unpause services"),
		newTopCommand(g),
		newWaitCommand(g),
		newLsCommand(g),
		newEventsCommand(g),
		newVolumeCommand(g),
		newNetworkCommand(g),
		newVolumesCommand(g),
		newImagesCommand(g),
		newPortCommand(g),
		newScaleCommand(g),
		newPullCommand(g),
		newBuildCommand(g),
		newBuilderCommand(g),
		newCreateCommand(g),
		newSuperviseCommand(g),
	)
	withDryRun(root, g)
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
