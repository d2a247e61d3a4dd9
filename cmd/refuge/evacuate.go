package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/continuity"
	"github.com/refuge-project/refuge/internal/evacuate"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
)

func newEvacuateCmd(g *globalFlags) *cobra.Command {
	var in inputFlags
	var o evacuate.Options
	var jsonOut, quiet bool
	var site, contFile string
	var deadline time.Duration
	var drill bool
	cmd := &cobra.Command{
		Use:   "evacuate --federation F (--scenario S | --site NAME --deadline D) [--policy NAME] [--continuity FILE [--drill]] [--json]",
		Short: "Evacuate threatened sites for real, through libvirt, beside the simulator's prediction",
		Long: `evacuate connects to every host of the federation that has a libvirt uri,
reads where the VMs really run, plans the evacuation of the threatened sites and
live-migrates them with the same planner and executor as 'refuge sim'. It then
prints each migration's measured duration and downtime next to what the
simulator predicts for the same federation, scenario and policy.

Deadlines count from the command's start: the time spent connecting and taking
inventory is part of them. Hosts are connected concurrently; a host that does
not answer within --connect-timeout (or refuses twice) is reported once on
stderr and left out: its VMs are reported lost (unreachable), and nothing
migrates to or from it.

While it runs, the executor's timeline is streamed (every migration's start
and end, re-plans, deadlines), with a status line when stdout is a terminal.
SIGINT or SIGTERM stops starting migrations; running ones end first.

A host's uri may carry a "peer" query parameter: the URI the other hosts'
daemons use to reach it for peer-to-peer migration, when it differs from the
one refuge connects to (docs/libvirt.md).

--continuity FILE keeps the services reachable under their names
(docs/continuity.md): the file names the zone's DNS server, zone and TSIG key
(the secret from secret_file or $REFUGE_TSIG_SECRET, never the command line)
and the sites' gateways. The TTL of the names of the services at risk is
lowered as the evacuation starts and restored at its end; at each VM's
switchover every gateway routes to the new place and the name moves to the
new site's gateway. Failures are reported, never fatal to the evacuation.

--drill (with --continuity) moves nothing real: the evacuation runs in the
simulator, and at each simulated switchover the DNS records are updated for
real in the configuration's drill_zone only (moodle.example.ac.jp is drilled
as moodle.<drill_zone>); no gateway is told anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Start = time.Now() // deadlines count from here
			if (in.scenario == "") == (site == "") {
				return errors.New("give either --scenario or --site with --deadline")
			}
			fed, sc, pol, err := in.load()
			if err != nil {
				return err
			}
			if sc == nil {
				sc = &model.Scenario{Name: "evacuate-" + site, Threats: []model.Threat{{Site: site, Deadline: model.Duration(deadline)}}}
				if err := sc.Validate(fed); err != nil {
					return fmt.Errorf("--site/--deadline: %w", err)
				}
			}
			o.Federation, o.Scenario, o.Policy = fed, sc, pol
			o.Logger = g.logger(cmd.ErrOrStderr())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if drill && contFile == "" {
				return errors.New("--drill exercises continuity: give --continuity FILE")
			}
			if contFile != "" {
				cfg, err := continuity.LoadConfig(contFile)
				if err != nil {
					return err
				}
				c, err := continuity.Build(fed, cfg, continuity.BuildOptions{Drill: drill})
				if err != nil {
					return fmt.Errorf("--continuity %s: %w", contFile, err)
				}
				o.Continuity, o.LoweredTTL = c, cfg.LoweredTTL
			}
			if drill {
				return runDrill(ctx, out, jsonOut, quiet, o, newTimeline(out, fed, sc, true))
			}
			o.OnHosts = func(states []libvirt.HostState) { reportHostsDown(errw, states) }
			var prog *progress
			if !jsonOut && !quiet {
				header := fmt.Sprintf("Timeline (policy %s, time since the command started; deadlines count from it)", pol.Name)
				prog = newProgress(out, isTerminal(out), newTimeline(out, fed, sc, true), header, o.Start, len(libvirt.HostsFromFederation(fed)))
				o.OnEvent = prog.event
				onHosts := o.OnHosts
				o.OnHosts = func(states []libvirt.HostState) { prog.pause(func() { onHosts(states) }) }
				prog.run()
			}
			rep, err := evacuate.Run(ctx, o)
			if prog != nil {
				prog.close()
			}
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printEvacuation(out, rep)
			return nil
		},
	}
	in.register(cmd, false)
	cmd.Flags().StringVar(&in.scenario, "scenario", "", "scenario YAML file naming the threatened sites and deadlines")
	cmd.Flags().StringVar(&site, "site", "", "threatened site (with --deadline)")
	cmd.Flags().DurationVar(&deadline, "deadline", 10*time.Minute, "time until the threatened site is lost, from the command's start (with --site)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object (no timeline)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no timeline, summary only")
	cmd.Flags().DurationVar(&o.ConnectTimeout, "connect-timeout", evacuate.DefaultConnectTimeout, "how long to wait for each host's libvirt daemon before leaving the host out")
	cmd.Flags().BoolVar(&o.NoPredict, "no-predict", false, "do not run the simulator for predictions")
	cmd.Flags().BoolVar(&o.NonLive, "non-live", false, "migrate non-live (paused for the whole copy), for hypervisors whose live migration cannot be trusted (QEMU 7.2 under TCG)")
	cmd.Flags().StringVar(&contFile, "continuity", "", "continuity configuration (DNS server, zone, TSIG key file, gateways): services' names follow their VMs (docs/continuity.md)")
	cmd.Flags().BoolVar(&drill, "drill", false, "simulate the evacuation and update DNS in the --continuity file's drill_zone only; nothing real moves")
	cmd.Flags().DurationVar(&o.HealthSettle, "health-settle", 0, "how long a guest must keep answering its agent after a switch-over (default 2s)")
	return cmd
}

// runDrill plays the evacuation in the simulator with continuity
// exercised against the drill zone.
func runDrill(ctx context.Context, out io.Writer, jsonOut, quiet bool, o evacuate.Options, tl *timeline) error {
	d := evacuate.DrillOptions{Federation: o.Federation, Scenario: o.Scenario, Policy: o.Policy, Logger: o.Logger,
		Continuity: o.Continuity, LoweredTTL: o.LoweredTTL}
	if !jsonOut && !quiet {
		fmt.Fprintf(out, "Drill timeline (policy %s, simulated time; DNS updates are real, in the drill zone)\n", o.Policy.Name)
		d.OnEvent = tl.event
	}
	rep, err := evacuate.Drill(ctx, d)
	if err != nil {
		return err
	}
	if jsonOut {
		return printJSON(out, rep)
	}
	if d.OnEvent != nil {
		tl.finish()
	}
	s := rep.Summary
	fmt.Fprintf(out, "Drill: %d of %d VMs at risk evacuated (simulated, makespan %.1f s); names of %d services at risk moved: %d switchovers, %d continuity problems\n",
		s.VMsEvacuated, s.VMsAtRisk, s.MakespanS, len(rep.Services), len(rep.Switchovers), len(rep.ContinuityErrors))
	printContinuityErrors(out, rep.ContinuityErrors)
	return nil
}

// printContinuityErrors lists continuity's failed steps.
func printContinuityErrors(w io.Writer, errs []string) {
	for _, e := range errs {
		fmt.Fprintf(w, "  continuity: %s\n", e)
	}
}

// reportHostsDown says once, one line per host, which hosts are left out.
func reportHostsDown(w io.Writer, states []libvirt.HostState) {
	for _, st := range states {
		if !st.Up {
			fmt.Fprintf(w, "refuge: host %s unreachable, left out: %s\n", st.Host, st.Reason)
		}
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress streams the timeline (the same printer as `refuge demo -v`)
// and, on a terminal, keeps a status line under it that is redrawn every
// second: the time since the start, the bar of VMs safe and the
// migrations running.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	tl       *timeline
	header   string
	start    time.Time
	hosts    int
	started  bool // the executor has started
	shown    bool // a status line is on screen
	closed   bool
	stopTick chan struct{}
	ticking  sync.WaitGroup
}

func newProgress(w io.Writer, tty bool, tl *timeline, header string, start time.Time, hosts int) *progress {
	return &progress{w: w, tty: tty, tl: tl, header: header, start: start, hosts: hosts, stopTick: make(chan struct{})}
}

// run starts redrawing the status line (terminals only).
func (p *progress) run() {
	if !p.tty {
		return
	}
	p.draw()
	p.ticking.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stopTick:
				return
			case <-t.C:
				p.draw()
			}
		}
	})
}

// close removes the status line and stops redrawing it.
func (p *progress) close() {
	close(p.stopTick)
	p.ticking.Wait()
	p.pause(func() {
		p.closed = true
		if p.started {
			p.tl.finish()
		}
	})
}

// event prints one timeline event above the status line.
func (p *progress) event(e executor.Event) {
	p.pause(func() {
		if !p.started {
			fmt.Fprintln(p.w, p.header)
			p.started = true
		}
		p.tl.event(e)
	})
}

// pause removes the status line while f writes, then draws it again.
func (p *progress) pause(f func()) {
	p.mu.Lock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
	f()
	p.mu.Unlock()
	p.draw()
}

// draw shows the status line (terminals only, until closed).
func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty || p.closed {
		return
	}
	fmt.Fprint(p.w, "\r\033[K"+p.status())
	p.shown = true
}

// status is the status line's text.
func (p *progress) status() string {
	at := clockString(time.Since(p.start))
	if !p.started {
		return fmt.Sprintf("  %s  connecting to %d hosts, inventory …", at, p.hosts)
	}
	const width = 20
	filled := 0
	if p.tl.atRisk > 0 {
		filled = min(p.tl.safe*width/p.tl.atRisk, width)
	}
	return fmt.Sprintf("  %s  [%s%s] %d/%d VMs safe, %d migrating", at, strings.Repeat("█", filled), strings.Repeat("░", width-filled),
		p.tl.safe, p.tl.atRisk, p.tl.migrating)
}

func printEvacuation(w io.Writer, r *evacuate.Report) {
	mode := "live"
	if !r.Live {
		mode = "non-live"
	}
	fmt.Fprintf(w, "Evacuation of %s (policy %s, %s): %d of %d VMs at risk evacuated; started moving at %.1f s; migrations ended at %.1f s (simulator: %.1f s, %+.1f %%), done at %.1f s\n",
		r.Federation, r.Policy, mode, r.VMsEvacuated, r.VMsAtRisk, r.ReadyS, r.MigrationsEndS, r.PredictedMakespanS, r.MakespanErrorPct, r.MakespanS)
	if len(r.HostsDown) > 0 {
		var names []string
		for _, h := range r.HostsDown {
			names = append(names, h.Host)
		}
		fmt.Fprintf(w, "%d hosts unreachable (%s): %d VMs on them lost\n", len(r.HostsDown), strings.Join(names, ", "), r.VMsUnreachable)
	}
	if r.Restarted > 0 {
		fmt.Fprintf(w, "%d guests were dead after their switch-over and were restarted from disk at the destination\n", r.Restarted)
	}
	fmt.Fprintf(w, "mean migration %.1f s (simulator %.1f s, predicted in %.0f ms), mean |error| %.1f %%, max downtime %.0f ms\n\n",
		r.MeanMigrationS, r.PredictedMeanS, r.PredictMS, r.MeanAbsErrorPct, r.MaxDowntimeMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "vm\tstatus\tto\tstart s\tmigration s\tdowntime ms\trestarted\tMiB\t\tpredicted to\tstart s\tmigration s\tdowntime ms\terror %\t")
	for _, v := range r.VMs {
		if v.Status != string(executor.StatusMigrated) && v.Attempts == 0 {
			continue // listed below with the reason
		}
		restart := "-"
		if v.Restarted {
			restart = fmt.Sprintf("%.1f s out", v.OutageMS/1000)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.2f\t%.0f\t%s\t%d\t\t%s\t%.1f\t%.2f\t%.0f\t%+.1f\t\n", v.Name, v.Status, v.To, v.StartS, v.MigrationS,
			v.DowntimeMS, restart, v.Bytes>>20, v.PredictedTo, v.PredictedStartS, v.PredictedS, v.PredictedDowntimeMS, v.ErrorPct)
	}
	tw.Flush()
	for _, v := range r.VMs {
		if v.Status != string(executor.StatusMigrated) {
			fmt.Fprintf(w, "  %s (%s on %s): %s\n", v.Name, v.Status, v.From, v.Reason)
		}
	}
	if len(r.ContinuityServices) > 0 {
		fmt.Fprintf(w, "continuity: names of %d services at risk (%s) followed their VMs: %d switchovers, %d problems\n",
			len(r.ContinuityServices), strings.Join(r.ContinuityServices, ", "), len(r.Switchovers), len(r.ContinuityErrors))
		printContinuityErrors(w, r.ContinuityErrors)
	}
}
