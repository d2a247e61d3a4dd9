package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/continuity"
	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/daemon"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/monitor"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/server"
	"github.com/refuge-project/refuge/internal/store"
	"github.com/refuge-project/refuge/internal/world"
)

type serveFlags struct {
	simulate       string
	federation     string
	connectTimeout time.Duration
	nonLive        bool
	speed          float64
	dataDir        string
	listen         string
	id             string
	etcdEndpoints  string
	initialCluster string
	peerURL        string
	clientURL      string
	tlsCert        string
	tlsKey         string
	peerCert       string
	peerKey        string
	peerCA         string
	leaseTTL       int
	policy         string
	actOn          string
	continuity     string
	threatPolicy   string
	sources        []string
	interval       time.Duration
	relaySecretsIn string
	monitorRoster  string
	monitorListen  string
	monitorEvery   time.Duration
}

func newServeCmd(g *globalFlags) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve (--simulate DIR | --federation F) --data-dir D --listen ADDR [--source KIND:ADDR …] [--monitor-roster FILE]",
		Short: "Run the controller service: REST API, etcd state, leadership, operations",
		Long: `serve runs refuge as a long-lived controller: the REST API on --listen
(docs/api.md), its state in etcd — an embedded member in --data-dir by default,
an external cluster with --etcd-endpoints, or one cluster of the embedded members
of three sites' controllers with --initial-cluster — and leader election, so that
only one controller evacuates at a time and another resumes its operations when
it dies.

--simulate DIR (a directory holding federation.yaml, or the file) runs against the
simulated federation, in real time or --speed times faster. --federation F runs
against the real hosts: every host of F is reached through its libvirt uri (as
refuge evacuate does; a host that does not answer within --connect-timeout is
left out, its VMs lost).

Alerts arrive by POST /v1/alerts and from the alert sources given by --source
(repeatable, as refuge watch takes them: file, webhook, jma-atom, atom, usgs,
p2pquake; polled every --interval); approvals by POST /v1/approvals. An alert
update that moves or withdraws a deadline is passed to the evacuation the alerts
started; evacuations of disjoint VMs run side by side.

--monitor-roster FILE runs the n-queen host monitoring (as refuge agent
controller does, on --monitor-listen; the roster's host names are the
federation's): a host it declares failed is down for every running evacuation.

Logs are JSON lines on stderr (--log-level). Create tokens first with
'refuge token create --role admin --data-dir D'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.simulate, "simulate", "", "run against the simulated federation of this example directory (or federation file)")
	fl.StringVar(&f.federation, "federation", "", "run against the real hosts of this federation file, through their libvirt uris")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", world.DefaultConnectTimeout, "with --federation: how long to wait for each host's libvirt daemon before leaving the host out")
	fl.BoolVar(&f.nonLive, "non-live", false, "with --federation: migrate non-live (paused for the whole copy), for hypervisors whose live migration cannot be trusted (QEMU 7.2 under TCG)")
	fl.StringArrayVar(&f.sources, "source", nil, "alert source KIND:ADDR (repeatable): file, webhook, jma-atom, atom, usgs, p2pquake")
	fl.DurationVar(&f.interval, "interval", 0, "poll interval of feed sources (default 1m) and watch interval of file sources")
	registerRelaySecretsFile(cmd, &f.relaySecretsIn)
	registerThreatPolicy(cmd, &f.threatPolicy)
	fl.StringVar(&f.monitorRoster, "monitor-roster", "", "run the host monitoring of this roster file (hosts named as the federation's)")
	fl.StringVar(&f.monitorListen, "monitor-listen", ":7945", "with --monitor-roster: UDP address the monitoring listens on")
	fl.DurationVar(&f.monitorEvery, "monitor-interval", time.Second, "with --monitor-roster: probe period")
	fl.Float64Var(&f.speed, "speed", 1, "with --simulate: simulated seconds per wall-clock second")
	fl.StringVar(&f.dataDir, "data-dir", "", "controller data directory (the embedded etcd member's data); required unless --etcd-endpoints")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8443", "address the API listens on")
	fl.StringVar(&f.id, "id", "", "this controller's name (default: the host name); with --initial-cluster, its member's name")
	fl.StringVar(&f.etcdEndpoints, "etcd-endpoints", "", "comma-separated client URLs of an external etcd cluster (no embedded member)")
	fl.StringVar(&f.initialCluster, "initial-cluster", "", "name=peerURL,… of every controller's embedded member (3 sites: survives losing one)")
	fl.StringVar(&f.peerURL, "peer-url", "", "this member's peer URL (default: kept in the data directory, or a free port)")
	fl.StringVar(&f.clientURL, "client-url", "", "this member's client URL (default: a free port on 127.0.0.1)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve the API over TLS with this certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the TLS certificate's key (PEM)")
	fl.StringVar(&f.peerCert, "peer-tls-cert", "", "mutual TLS between controllers' members: this member's certificate")
	fl.StringVar(&f.peerKey, "peer-tls-key", "", "mutual TLS between members: its key")
	fl.StringVar(&f.peerCA, "peer-tls-ca", "", "mutual TLS between members: the CA that signs every member's certificate")
	fl.IntVar(&f.leaseTTL, "lease-ttl", 5, "leader lease in seconds: how long a dead leader blocks a new one")
	fl.StringVar(&f.actOn, "act-on", "actual", "alert statuses that start evacuations (add exercise to let drills act for real)")
	fl.StringVar(&f.policy, "policy", "refuge", fmt.Sprintf("built-in evacuation policy: %v", model.PolicyNames()))
	fl.StringVar(&f.continuity, "continuity", "", "continuity configuration (docs/continuity.md): services' names follow their VMs (with --simulate, only the file's drill_zone is updated)")
	return cmd
}

// checkServeFlags refuses inconsistent flags before anything starts.
func (f *serveFlags) check() error {
	switch {
	case (f.simulate == "") == (f.federation == ""):
		return errors.New("give --simulate DIR (the simulated federation) or --federation F (its hosts through libvirt)")
	case f.federation != "" && f.speed != 1:
		return errors.New("--speed needs --simulate: real hosts migrate in real time")
	case f.dataDir == "" && f.etcdEndpoints == "":
		return errors.New("give --data-dir D (embedded etcd) or --etcd-endpoints URLS")
	case f.dataDir != "" && f.etcdEndpoints != "":
		return errors.New("--data-dir and --etcd-endpoints exclude each other")
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case f.peerCert != "" && (f.peerKey == "" || f.peerCA == ""):
		return errors.New("--peer-tls-cert needs --peer-tls-key and --peer-tls-ca")
	case f.speed <= 0:
		return fmt.Errorf("--speed %g: must be positive", f.speed)
	case f.leaseTTL < 1:
		return fmt.Errorf("--lease-ttl %d: at least 1 second", f.leaseTTL)
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return fmt.Errorf("--listen %q: %w", f.listen, err)
	}
	return nil
}

// loadFederation loads --federation, or --simulate: a directory with
// federation.yaml or a federation file.
func (f *serveFlags) loadFederation() (*model.Federation, error) {
	if f.federation != "" {
		fed, err := model.LoadFederation(f.federation)
		if err != nil {
			return nil, fmt.Errorf("--federation: %w", err)
		}
		return fed, nil
	}
	path := f.simulate
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "federation.yaml")
	}
	fed, err := model.LoadFederation(path)
	if err != nil {
		return nil, fmt.Errorf("--simulate: %w", err)
	}
	return fed, nil
}

func runServe(cmd *cobra.Command, g *globalFlags, f serveFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	fed, err := f.loadFederation()
	if err != nil {
		return err
	}
	pol, err := model.PolicyByName(f.policy)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	if f.id == "" {
		f.id, _ = os.Hostname()
		if f.initialCluster == "" || f.id == "" {
			f.id = "refuge"
		}
	}
	lg := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: g.logLevel.Level}))
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(controller.MemoryLimit)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	endpoints := splitList(f.etcdEndpoints)
	if f.dataDir != "" {
		release, err := store.LockDataDir(f.dataDir)
		if err != nil {
			return err
		}
		defer release()
		m, err := startDataDirMember(f.dataDir, f)
		if err != nil {
			return err
		}
		defer m.Close()
		endpoints = []string{m.ClientURL()}
		lg.Info("etcd member started", "name", m.Name(), "client", m.ClientURL(), "peer", m.PeerURL())
	}
	st, err := store.Open(endpoints)
	if err != nil {
		return err
	}
	defer st.Close()

	w, err := openWorld(ctx, cmd, f, st, fed, pol, lg)
	if err != nil {
		return err
	}
	defer w.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := controller.NewMetrics(reg)
	if err != nil {
		return err
	}
	var switcher executor.Switcher
	var coord *continuity.Coordinator // lowers the TTL of an evacuation's services while it runs
	var loweredTTL uint32
	if f.continuity != "" {
		// A simulated federation's moves update the drill zone only,
		// never the production records.
		cc, err := continuity.LoadConfig(f.continuity)
		if err != nil {
			return err
		}
		c, err := continuity.Build(fed, cc, continuity.BuildOptions{Drill: f.simulate != "", Audit: continuity.Auditor(lg, st.Audit)})
		if err != nil {
			return fmt.Errorf("--continuity %s: %w", f.continuity, err)
		}
		switcher, coord, loweredTTL = c, c, cc.LoweredTTL
	}
	var prepare func(ctx context.Context, op string, sites []string) error
	var ctl *controller.Controller
	if coord != nil {
		// Lower the TTL of the services at the sites before the executor
		// starts (waiting at most controller.Config.PrepareWait).
		prepare = func(ctx context.Context, op string, sites []string) error {
			p, _ := ctl.State()
			return coord.Prepare(ctx, op, continuity.ServicesAt(ctl.Index(), p, sites), loweredTTL)
		}
	}
	ctl, err = controller.New(controller.Config{ID: f.id, Store: st, World: w, Policy: pol, TTL: f.leaseTTL,
		Logger: lg, Metrics: metrics, Switcher: switcher, Prepare: prepare})
	if err != nil {
		return err
	}
	if coord != nil {
		defer coord.Background(ctx, st.Watch, continuity.FollowOptions{TTL: loweredTTL, Logger: lg,
			Services: func(sites []string) []string {
				p, _ := ctl.State()
				return continuity.ServicesAt(ctl.Index(), p, sites)
			}})()
	}
	actOn, err := parseStatuses(f.actOn)
	if err != nil {
		return fmt.Errorf("--act-on: %w", err)
	}
	tpol, err := loadThreatPolicy(f.threatPolicy, fed)
	if err != nil {
		return err
	}
	alerts, err := ctl.AlertPipeline(pipeline.Config{Federation: fed, Policy: tpol, ActOn: actOn,
		Replay: f.simulate != "", Clock: w.PipelineClock(), Logger: lg})
	if err != nil {
		return err
	}
	sources, err := serveSources(f, w, lg)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{Controller: ctl, Registry: reg, Logger: lg, Alerts: alerts})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(lg.Handler(), slog.LevelWarn)}
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}
	what := fmt.Sprintf("federation %s on its hosts (libvirt)", fed.Name)
	if f.simulate != "" {
		what = fmt.Sprintf("simulated federation %s (%g× real time)", fed.Name, f.speed)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "refuge serve: controller %s, API on %s://%s, %s\n", f.id, scheme, ln.Addr(), what)

	errc := make(chan error, 3)
	var bg sync.WaitGroup
	defer bg.Wait() // after the world is cancelled
	wctx, cancelWorld := context.WithCancel(context.Background())
	defer cancelWorld()
	bg.Go(func() { _ = w.Run(wctx) })
	if f.monitorRoster != "" {
		mon, err := startMonitor(f, fed, ctl, lg)
		if err != nil {
			return err
		}
		defer mon.Close()
	}
	bg.Go(func() { daemon.KeepApplying(ctx, alerts.Retry, alertRetry, lg) })
	if len(sources) > 0 {
		bg.Go(func() {
			if err := alerts.Run(ctx, sources...); err != nil {
				lg.Error("alert sources ended", "err", err)
			}
		})
	}
	go func() { errc <- ctl.Run(ctx) }()
	go func() {
		var err error
		if f.tlsCert != "" {
			err = hs.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			err = hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("API server: %w", err)
		}
	}()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	stop()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(shutdown)
	if runErr == nil {
		runErr = <-errc // the controller resigns
	}
	return runErr
}

// alertRetry is how often serve applies again what the alerts want and the
// controller refused.
const alertRetry = 2 * time.Second

// openWorld opens what serve evacuates: the simulated federation, its VMs
// where earlier runs left them, or the real hosts.
func openWorld(ctx context.Context, cmd *cobra.Command, f serveFlags, st *store.Store, fed *model.Federation, pol model.Policy, lg *slog.Logger) (world.World, error) {
	if f.simulate != "" {
		if err := applyPlacements(ctx, st, fed); err != nil {
			return nil, err
		}
		return controller.NewSimWorld(fed, f.speed)
	}
	w, err := world.Connect(ctx, world.HostsConfig{Federation: fed, Policy: pol, Logger: lg, ConnectTimeout: f.connectTimeout, NonLive: f.nonLive,
		Switchover: f.continuity != "",
		OnHosts:    func(states []libvirt.HostState) { reportHostsDown(cmd.ErrOrStderr(), states) }})
	if err != nil {
		return nil, fmt.Errorf("--federation %s: %w", f.federation, err)
	}
	return w, nil
}

// serveSources builds the --source alert sources; their errors go to the
// log.
func serveSources(f serveFlags, w world.World, lg *slog.Logger) ([]alertsource.Source, error) {
	if len(f.sources) == 0 {
		return nil, nil
	}
	secrets, err := relaySecrets(f.relaySecretsIn, nil)
	if err != nil {
		return nil, err
	}
	return daemon.Sources(daemon.SourceConfig{Specs: f.sources, Secrets: secrets,
		Options: alertsource.SpecOptions{
			Common:   alertsource.Common{Logger: lg, OnError: func(err error) { lg.Warn("alert source", "err", err) }},
			Interval: f.interval, MaxAge: daemon.DefaultMaxAge, Seed: uint64(time.Now().UnixNano()),
		},
		PaceClock: w.PipelineClock(),
		OnListen:  func(addr net.Addr) { lg.Info("relay receiver listening", "addr", addr.String()) },
		OnFailed:  func(name string, err error) { lg.Error("alert source failed", "source", name, "err", err) },
	})
}

// startMonitor starts the host monitoring of --monitor-roster: failures
// reach the controller's running evacuations.
func startMonitor(f serveFlags, fed *model.Federation, ctl *controller.Controller, lg *slog.Logger) (*monitor.Controller, error) {
	hosts, err := loadRoster(f.monitorRoster)
	if err != nil {
		return nil, fmt.Errorf("--monitor-roster: %w", err)
	}
	mon, err := daemon.Monitor(daemon.MonitorConfig{Federation: fed, HostDown: ctl.HostDown, HostUp: ctl.HostUp,
		Controller: monitor.ControllerConfig{Hosts: hosts, Listen: f.monitorListen, Interval: f.monitorEvery, Logger: lg,
			OnEvent: func(e monitor.Event) { lg.Info("monitoring", "event", e.Kind, "host", e.Name, "detail", e.Detail) }}})
	if err != nil {
		return nil, fmt.Errorf("--monitor-roster %s: %w", f.monitorRoster, err)
	}
	mon.Start()
	return mon, nil
}

// memberFile keeps a data directory's member name and peer URL, so that
// the member keeps them across restarts (and token create and serve agree).
const memberFile = "member.json"

// startDataDirMember starts the embedded member of data directory dir.
func startDataDirMember(dir string, f serveFlags) (*store.Member, error) {
	cfg := store.MemberConfig{Name: f.id, DataDir: filepath.Join(dir, "etcd"), PeerURL: f.peerURL, ClientURL: f.clientURL,
		InitialCluster: f.initialCluster}
	if f.peerCert != "" {
		cfg.PeerTLS = transport.TLSInfo{CertFile: f.peerCert, KeyFile: f.peerKey, TrustedCAFile: f.peerCA, ClientCertAuth: true}
	}
	var saved struct {
		Name    string `json:"name"`
		PeerURL string `json:"peer_url"`
	}
	path := filepath.Join(dir, memberFile)
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &saved); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if cfg.PeerURL == "" {
			cfg.PeerURL = saved.PeerURL
		}
		if f.initialCluster == "" || cfg.Name == "" {
			cfg.Name = saved.Name
		}
	}
	if cfg.Name == "" {
		cfg.Name = "refuge"
	}
	m, err := store.StartMember(cfg)
	if err != nil {
		return nil, err
	}
	saved.Name, saved.PeerURL = m.Name(), m.PeerURL()
	b, _ := json.Marshal(saved)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		m.Close()
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return m, nil
}

// applyPlacements moves the simulated federation's VMs to where earlier
// runs' migrations left them (the store's placements), so that a
// restarted controller's simulation goes on from there.
func applyPlacements(ctx context.Context, st *store.Store, fed *model.Federation) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pl, err := st.Placements(ctx)
	if err != nil {
		return err
	}
	for i := range fed.VMs {
		if h, ok := pl[fed.VMs[i].Name]; ok {
			fed.VMs[i].Host = h
		}
	}
	return nil
}

// parseStatuses reads --act-on: alert statuses separated by commas.
func parseStatuses(list string) ([]alert.Status, error) {
	known := map[string]alert.Status{"actual": alert.StatusActual, "exercise": alert.StatusExercise, "test": alert.StatusTest}
	var out []alert.Status
	for _, name := range splitList(list) {
		st, ok := known[name]
		if !ok {
			return nil, fmt.Errorf("%q: want actual, exercise or test", name)
		}
		out = append(out, st)
	}
	return out, nil
}
