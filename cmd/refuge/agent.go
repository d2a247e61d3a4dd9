package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/monitor"
	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// detectorFlags configure failure detection.
type detectorFlags struct {
	interval time.Duration
	timeout  time.Duration
	kind     string
	metrics  string
}

func (d *detectorFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&d.interval, "interval", time.Second, "probe period")
	cmd.Flags().DurationVar(&d.timeout, "timeout", 0, "silence after which a host is failed (default 5 intervals)")
	cmd.Flags().StringVar(&d.kind, "detector", monitor.DetectTimeout, "failure detector: timeout or phi (phi-accrual)")
	cmd.Flags().StringVar(&d.metrics, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. :9101)")
}

func (d *detectorFlags) config() monitor.DetectorConfig {
	return monitor.DetectorConfig{Kind: d.kind, Timeout: d.timeout}
}

// serveMetrics starts a /metrics endpoint if asked and returns the
// registry-backed metrics and a stop function.
func (d *detectorFlags) serveMetrics(cmd *cobra.Command) (*monitor.Metrics, func(), error) {
	if d.metrics == "" {
		return nil, func() {}, nil
	}
	reg := prometheus.NewRegistry()
	m, err := monitor.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", d.metrics)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	fmt.Fprintf(cmd.ErrOrStderr(), "metrics on http://%s/metrics\n", ln.Addr())
	return m, func() { _ = srv.Close(); wg.Wait() }, nil
}

// signalContext is cmd's context, cancelled on SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func newAgentCmd(g *globalFlags) *cobra.Command {
	var id uint32
	var listen, controller string
	var df detectorFlags
	cmd := &cobra.Command{
		Use:   "agent --id N --listen ADDR --controller ADDR",
		Short: "Run the monitoring agent of one host (answers probes; probes its targets when it is a queen)",
		Long: `Runs the host monitoring agent (seed 004's n-queen monitoring). Every host runs
one: it answers its monitors' heartbeat probes over UDP, and when the controller
makes it a queen it probes the hosts on its row (Level 1) or row and column
(Level 2) and reports their states to the controller. Stop it with SIGINT or
SIGTERM. Run the controller with "refuge agent controller".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl, err := resolveAddrPort(controller)
			if err != nil {
				return fmt.Errorf("--controller: %w", err)
			}
			m, stop, err := df.serveMetrics(cmd)
			if err != nil {
				return err
			}
			defer stop()
			a, err := monitor.NewAgent(monitor.AgentConfig{ID: id, Listen: listen, Controller: ctrl, Interval: df.interval,
				Detector: df.config(), Logger: g.logger(cmd.ErrOrStderr()), Metrics: m})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "agent %d listening on %s\n", id, a.Addr())
			ctx, cancel := signalContext(cmd)
			defer cancel()
			return a.Run(ctx)
		},
	}
	cmd.Flags().Uint32Var(&id, "id", 0, "this host's id in the controller's roster (required)")
	_ = cmd.MarkFlagRequired("id")
	cmd.Flags().StringVar(&listen, "listen", ":7946", "UDP address to listen on")
	cmd.Flags().StringVar(&controller, "controller", "", "the controller's UDP address; assignments from anywhere else are refused (required)")
	_ = cmd.MarkFlagRequired("controller")
	df.register(cmd)
	cmd.AddCommand(newAgentControllerCmd(g))
	return cmd
}

// rosterDoc is the file `refuge agent controller --roster` reads.
type rosterDoc struct {
	Hosts []struct {
		ID   uint32 `json:"id"`
		Name string `json:"name"`
		Addr string `json:"addr"`
	} `json:"hosts"`
}

func loadRoster(path string) ([]monitor.HostInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read roster: %w", err)
	}
	var doc rosterDoc
	if err := strictyaml.Decode(data, &doc); err != nil {
		return nil, fmt.Errorf("roster %s: %w", path, err)
	}
	var errs validate.Errors
	var out []monitor.HostInfo
	for i, h := range doc.Hosts {
		p := validate.Index("hosts", i)
		ap, err := resolveAddrPort(h.Addr)
		if err != nil {
			errs.Addf(validate.Field(p, "addr"), "%v", err)
		}
		validate.Required(&errs, validate.Field(p, "name"), h.Name)
		out = append(out, monitor.HostInfo{ID: h.ID, Name: h.Name, Addr: ap})
	}
	if len(doc.Hosts) == 0 {
		errs.Addf("hosts", "is empty: nothing to monitor")
	}
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("roster %s: %w", path, err)
	}
	return out, nil
}

// resolveAddrPort parses ip:port, resolving a host name.
func resolveAddrPort(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not host:port: %w", s, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func newAgentControllerCmd(g *globalFlags) *cobra.Command {
	var roster, listen, scheme string
	var level int
	var asJSON bool
	var df detectorFlags
	cmd := &cobra.Command{
		Use:   "controller --roster FILE [--level 1|2] [--listen ADDR]",
		Short: "Run the monitoring controller: assign queens, take their reports, replace failed queens",
		Long: `Runs the monitoring controller for the hosts of a roster file
({"hosts": [{"id", "name", "addr"}]}, YAML or JSON). It lays the hosts out on an
n-queen board, makes the queens probe their lines (Level 1: rows; Level 2: rows
and columns), probes the queens itself, declares failures from the queens'
reports, and re-assigns when a queen fails (Figure 2c takeover, then a
replacement from its row). Events are printed as they happen (--json: one JSON
object per line). Stop it with SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hosts, err := loadRoster(roster)
			if err != nil {
				return err
			}
			if level != 1 && level != 2 {
				return fmt.Errorf("--level %d: want 1 or 2", level)
			}
			m, stop, err := df.serveMetrics(cmd)
			if err != nil {
				return err
			}
			defer stop()
			out := cmd.OutOrStdout()
			var mu sync.Mutex
			enc := json.NewEncoder(out)
			c, err := monitor.NewController(monitor.ControllerConfig{Hosts: hosts, Scheme: scheme, Level: monitor.Level(level),
				Listen: listen, Interval: df.interval, Detector: df.config(), Logger: g.logger(cmd.ErrOrStderr()), Metrics: m,
				OnEvent: func(e monitor.Event) {
					mu.Lock()
					defer mu.Unlock()
					if asJSON {
						_ = enc.Encode(e)
						return
					}
					line := fmt.Sprintf("%s %-14s %s (id %d)", e.At.Format(time.RFC3339Nano), e.Kind, e.Name, e.Host)
					if e.Silence > 0 {
						line += fmt.Sprintf(" silent %s", e.Silence.Round(time.Millisecond))
					}
					if e.Detail != "" {
						line += " — " + e.Detail
					}
					fmt.Fprintln(out, line)
				}})
			if err != nil {
				if errors.Is(err, monitor.ErrUnfillable) {
					return fmt.Errorf("%w (try --scheme %s)", err, monitor.SchemeMasterSlave)
				}
				return err
			}
			s := c.Snapshot()
			fmt.Fprintf(cmd.ErrOrStderr(), "controller on %s: %d hosts, scheme %s, level %d, %d queens\n", c.Addr(), len(hosts), s.Scheme, s.Level, len(s.Queens))
			ctx, cancel := signalContext(cmd)
			defer cancel()
			return c.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&roster, "roster", "", "roster file (required)")
	_ = cmd.MarkFlagRequired("roster")
	cmd.Flags().StringVar(&listen, "listen", ":7945", "UDP address to listen on")
	cmd.Flags().StringVar(&scheme, "scheme", monitor.SchemeQueen, "queen or master-slave")
	cmd.Flags().IntVar(&level, "level", 1, "queen level: 1 (every host monitored once) or 2 (twice)")
	jsonLinesFlag(cmd, &asJSON, "the events")
	df.register(cmd)
	return cmd
}
