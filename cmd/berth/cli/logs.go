package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthrun/berth/engine/logs"
	"github.com/berthrun/berth/project/model"
	"github.com/berthrun/berth/supervisor"
)

type logsFlags struct {
	follow, timestamps, noColor, noLogPrefix bool
	tail                                     int
	since, until                             string
	index                                    int
	// rescan follows containers created after the start too, until the
	// context ends: up --watch recreates containers under the follower.
	rescan bool
}

func newLogsCommand(g *globals) *cobra.Command {
	f := &logsFlags{}
	var tail string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] [SERVICE...]",
		Short: "View output from containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			f.tail = -1
			if tail != "all" && tail != "" {
				n, err := strconv.Atoi(tail)
				if err != nil {
					return fmt.Errorf("invalid --tail %q: a number or \"all\"", tail)
				}
				f.tail = n
			}
			proj, p, err := g.projectName(cmd.Context())
			if err != nil {
				return err
			}
			if err := checkServices(p, args); err != nil {
				return err
			}
			return followLogs(cmd.Context(), cmd.OutOrStdout(), g, proj, args, f, nil)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.follow, "follow", "f", false, "Follow log output")
	fl.BoolVarP(&f.timestamps, "timestamps", "t", false, "Show timestamps")
	fl.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs for each container")
	fl.StringVar(&f.since, "since", "", "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
	fl.StringVar(&f.until, "until", "", "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
	fl.BoolVar(&f.noColor, "no-color", false, "Produce monochrome output")
	fl.BoolVar(&f.noLogPrefix, "no-log-prefix", false, "Don't print prefix in logs")
	fl.IntVar(&f.index, "index", 0, "index of the container if service has multiple replicas")
	return cmd
}

// followLogs prints the logs of the project's containers (of services, when
// given). With follow it keeps printing until every container has exited
// (calling onExit for each as it does) or ctx ends.
func followLogs(ctx context.Context, out io.Writer, g *globals, proj string, services []string, f *logsFlags, onExit func(supervisor.Record)) error {
	since, err := parseTime(f.since)
	if err != nil {
		return fmt.Errorf("invalid --since: %w", err)
	}
	until, err := parseTime(f.until)
	if err != nil {
		return fmt.Errorf("invalid --until: %w", err)
	}
	recs, err := supervisor.LoadRecords(g.paths(), proj)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, s := range services {
		want[s] = true
	}
	var selected []*supervisor.Record
	for _, r := range recs {
		if r.Labels[model.LabelOneoff] == "True" {
			continue // a one-off's output went to its run
		}
		if (len(want) == 0 || want[r.Service]) && (f.index == 0 || r.Number == f.index) {
			selected = append(selected, r)
		}
	}
	names := make([]string, len(selected))
	for i, r := range selected {
		names[i] = shortName(r)
	}
	color := !f.noColor && colours(out)
	pre := logs.NewPrefixer(logs.PrefixerOptions{Color: color, NoPrefix: f.noLogPrefix, Timestamps: f.timestamps}, names...)
	var mu sync.Mutex
	// Format and write under one lock: the prefixer joins the pieces of a
	// split line, which holds only if the output keeps its order.
	write := func(name string, e logs.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := out.Write(pre.Format(name, e))
		return err
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		_, _ = out.Write(pre.Flush())
	}()
	opts := logs.ReadOptions{Tail: f.tail, Since: since, Until: until}

	if !f.follow {
		return mergeLogs(ctx, g, selected, names, opts, write)
	}

	ids := make([]string, len(selected))
	for i, r := range selected {
		ids[i] = r.ID
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	exits := watchExits(watchCtx, supervisor.Running(ctx, g.paths(), proj), ids)
	var wg sync.WaitGroup
	errs := make(chan error, len(selected)+1)
	follow := func(r *supervisor.Record, name string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := exits.watch(r.ID)
			o := opts
			o.Follow = true
			o.Done = done
			path := logs.LogPath(g.paths().ContainerDir(r.ID), r.ID)
			if err := logs.Read(ctx, path, o, func(e logs.Entry) error { return write(name, e) }); err != nil && ctx.Err() == nil {
				select {
				case errs <- err:
				default:
				}
			}
			// The exit is told once the container's last lines are out.
			<-done
			if exited, ok := exits.exited(r.ID); ok && onExit != nil {
				onExit(exited)
			}
		}()
	}
	seen := map[string]bool{}
	for i, r := range selected {
		seen[r.ID] = true
		follow(r, names[i])
	}
	if f.rescan {
		t := time.NewTicker(250 * time.Millisecond)
	scan:
		for {
			select {
			case <-ctx.Done():
				break scan
			case <-t.C:
			}
			recs, err := supervisor.LoadRecords(g.paths(), proj)
			if err != nil {
				continue
			}
			for _, r := range recs {
				if seen[r.ID] || r.Labels[model.LabelOneoff] == "True" || len(want) > 0 && !want[r.Service] {
					continue
				}
				// Followed from its first line once its log exists.
				if _, err := os.Stat(logs.LogPath(g.paths().ContainerDir(r.ID), r.ID)); err != nil {
					continue
				}
				seen[r.ID] = true
				follow(r, shortName(r))
			}
		}
		t.Stop()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// mergeLogs prints the entries of the selected containers merged in time
// order. Each log is read as a stream and only the next entry of each is
// held, so that memory does not grow with the logs' length.
func mergeLogs(ctx context.Context, g *globals, selected []*supervisor.Record, names []string, opts logs.ReadOptions, write func(string, logs.Entry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type source struct {
		entries chan logs.Entry
		err     chan error
		head    *logs.Entry
	}
	sources := make([]*source, len(selected))
	for i, r := range selected {
		s := &source{entries: make(chan logs.Entry, 16), err: make(chan error, 1)}
		sources[i] = s
		path := logs.LogPath(g.paths().ContainerDir(r.ID), r.ID)
		go func() {
			defer close(s.entries)
			s.err <- logs.Read(ctx, path, opts, func(e logs.Entry) error {
				select {
				case s.entries <- e:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
	}
	next := func(s *source) error {
		e, ok := <-s.entries
		if ok {
			s.head = &e
			return nil
		}
		s.head = nil
		return <-s.err
	}
	for _, s := range sources {
		if err := next(s); err != nil {
			return err
		}
	}
	for {
		pick := -1
		for i, s := range sources {
			if s.head != nil && (pick < 0 || s.head.Time.Before(sources[pick].head.Time)) {
				pick = i
			}
		}
		if pick < 0 {
			return nil
		}
		if err := write(names[pick], *sources[pick].head); err != nil {
			return err
		}
		if err := next(sources[pick]); err != nil {
			return err
		}
	}
}

// exitWatch tells when each watched container has exited for good (not
// when its restart policy is about to start it again) or is gone, as the
// supervisor sees it: one event stream, and the supervisor's list of
// containers read once subscribed and after each event about a watched one.
type exitWatch struct {
	check chan struct{} // asks run to read the list again

	mu       sync.Mutex
	done     map[string]chan struct{} // by ID, closed at the exit
	closed   map[string]bool
	last     map[string]supervisor.Record // the record of an exited container
	finished bool                         // run has ended: no more news
}

// watchExits starts watching ids through c, until ctx ends; with no
// supervisor (c nil) nothing runs, and every channel is closed at once.
func watchExits(ctx context.Context, c *supervisor.Client, ids []string) *exitWatch {
	w := &exitWatch{
		check:  make(chan struct{}, 1),
		done:   map[string]chan struct{}{},
		closed: map[string]bool{},
		last:   map[string]supervisor.Record{},
	}
	for _, id := range ids {
		w.done[id] = make(chan struct{})
	}
	go w.run(ctx, c)
	return w
}

// watch returns the channel closed at id's exit, watching it from now if
// it was not yet.
func (w *exitWatch) watch(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.done[id]
	if !ok {
		ch = make(chan struct{})
		w.done[id] = ch
		if w.finished {
			w.closed[id] = true
			close(ch)
		} else {
			w.poke()
		}
	}
	return ch
}

func (w *exitWatch) poke() {
	select {
	case w.check <- struct{}{}:
	default:
	}
}

func (w *exitWatch) watched(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.done[id]
	return ok
}

func (w *exitWatch) run(ctx context.Context, c *supervisor.Client) {
	defer w.closeAll()
	if c == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = c.EventsFrom(ctx, w.poke, func(e supervisor.Event) {
			if w.watched(e.ID) {
				w.poke()
			}
		})
		cancel() // the supervisor went away with its project
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.check:
		}
		recs, err := c.Ps(ctx)
		if err != nil {
			return
		}
		w.update(recs)
	}
}

// update closes the channels of the watched containers that recs show
// exited or no longer list.
func (w *exitWatch) update(recs []supervisor.Record) {
	byID := map[string]supervisor.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, ch := range w.done {
		if w.closed[id] {
			continue
		}
		r, ok := byID[id]
		if ok && r.State.Status != supervisor.StatusExited && r.State.Status != supervisor.StatusDead {
			continue
		}
		if ok {
			w.last[id] = r
		}
		w.closed[id] = true
		close(ch)
	}
}

func (w *exitWatch) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished = true
	for id, ch := range w.done {
		if !w.closed[id] {
			w.closed[id] = true
			close(ch)
		}
	}
}

// exited returns the record of a container that exited (not one that is
// gone, nor one still running when the watch ended).
func (w *exitWatch) exited(id string) (supervisor.Record, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.last[id]
	return r, ok
}

// shortName is how compose prefixes a container's lines: without the
// project, "web-1".
func shortName(r *supervisor.Record) string {
	if rest, ok := strings.CutPrefix(r.Name, r.Project+"-"); ok {
		return rest
	}
	// compose v1's names, under --compatibility: "web_1".
	return strings.TrimPrefix(r.Name, r.Project+"_")
}

// parseTime reads docker's --since/--until: RFC 3339, a date, Unix seconds,
// or a duration back from now ("42m").
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	// A time without a zone is local, as docker reads it.
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	// Unix seconds, with up to nine digits of fraction read exactly.
	whole, frac, _ := strings.Cut(s, ".")
	if secs, err := strconv.ParseInt(whole, 10, 64); err == nil && len(frac) <= 9 {
		nanos := int64(0)
		if frac != "" {
			if nanos, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil || frac[0] == '-' || frac[0] == '+' {
				return time.Time{}, fmt.Errorf("%q is not a timestamp or a duration", s)
			}
		}
		return time.Unix(secs, nanos), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp or a duration", s)
}
