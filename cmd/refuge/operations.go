package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/refuge-project/refuge/internal/client"
	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/server"
	"github.com/refuge-project/refuge/internal/store"
)

func newOperationsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operations",
		Short: "List, show, watch, pause, resume or cancel a controller's operations",
	}
	var lf clientFlags
	list := &cobra.Command{
		Use:  "list [--json]",
		Args: cobra.NoArgs, Short: "List operations, oldest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.client()
			if err != nil {
				return err
			}
			ops, err := c.Operations(cmd.Context())
			if err != nil {
				return err
			}
			if lf.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"operations": ops})
			}
			for _, op := range ops {
				fmt.Fprintln(cmd.OutOrStdout(), operationLine(&op))
			}
			return nil
		},
	}
	lf.register(list)
	jsonObjectFlag(list, &lf.json, "the operations")
	var gf clientFlags
	get := &cobra.Command{
		Use:  "get ID [--json]",
		Args: cobra.ExactArgs(1), Short: "Show an operation with its per-VM progress",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := gf.client()
			if err != nil {
				return err
			}
			d, err := c.Operation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if gf.json {
				return printJSON(cmd.OutOrStdout(), d)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, operationLine(&d.Operation))
			for _, st := range d.VMs {
				fmt.Fprintf(w, "  %-24s %-9s %s → %s %s\n", st.VM, st.State, st.From, st.To, st.Error)
			}
			return nil
		},
	}
	gf.register(get)
	jsonObjectFlag(get, &gf.json, "the operation")
	cmd.AddCommand(list, get, newWatchOperationCmd())
	for _, act := range []controller.Action{controller.ActPause, controller.ActResume, controller.ActCancel} {
		cmd.AddCommand(newControlCmd(act))
	}
	return cmd
}

func newControlCmd(act controller.Action) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   string(act) + " ID [--json]",
		Short: strings.ToUpper(string(act[:1])) + string(act[1:]) + " an evacuation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.Control(cmd.Context(), args[0], act)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), a)
			}
			fmt.Fprintln(cmd.OutOrStdout(), operationLine(a.Operation))
			return nil
		},
	}
	f.register(cmd)
	jsonObjectFlag(cmd, &f.json, "the operation")
	return cmd
}

func operationLine(op *store.Operation) string {
	sites := make([]string, len(op.Sites))
	for i, s := range op.Sites {
		sites[i] = s.Site
	}
	p := op.Progress
	return fmt.Sprintf("%s  %-10s %-9s %-20s %d/%d migrated, %d running, %d missed, %d lost, %d unsaved, %d failed",
		op.ID, op.Kind, op.Status, strings.Join(sites, ","), p.Migrated, p.Total, p.Running, p.Missed, p.Lost, p.Unsaved, p.Failed)
}

func newWatchOperationCmd() *cobra.Command {
	var f clientFlags
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch ID [--json]",
		Short: "Follow an operation's progress until it ends",
		Long: `watch follows an operation until it ends, woken by the controller's events.
When stdout is a terminal it draws live progress bars: the VMs migrated and
the VMs decided (no longer pending or moving) out of those at risk, with
the counts running, missed and lost. Otherwise it prints one line per
change. --json prints JSON lines: one progress object per change, the
final operation last.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			show := showLines
			switch {
			case f.json:
				show = showJSON
			case isTerminal(w):
				show = showBars(cmd.Context(), w, args[0], false)
			}
			return watchWith(cmd.Context(), c, args[0], interval, show, w)
		},
	}
	f.register(cmd)
	jsonLinesFlag(cmd, &f.json, "progress")
	cmd.Flags().DurationVar(&interval, "interval", 500*time.Millisecond, "how often to refresh the progress")
	return cmd
}

// shower shows the operation's state: at a change (live) and once at
// the end (not live, or stopped by err, when the watch failed).
type shower func(w io.Writer, op *store.Operation, live bool, err error)

// showJSON prints one JSON line per change: the progress, the final
// operation last.
func showJSON(w io.Writer, op *store.Operation, live bool, err error) {
	switch {
	case err != nil:
		return
	case live:
		b, _ := json.Marshal(map[string]any{"operation_id": op.ID, "status": op.Status, "progress": op.Progress})
		fmt.Fprintln(w, string(b))
	default:
		b, _ := json.Marshal(op)
		fmt.Fprintln(w, string(b))
	}
}

// showLines prints a text progress bar per change.
func showLines(w io.Writer, op *store.Operation, _ bool, err error) {
	if err == nil {
		fmt.Fprintln(w, progressBar(op))
	}
}

// showBars draws live bars (mpb) on a terminal, as wide as it is: a
// line with the operation's id, status and counts, then a bar of the VMs
// migrated and one of the VMs decided. force renders to any writer, 100
// columns wide (tests).
func showBars(ctx context.Context, w io.Writer, id string, force bool) shower {
	opts := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithRefreshRate(200 * time.Millisecond)}
	if force {
		opts = append(opts, mpb.WithAutoRefresh(), mpb.WithWidth(100))
	}
	p := mpb.NewWithContext(ctx, opts...)
	var mu sync.Mutex
	var cur store.Progress
	status := "pending"
	header := p.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%s %s: %d running, %d missed, %d lost, %d unsaved", id, status, cur.Running, cur.Missed, cur.Lost, cur.Unsaved)
	})))
	bar := func(name string) *mpb.Bar {
		return p.AddBar(0, mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.CountersNoUnit("%d/%d", decor.WCSyncWidth)),
			mpb.AppendDecorators(decor.Percentage(decor.WCSyncWidth)))
	}
	bars := []*mpb.Bar{header, bar("migrated"), bar("decided")}
	return func(_ io.Writer, op *store.Operation, live bool, err error) {
		pr := op.Progress
		mu.Lock()
		cur, status = pr, op.Status
		mu.Unlock()
		total := int64(pr.Total)
		for i, b := range bars {
			b.SetTotal(total, false)
			b.SetCurrent([]int64{0, int64(pr.Migrated), int64(pr.Total - pr.Pending - pr.Running)}[i])
			switch {
			case err != nil:
				b.Abort(false)
			case !live:
				b.SetTotal(total, true)
			}
		}
		if err != nil || !live {
			p.Wait()
		}
	}
}

// watchOperation follows the operation until it ends, printing a line
// (or with jsonOut a JSON line) per change.
func watchOperation(ctx context.Context, c *client.Client, id string, interval time.Duration, jsonOut bool, w io.Writer) error {
	show := showLines
	if jsonOut {
		show = showJSON
	}
	return watchWith(ctx, c, id, interval, show, w)
}

// watchWith polls the operation (events wake it early) and shows it until
// it ends.
func watchWith(ctx context.Context, c *client.Client, id string, interval time.Duration, show shower, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	wake := make(chan struct{}, 1)
	var events sync.WaitGroup
	defer events.Wait()
	defer cancel()
	events.Go(func() {
		_ = c.Events(ctx, func(_ string, ch store.Change) bool {
			if ch.OperationID == id {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
			return true
		})
	})
	var last store.Progress
	first := true
	t := time.NewTicker(interval)
	defer t.Stop()
	shown := &store.Operation{ID: id}
	for {
		d, err := c.Operation(ctx, id)
		if err != nil {
			show(w, shown, false, err)
			return err
		}
		shown = &d.Operation
		live := store.Live(d.Status)
		if first || d.Progress != last || !live {
			show(w, shown, live, nil)
		}
		first, last = false, d.Progress
		if !live {
			if d.Status == store.OpFailed {
				return fmt.Errorf("operation %s failed: %s", id, d.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			show(w, shown, false, ctx.Err())
			return ctx.Err()
		case <-t.C:
		case <-wake:
		}
	}
}

func progressBar(op *store.Operation) string {
	p := op.Progress
	const width = 30
	done := 0
	if p.Total > 0 {
		done = p.Migrated * width / p.Total
	}
	return fmt.Sprintf("%s [%s%s] %d/%d migrated, %d running, %d missed, %d lost  %s",
		op.ID, strings.Repeat("#", done), strings.Repeat(".", width-done), p.Migrated, p.Total, p.Running, p.Missed, p.Lost, op.Status)
}

// withRemoteEvacuate lets `refuge evacuate --site S` talk to a controller
// when --server or REFUGE_SERVER is set and no --federation is given; the
// local (libvirt) evacuation is unchanged otherwise.
func withRemoteEvacuate(cmd *cobra.Command) *cobra.Command {
	var f clientFlags
	var dryRun bool
	f.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "with a controller: print the plan, start nothing")
	if fl := cmd.Flags().Lookup("federation"); fl != nil {
		delete(fl.Annotations, cobra.BashCompOneRequiredFlag)
		fl.Usage = "federation YAML file (required unless a controller is given by --server or $" + serverEnv + ")"
	}
	local := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		fedGiven := cmd.Flags().Changed("federation")
		if fedGiven || f.serverURL() == "" {
			if !fedGiven {
				return errors.New(`required flag(s) "federation" not set (or give a controller with --server or $` + serverEnv + ")")
			}
			return local(cmd, args)
		}
		site, _ := cmd.Flags().GetString("site")
		if site == "" {
			return errors.New("with a controller, give --site NAME")
		}
		q := server.SitesRequest{Site: site}
		if cmd.Flags().Changed("deadline") {
			d, _ := cmd.Flags().GetDuration("deadline")
			q.Deadline = d.String()
		}
		jsonOut, _ := cmd.Flags().GetBool("json")
		c, err := f.client()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if dryRun {
			p, err := c.Plan(cmd.Context(), q)
			if err != nil {
				return err
			}
			if jsonOut {
				return printJSON(out, p)
			}
			var s controller.PlanSummary
			if err := json.Unmarshal(p, &s); err != nil {
				return err
			}
			fmt.Fprintf(out, "dry run: %d VMs at risk, %d moves, %d unsaved; lower bound %.0f s, predicted makespan %.0f s (bottleneck %s)\n",
				s.AtRisk, s.Moves, s.Unsaved, s.LowerBoundS, s.MakespanS, s.Bottleneck)
			return nil
		}
		a, err := c.Evacuate(cmd.Context(), q)
		if err != nil {
			return err
		}
		if jsonOut {
			return printJSON(out, a)
		}
		fmt.Fprintf(out, "operation %s started; follow it with: refuge operations watch %s\n", a.OperationID, a.OperationID)
		return nil
	}
	return cmd
}
