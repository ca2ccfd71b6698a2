package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/image"
)

// openImageStore opens the image store under berth's root.
func (g *globals) openImageStore() (*image.Store, error) {
	return image.Open(filepath.Join(g.root, "image"))
}

func newImageCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		newImagePullCommand(g),
		newImageListCommand(g),
		newImageRemoveCommand(g),
		newImageInspectCommand(g),
		newImageLoadCommand(g),
		newImageImportCommand(g),
		newImageSaveCommand(g),
		newImagePruneCommand(g),
		newImageTagCommand(g),
		newImageHistoryCommand(g),
	)
	return cmd
}

// imageErr reduces a NotFound error to docker's "No such image: X".
func imageErr(err error) error {
	var nf *image.NotFoundError
	if errors.As(err, &nf) {
		return nf
	}
	return err
}

// insecureRegistryList merges --insecure-registry with $BERTH_INSECURE_REGISTRIES
// (comma-separated).
func insecureRegistryList(flag []string) []string {
	out := append([]string(nil), flag...)
	for _, r := range strings.Split(os.Getenv("BERTH_INSECURE_REGISTRIES"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// --- pull -------------------------------------------------------------------

type imagePullFlags struct {
	quiet    bool
	platform string
	insecure []string
}

func newImagePullCommand(g *globals) *cobra.Command {
	f := &imagePullFlags{}
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			return runImagePull(cmd, s, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Suppress verbose output")
	fl.StringVar(&f.platform, "platform", "", "Set platform if server is multi-platform capable (default linux/amd64)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "Registry (host[:port]) to reach over plain HTTP (repeatable)")
	return cmd
}

func parseImagePlatform(s string) (*v1.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return nil, fmt.Errorf("invalid platform %q: %w", s, err)
	}
	return p, nil
}

func runImagePull(cmd *cobra.Command, s *image.Store, ref string, f *imagePullFlags) error {
	out := cmd.OutOrStdout()
	r, err := image.ParseReference(ref, false)
	if err != nil {
		return err
	}
	platform, err := parseImagePlatform(f.platform)
	if err != nil {
		return err
	}
	opts := image.PullOptions{InsecureRegistries: insecureRegistryList(f.insecure), Platform: platform}
	var pr *pullProgress
	if !f.quiet {
		reg := r.Context().RegistryStr()
		if reg == "index.docker.io" {
			reg = "docker.io"
		}
		fmt.Fprintf(out, "%s: Pulling from %s\n", r.Identifier(), image.FamiliarName(reg+"/"+r.Context().RepositoryStr()))
		pr = newPullProgress(out)
		opts.Progress = pr.event
	}
	res, err := s.Pull(cmd.Context(), ref, opts)
	if pr != nil {
		pr.finish()
	}
	if err != nil {
		return imageErr(err)
	}
	if !f.quiet {
		fmt.Fprintf(out, "Digest: %s\n", res.Digest)
		if res.UpToDate {
			fmt.Fprintf(out, "Status: Image is up to date for %s\n", image.FamiliarName(res.Ref))
		} else {
			fmt.Fprintf(out, "Status: Downloaded newer image for %s\n", image.FamiliarName(res.Ref))
		}
	}
	fmt.Fprintln(out, res.Ref)
	return nil
}

// --- ls ---------------------------------------------------------------------

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

// imageTemplateLines prints each item through a docker-style Go template
// ("{{.Repository}}:{{.Tag}}", "{{json .}}").
func imageTemplateLines[T any](out io.Writer, format string, items []T) error {
	tmpl, err := parseFormat(format)
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	for _, it := range items {
		if err := tmpl.Execute(out, it); err != nil {
			return err
		}
		fmt.Fprintln(out)
	}
	return nil
}

// --- rm ---------------------------------------------------------------------

func newImageRemoveCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] IMAGE [IMAGE...]",
		Aliases: []string{"remove", "rmi"},
		Short:   "Remove one or more images",
		Args:    cobra.MinimumNArgs(1),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := g.openImageStore()
		if err != nil {
			return err
		}
		out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
		failed := false
		for _, ref := range args {
			rm, err := s.Remove(ref, force)
			printImageRemovals(out, rm, false)
			if err != nil {
				fmt.Fprintln(errOut, imageErr(err))
				failed = true
			}
		}
		if failed {
			return &exitError{code: 1}
		}
		return nil
	}
	return cmd
}

func printImageRemovals(out io.Writer, rm []image.Removal, lower bool) {
	u, d := "Untagged: ", "Deleted: "
	if lower {
		u, d = "untagged: ", "deleted: "
	}
	for _, r := range rm {
		if r.Untagged != "" {
			fmt.Fprintln(out, u+image.FamiliarName(r.Untagged))
		}
		if r.Deleted != "" {
			fmt.Fprintln(out, d+r.Deleted)
		}
	}
}

// --- inspect ----------------------------------------------------------------

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

// --- load / import / save -----------------------------------------------------

// imageStdinToTemp copies standard input to a temp file in dir (archives need
// random access).
func imageStdinToTemp(in io.Reader, dir string) (string, func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp(dir, "stdin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		cleanup()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

func newImageLoadCommand(g *globals) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive (docker save or OCI layout) or STDIN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			path := input
			if path == "" || path == "-" {
				if isTerminal(os.Stdin) && cmd.InOrStdin() == os.Stdin {
					return errors.New("requested load from stdin, but stdin is empty")
				}
				p, cleanup, err := imageStdinToTemp(cmd.InOrStdin(), filepath.Join(s.Root(), "tmp"))
				if err != nil {
					return err
				}
				defer cleanup()
				path = p
			}
			out := cmd.OutOrStdout()
			var progress image.ProgressFunc
			if !quiet && isTerminal(out) {
				progress = newPullProgress(out).event
			}
			imgs, err := s.Load(cmd.Context(), path, progress)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				if len(img.RepoTags) == 0 {
					fmt.Fprintf(out, "Loaded image ID: %s\n", img.ID)
				}
				for _, t := range img.RepoTags {
					fmt.Fprintf(out, "Loaded image: %s\n", image.FamiliarName(t))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func newImageImportCommand(g *globals) *cobra.Command {
	var changes []string
	var message string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			path := args[0]
			if path == "-" {
				p, cleanup, err := imageStdinToTemp(cmd.InOrStdin(), filepath.Join(s.Root(), "tmp"))
				if err != nil {
					return err
				}
				defer cleanup()
				path = p
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			img, err := s.Import(cmd.Context(), path, ref, image.ImportOptions{Changes: changes, Message: message})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.ID)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image (repeatable)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	return cmd
}

func newImageSaveCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			if output != "" && output != "-" {
				return imageErr(s.SaveFile(cmd.Context(), output, args...))
			}
			out := cmd.OutOrStdout()
			if isTerminal(out) {
				return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			return imageErr(s.Save(cmd.Context(), out, args...))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

// --- prune / tag --------------------------------------------------------------

func newImagePruneCommand(g *globals) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := g.openImageStore()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if !force {
			what := "all dangling images"
			if all {
				what = "all images without at least one container associated to them"
			}
			fmt.Fprintf(out, "WARNING! This will remove %s.\nAre you sure you want to continue? [y/N] ", what)
			line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				return nil
			}
		}
		rm, reclaimed, err := s.Prune(all)
		if len(rm) > 0 {
			fmt.Fprintln(out, "Deleted Images:")
			printImageRemovals(out, rm, true)
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "Total reclaimed space: %s\n", units.HumanSizeWithPrecision(float64(reclaimed), 3))
		return err
	}
	return cmd
}

func newImageTagCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImageStore()
			if err != nil {
				return err
			}
			return imageErr(s.Tag(args[0], args[1]))
		},
	}
}
