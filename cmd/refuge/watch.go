package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/daemon"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/threat"
	"github.com/refuge-project/refuge/internal/world"
)

type watchFlags struct {
	in             inputFlags
	simulate       bool
	sources        []string
	threatPolicy   string
	speed          float64
	replay         bool
	pace           bool
	actOn          []string
	abortOnCancel  bool
	relaySecrets   []string
	relaySecretsIn string
	interval       time.Duration
	duration       time.Duration
	connectTimeout time.Duration
	json           bool
	verbose        bool
}

func newWatchCmd(g *globalFlags) *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch --federation F [--simulate [--speed N]] --source KIND:ADDR [--source …] [--json]",
		Short: "Run the alert pipeline: sources → dedup → threat → plan → executor, on the federation's hosts or simulated",
		Long: `watch takes alerts from its sources, drops repeats and stale versions, assesses
each new alert against the federation with the threat policy, and evacuates the
sites it threatens; updated alerts move deadlines, cancellations withdraw them.
It prints the timeline: the pipeline's steps and the executors' plans and
migrations.

Without --simulate the evacuations are real: watch connects to every host of
the federation through its libvirt uri (as refuge evacuate does; a host that
does not answer within --connect-timeout is reported and left out) and
live-migrates on the wall clock. With --simulate the federation is simulated
(simhv on the discrete-event engine) and its virtual clock runs in real time,
or --speed times faster: the alerts, deadlines and migrations all live on
that clock.

Sources (repeat --source):
  file:PATH         a document, or a directory of documents read in name order
                    (paced by their issue times unless --pace=false; with
                    --interval the directory is then watched for new files)
  webhook:ADDR      the signed relay receiver on ADDR (needs --relay-secret)
  jma-atom:URL      a JMA Atom feed (e.g. https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml)
  atom:URL          any Atom feed of alert documents
  usgs:URL          a USGS GeoJSON feed
  p2pquake:[URL]    P2PQuake's WebSocket stream (default wss://api.p2pquake.net/v2/ws)

Exercise and test alerts run as drills on a separate simulated copy of the
federation unless --act-on names their status. With --replay (the default
when simulating) each alert's deadlines count from its receipt, as if just
issued; --replay=false counts from the times the alert names (live feeds at
--speed 1). Sites whose threat policy says approval: approve wait for
"approve SITE" (or "decline SITE", "status") on standard input.

watch ends on interrupt, after --duration, or once every source has ended
(a file source without --interval) and the evacuations are over.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("replay") {
				f.replay = f.simulate
			}
			return runWatch(cmd, g, &f)
		},
	}
	f.in.register(cmd, false)
	registerThreatPolicy(cmd, &f.threatPolicy)
	cmd.Flags().BoolVar(&f.simulate, "simulate", false, "drive a simulated federation instead of the hosts' libvirt daemons")
	cmd.Flags().DurationVar(&f.connectTimeout, "connect-timeout", world.DefaultConnectTimeout, "without --simulate: how long to wait for each host's libvirt daemon before leaving the host out")
	cmd.Flags().StringArrayVar(&f.sources, "source", nil, "alert source KIND:ADDR (repeatable): file, webhook, jma-atom, atom, usgs, p2pquake")
	cmd.Flags().Float64Var(&f.speed, "speed", 1, "with --simulate: simulated seconds per wall-clock second (1: real time)")
	cmd.Flags().BoolVar(&f.replay, "replay", false, "count each alert's deadlines from its receipt (default: on with --simulate)")
	cmd.Flags().BoolVar(&f.pace, "pace", true, "deliver a file source's documents at the pace of their issue times")
	cmd.Flags().StringSliceVar(&f.actOn, "act-on", []string{"actual"}, "alert statuses that drive the federation itself (others run as drills): actual, exercise, test")
	cmd.Flags().BoolVar(&f.abortOnCancel, "abort-on-cancel", false, "abort running migrations from a site whose threat is withdrawn (default: let them finish)")
	registerRelaySecretsFile(cmd, &f.relaySecretsIn)
	cmd.Flags().StringArrayVar(&f.relaySecrets, "relay-secret", nil, "relay id and secret for webhook sources, ID=SECRET (repeatable)")
	_ = cmd.Flags().MarkDeprecated("relay-secret", "a secret on the command line shows in ps and in shell history: use --relay-secrets-file or "+relaySecretsEnv)
	cmd.Flags().DurationVar(&f.interval, "interval", 0, "poll interval of feeds (default 1m) and watch interval of file sources (default: read once)")
	cmd.Flags().DurationVar(&f.duration, "duration", 0, "stop after this much wall-clock time (0: see above)")
	jsonLinesFlag(cmd, &f.json, "the timeline")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "show every migration's start and end")
	return cmd
}

// relaySecretsEnv is the environment variable watch and serve read relay
// secrets from.
const relaySecretsEnv = daemon.RelaySecretsEnv

func registerRelaySecretsFile(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVar(file, "relay-secrets-file", "", "file of ID=SECRET lines for webhook sources (or set "+relaySecretsEnv+")")
}

// relaySecrets reads the relay secrets: the --relay-secrets-file, the
// environment variable, and the deprecated --relay-secret flags.
func relaySecrets(file string, entries []string) (map[string][]byte, error) {
	m, err := daemon.RelaySecrets(file, entries)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return nil, fmt.Errorf("--relay-secrets-file: %w", err)
	}
	return m, err
}

func (f *watchFlags) relaySecretsMap() (map[string][]byte, error) {
	return relaySecrets(f.relaySecretsIn, f.relaySecrets)
}

func runWatch(cmd *cobra.Command, g *globalFlags, f *watchFlags) error {
	if len(f.sources) == 0 {
		return errors.New("watch needs at least one --source (e.g. --source file:examples/nankai-trough/drill)")
	}
	if !(f.speed > 0) {
		return fmt.Errorf("--speed %g: must be positive", f.speed)
	}
	if f.speed != 1 && !f.simulate {
		return errors.New("--speed needs --simulate: real hosts migrate in real time")
	}
	if f.speed != 1 && !f.replay {
		return errors.New("--replay=false needs --speed 1: a live alert's times are wall-clock times")
	}
	actOn, err := parseStatuses(strings.Join(f.actOn, ","))
	if err != nil {
		return fmt.Errorf("--act-on: %w", err)
	}
	fed, _, pol, err := f.in.load()
	if err != nil {
		return err
	}
	tpol, err := loadThreatPolicy(f.threatPolicy, fed)
	if err != nil {
		return err
	}
	secrets, err := f.relaySecretsMap()
	if err != nil {
		return err
	}
	logger := g.logger(cmd.ErrOrStderr())
	epoch := time.Now()
	wallStart := epoch // both worlds (and so the pipeline) tell the same time
	pr := &watchPrinter{w: cmd.OutOrStdout(), json: f.json, verbose: f.verbose, epoch: epoch, stats: map[bool]*worldStats{}}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	simConfig := func(drill bool) world.SimConfig {
		pr.stats[drill] = &worldStats{migrating: map[string]bool{}}
		return world.SimConfig{
			Federation: fed, Policy: pol, Epoch: epoch, Speed: f.speed, WallStart: wallStart, Logger: logger,
			OnEvent:    func(at time.Time, ev executor.Event) { pr.executorEvent(drill, at, ev) },
			OnSiteLost: func(at time.Time, site string) { pr.siteLost(drill, at, site) },
		}
	}
	var real world.World
	if f.simulate {
		real, err = world.NewSim(simConfig(false))
	} else {
		pr.stats[false] = &worldStats{migrating: map[string]bool{}}
		real, err = world.Connect(ctx, world.HostsConfig{Federation: fed, Policy: pol, Logger: logger, ConnectTimeout: f.connectTimeout,
			OnHosts: func(states []libvirt.HostState) { reportHostsDown(cmd.ErrOrStderr(), states) },
			OnEvent: func(at time.Time, ev executor.Event) { pr.executorEvent(false, at, ev) }})
		if err != nil {
			return fmt.Errorf("%w (--simulate drives a simulated federation instead)", err)
		}
	}
	if err != nil {
		return err
	}
	defer real.Close()
	worlds := []world.World{real}
	var drill world.World
	if !slices.Contains(actOn, alert.StatusExercise) || !slices.Contains(actOn, alert.StatusTest) {
		// Some statuses only drill: they get their own simulated copy.
		if drill, err = world.NewSim(simConfig(true)); err != nil {
			return err
		}
		worlds = append(worlds, drill)
	}
	cfg := pipeline.Config{
		Federation: fed, Policy: tpol, Target: real.Target(), ActOn: actOn, AbortOnCancel: f.abortOnCancel,
		Replay: f.replay, Clock: real.PipelineClock(), Logger: logger, OnEvent: pr.pipelineEvent,
	}
	if drill != nil {
		cfg.Drill = drill.Target()
	}
	p, err := pipeline.New(cfg)
	if err != nil {
		return err
	}

	// Sources run on the wall clock (feeds are polled at their real
	// interval, relay signatures carry wall-clock times); only a file
	// source's pacing follows the world's clock.
	sc := daemon.SourceConfig{Specs: f.sources, Secrets: secrets,
		Options: alertsource.SpecOptions{
			Common:   alertsource.Common{Logger: logger, OnError: pr.sourceError},
			Interval: f.interval, MaxAge: daemon.DefaultMaxAge, Seed: uint64(epoch.UnixNano()),
		},
		PaceClock: real.PipelineClock(),
		OnListen:  func(addr net.Addr) { pr.note("listening", fmt.Sprintf("relay receiver on http://%s/", addr)) },
		OnFailed:  pr.sourceFailed,
	}
	if f.pace {
		sc.Options.Pace = 1 // on the world's clock: the documents' own pace in simulated time
	}
	sources, err := daemon.Sources(sc)
	if err != nil {
		return err
	}

	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends readApprovals
	pr.header(fed, f, sources)
	if needsApproval(tpol, fed) {
		go readApprovals(ctx, cmd.InOrStdin(), p, pr)
	}
	runErr := daemon.Watch(ctx, p, worlds, sources)
	pr.summary(worlds, p)
	// Each error is in the timeline already; the exit error only counts
	// them.
	switch {
	case pr.sourcesFailed > 0:
		return fmt.Errorf("%d alert source(s) failed (see the timeline)", pr.sourcesFailed)
	case runErr != nil && !errors.Is(runErr, context.Canceled):
		return runErr
	case pr.refused > 0:
		return fmt.Errorf("%d alert document(s) refused (see the timeline); none raised a threat", pr.refused)
	}
	return nil
}

func needsApproval(pol *threat.Policy, fed *model.Federation) bool {
	for _, s := range fed.Sites {
		if pol.ApprovalFor(s.Name) == threat.ApprovalApprove {
			return true
		}
	}
	return false
}

// readApprovals reads operator commands: approve ID, decline ID, status.
func readApprovals(ctx context.Context, in io.Reader, p *pipeline.Pipeline, pr *watchPrinter) {
	sc := bufio.NewScanner(in)
	for sc.Scan() && ctx.Err() == nil {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		var err error
		switch {
		case fields[0] == "approve" && len(fields) == 2:
			err = p.Approve(fields[1])
		case fields[0] == "decline" && len(fields) == 2:
			err = p.Decline(fields[1])
		case fields[0] == "status":
			for _, a := range p.Pending() {
				pr.note("pending", fmt.Sprintf("%s: %s by %s — %s", a.ID, a.Hazard, a.Deadline.Format(time.RFC3339), a.Reason))
			}
			continue
		default:
			err = fmt.Errorf("unknown command %q (approve ID, decline ID, status)", sc.Text())
		}
		if err != nil {
			pr.note("error", err.Error())
		}
	}
}

// worldStats counts a world's migrations for progress lines.
type worldStats struct {
	migrating map[string]bool // VMs whose migration runs
	done      int
	nextBar   time.Duration
	lost      []string
}

// watchPrinter prints the timeline (one goroutine at a time).
type watchPrinter struct {
	mu      sync.Mutex
	w       io.Writer
	json    bool
	verbose bool
	epoch   time.Time
	stats   map[bool]*worldStats
	// refused counts documents refused by a source and alerts rejected
	// by the pipeline.
	refused int
	// sourcesFailed counts the sources that ended with an error.
	sourcesFailed int
}

// watchLine is one JSON line of the timeline.
type watchLine struct {
	T      float64   `json:"t"`
	At     time.Time `json:"at"`
	World  string    `json:"world,omitempty"`
	Source string    `json:"source"`
	Kind   string    `json:"kind"`
	VM     string    `json:"vm,omitempty"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Site   string    `json:"site,omitempty"`
	Event  string    `json:"event_id,omitempty"`
	Serial int       `json:"serial,omitempty"`
	Detail string    `json:"detail,omitempty"`
	// Deadlines and Watch (applied events) and Assessment (assessed
	// events).
	Deadlines  map[string]time.Time `json:"deadlines,omitempty"`
	Watch      []string             `json:"watch,omitempty"`
	Assessment *threat.Assessment   `json:"assessment,omitempty"`
}

func worldName(drill bool) string {
	if drill {
		return "drill"
	}
	return ""
}

func (pr *watchPrinter) emit(l watchLine) {
	l.T = l.At.Sub(pr.epoch).Seconds()
	if pr.json {
		data, _ := json.Marshal(l)
		fmt.Fprintf(pr.w, "%s\n", data)
		return
	}
	tag := ""
	if l.World != "" {
		tag = "[" + l.World + "] "
	}
	line := fmt.Sprintf("  %s  %-10s %s", clockString(l.At.Sub(pr.epoch)), l.Kind, tag)
	if l.VM != "" {
		line += l.VM + " "
	}
	if l.From != "" || l.To != "" {
		line += fmt.Sprintf("%s → %s  ", l.From, l.To)
	}
	fmt.Fprintln(pr.w, strings.TrimRight(line+l.Detail, " "))
}

func (pr *watchPrinter) header(fed *model.Federation, f *watchFlags, sources []alertsource.Source) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.json {
		return
	}
	mode, clk := "real hosts (libvirt, real time", "time"
	if f.simulate {
		mode, clk = "simulated (real time", "simulated time"
		if f.speed != 1 {
			mode = fmt.Sprintf("simulated (%g× real time", f.speed)
		}
	}
	var names []string
	for _, s := range sources {
		names = append(names, s.Name())
	}
	fmt.Fprintf(pr.w, "refuge watch — %s, %s, started %s); sources: %s\n", fed.Name, mode,
		pr.epoch.Format(time.RFC3339), strings.Join(names, ", "))
	fmt.Fprintf(pr.w, "Timeline (%s since start)\n", clk)
}

func (pr *watchPrinter) note(kind, detail string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.emit(watchLine{At: time.Now(), Source: "watch", Kind: kind, Detail: detail})
}

func (pr *watchPrinter) sourceError(err error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if errors.Is(err, alertsource.ErrRejected) {
		return // the pipeline reported it
	}
	pr.refused++
	pr.emit(watchLine{At: time.Now(), Source: "source", Kind: "refused", Detail: err.Error()})
}

func (pr *watchPrinter) sourceFailed(name string, err error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.sourcesFailed++
	pr.emit(watchLine{At: time.Now(), Source: "source", Kind: "failed", Detail: fmt.Sprintf("%s: %v", name, err)})
}

func (pr *watchPrinter) pipelineEvent(ev pipeline.Event) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if ev.Kind == pipeline.EvRejected {
		pr.refused++
	}
	l := watchLine{At: ev.At, World: worldName(ev.Drill), Source: "pipeline", Kind: ev.Kind, Site: ev.Site, Event: ev.EventID,
		Serial: ev.Serial, Detail: ev.Detail, Deadlines: ev.Deadlines, Watch: ev.Watch, Assessment: ev.Assessment}
	if !pr.json {
		l.Assessment = nil
		what := ev.EventID
		if ev.Serial > 0 {
			what += fmt.Sprintf(" #%d", ev.Serial)
		}
		if ev.Product != "" {
			what = ev.Product + " " + what
		}
		switch ev.Kind {
		case pipeline.EvAssessed:
			a := ev.Assessment
			l.Kind, l.Detail = "alert", fmt.Sprintf("%s %s %s %s: %s", a.Format, what, a.Kind, a.MsgType, ev.Detail)
		case pipeline.EvApplied:
			l.Kind = "evacuate"
		case pipeline.EvDuplicate, pipeline.EvStale, pipeline.EvIgnored, pipeline.EvRejected, pipeline.EvCancelled:
			l.Detail = fmt.Sprintf("%s: %s", what, ev.Detail)
		}
	}
	pr.emit(l)
}

func (pr *watchPrinter) executorEvent(drill bool, at time.Time, ev executor.Event) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	st := pr.stats[drill]
	if since := at.Sub(pr.epoch); !pr.json {
		// A progress line at each simulated minute while migrations run.
		if st.nextBar == 0 {
			st.nextBar = since.Truncate(time.Minute) + time.Minute
		}
		for ; since >= st.nextBar; st.nextBar += time.Minute {
			if len(st.migrating) > 0 {
				pr.emit(watchLine{At: pr.epoch.Add(st.nextBar), World: worldName(drill), Kind: "progress",
					Detail: fmt.Sprintf("%d migrated, %d migrating", st.done, len(st.migrating))})
			}
		}
	}
	switch ev.Kind {
	case executor.EvStart:
		st.migrating[ev.VM] = true
	case executor.EvDone:
		delete(st.migrating, ev.VM)
		st.done++
	case executor.EvFail, executor.EvAbort, executor.EvRefused:
		delete(st.migrating, ev.VM)
	case executor.EvFinished:
		clear(st.migrating)
	}
	if !pr.verbose && !pr.json && (ev.Kind == executor.EvStart || ev.Kind == executor.EvDone || ev.Kind == executor.EvWindow) {
		return
	}
	pr.emit(watchLine{At: at, World: worldName(drill), Source: "executor", Kind: ev.Kind, VM: ev.VM, From: ev.From, To: ev.To, Detail: ev.Detail})
}

func (pr *watchPrinter) siteLost(drill bool, at time.Time, site string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.stats[drill].lost = append(pr.stats[drill].lost, site)
	pr.emit(watchLine{At: at, World: worldName(drill), Source: "sim", Kind: "site-lost", Site: site, Detail: site + " is lost (deadline reached)"})
}

// watchSummary is the last JSON line.
type watchSummary struct {
	Summary []worldSummary `json:"summary"`
}

type worldSummary struct {
	World      string         `json:"world"`
	Executions int            `json:"executions"`
	VMs        map[string]int `json:"vms"`
	SitesLost  []string       `json:"sites_lost,omitempty"`
}

func (pr *watchPrinter) summary(worlds []world.World, p *pipeline.Pipeline) {
	var out []worldSummary
	for i, w := range worlds {
		drill := i > 0
		ws := worldSummary{World: "real", Executions: w.Target().Executions(), VMs: map[string]int{}}
		if drill {
			ws.World = "drill"
		}
		// Each VM's last status over the executors that ran (the world's
		// loop has stopped, so the reports are final).
		final := map[string]executor.Status{}
		for _, rep := range w.Target().Reports() {
			for _, r := range rep.VMs {
				if r.Status != executor.StatusSafe || final[r.Name] == "" {
					final[r.Name] = r.Status
				}
			}
		}
		for _, s := range final {
			ws.VMs[string(s)]++
		}
		pr.mu.Lock()
		ws.SitesLost = pr.stats[drill].lost
		pr.mu.Unlock()
		out = append(out, ws)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.json {
		data, _ := json.Marshal(watchSummary{Summary: out})
		fmt.Fprintf(pr.w, "%s\n", data)
		return
	}
	fmt.Fprintln(pr.w, "\nSummary")
	for _, ws := range out {
		if ws.Executions == 0 {
			fmt.Fprintf(pr.w, "  %-5s  no evacuation\n", ws.World)
			continue
		}
		var parts []string
		for _, s := range []executor.Status{executor.StatusMigrated, executor.StatusRunning, executor.StatusPending, executor.StatusMissed,
			executor.StatusUnsaved, executor.StatusStranded, executor.StatusFailed, executor.StatusAborted, executor.StatusLost, executor.StatusSafe} {
			if n := ws.VMs[string(s)]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, s))
			}
		}
		fmt.Fprintf(pr.w, "  %-5s  %d evacuation(s): VMs %s", ws.World, ws.Executions, strings.Join(parts, ", "))
		if len(ws.SitesLost) > 0 {
			fmt.Fprintf(pr.w, "; sites lost: %s", strings.Join(ws.SitesLost, ", "))
		}
		fmt.Fprintln(pr.w)
	}
	if pend := p.Pending(); len(pend) > 0 {
		for _, a := range pend {
			fmt.Fprintf(pr.w, "  still waiting for approval: %s (%s by %s)\n", a.ID, a.Hazard, a.Deadline.Format(time.RFC3339))
		}
	}
}
