// Package libvirt implements hypervisor.Driver on libvirt through
// go-libvirt's pure-Go RPC client.
//
// One control connection per host (from the federation's uri field) is
// kept open with reconnect and back-off and probed every KeepAlive.
// Migrations are peer-to-peer (the source daemon drives them) with
// virDomainMigratePerform3Params and typed parameters; each runs on its own
// connection because the call blocks until the migration ends, while the
// control connection polls job statistics, changes the bandwidth and aborts.
//
// After every migration — successful or not — the driver checks where the
// domain is active (it must be active on exactly one host; an anomaly is
// repaired and recorded) and, after a switch-over, that the guest is alive
// (QEMU guest agent guest-ping), restarting it from its disk at the
// destination when it is not: QEMU 7.2 under TCG occasionally loses writes
// at the switch-over and the guest kernel dies while libvirt reports
// success (docs/libvirt.md). Every such step is recorded (Steps, OnStep).
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	lv "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
)

// Host is one hypervisor the driver manages.
type Host struct {
	Name string
	// URI is the libvirt connection URI (qemu+unix, qemu+tcp, qemu+tls). A
	// "peer" query parameter, if present, is the URI other hosts' daemons
	// use to reach this one for peer-to-peer migration (default: URI).
	URI string
	// MemoryBytes, if not 0, is the memory guests may use on the host; a
	// migration that would exceed it is refused (ErrDestinationFull).
	MemoryBytes uint64
}

// Config configures a Driver. Zero durations take the defaults.
type Config struct {
	Hosts  []Host
	Logger *slog.Logger
	// RPCTimeout bounds each control call (default 10 s).
	RPCTimeout time.Duration
	// KeepAlive is the probe period of control connections (default 5 s).
	KeepAlive time.Duration
	// ReconnectMin and ReconnectMax bound the reconnect back-off (250 ms, 10 s).
	ReconnectMin, ReconnectMax time.Duration
	// PollInterval is how often job statistics are read (default 500 ms).
	PollInterval time.Duration
	// StallTimeout: a migration whose processed bytes do not grow for this
	// long is aborted with ErrLinkDown (default 20 s).
	StallTimeout time.Duration
	// MaxIterations: a pre-copy past this many memory iterations (twice
	// as many with auto-converge) does not converge: it switches to
	// post-copy when allowed, else is aborted with ErrNotConverging
	// (default 30, as the simulator's model).
	MaxIterations int
	// NonLive migrates every domain non-live (paused for the whole copy)
	// whatever the request says: for hypervisors whose live migration
	// cannot be trusted, such as QEMU 7.2 under TCG (docs/libvirt.md).
	NonLive bool
	// ColdFallback retries a live migration that did not converge as a
	// non-live one (the guest paused for the whole copy) within the same
	// job.
	ColdFallback bool
	// Drive makes the driver run the migration protocol's phases itself
	// (Begin3, Prepare3, Perform3, Finish3, Confirm3, as libvirt's client
	// library does for a migration that is not peer to peer) for the
	// migrations whose observer is a hypervisor.SwitchoverObserver and
	// that are not post-copy: SwitchedOver is then called after the
	// destination's Finish has started the guest and strictly before the
	// source's Confirm destroys its paused copy, however long it takes.
	// The daemons then have no keep-alive between them: a cut link is
	// found by StallTimeout.
	Drive bool
	// Health checks the guest after a switch-over (default: AgentHealth).
	// NoHealthCheck trusts the domain state.
	Health HealthCheck
	// HealthSettle is how long after the switch-over the guest must still
	// answer (default 2 s): a guest hit by lost writes dies within about
	// a second.
	HealthSettle time.Duration
	// HealthTimeout bounds the health check (default 10 s), BootTimeout the
	// wait for a restarted guest (default 90 s).
	HealthTimeout, BootTimeout time.Duration
	// OnStep, if not nil, receives every recorded step (from driver
	// goroutines; it must not block).
	OnStep func(Step)
	// dial replaces the RPC dialer (tests).
	dial dialFunc
}

// Agent sends QEMU guest agent commands (virDomainQemuAgentCommand).
type Agent interface {
	QEMUDomainAgentCommand(dom lv.Domain, cmd string, timeout int32, flags uint32) (lv.OptString, error)
}

// HealthCheck reports whether the guest of dom on a host is alive. It is
// only called for running domains that have a guest-agent channel; others
// count as alive when running.
type HealthCheck func(ctx context.Context, c Agent, dom lv.Domain) error

// NoHealthCheck accepts every running domain.
func NoHealthCheck(context.Context, Agent, lv.Domain) error { return nil }

// AgentHealth pings the QEMU guest agent (guest-ping) with a 3 s timeout.
func AgentHealth(_ context.Context, c Agent, dom lv.Domain) error {
	_, err := c.QEMUDomainAgentCommand(dom, `{"execute":"guest-ping"}`, 3, 0)
	return err
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RPCTimeout, 10*time.Second)
	def(&c.KeepAlive, 5*time.Second)
	def(&c.ReconnectMin, 250*time.Millisecond)
	def(&c.ReconnectMax, 10*time.Second)
	def(&c.PollInterval, 500*time.Millisecond)
	def(&c.StallTimeout, 20*time.Second)
	def(&c.HealthSettle, 2*time.Second)
	def(&c.HealthTimeout, 10*time.Second)
	def(&c.BootTimeout, 90*time.Second)
	if c.MaxIterations <= 0 {
		c.MaxIterations = 30
	}
	if c.Health == nil {
		c.Health = AgentHealth
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.dial == nil {
		c.dial = dialLibvirt
	}
}

// Step is one recorded action or check.
type Step struct {
	At     time.Time `json:"at"`
	Domain string    `json:"domain"`
	Kind   string    `json:"kind"` // migrate, done, failed, verify, repair, health, restart, fallback, postcopy, abort
	Host   string    `json:"host,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Err    string    `json:"err,omitempty"`
}

// Record is one finished migration as the driver saw it.
type Record struct {
	Domain   string    `json:"domain"`
	Source   string    `json:"source"`
	Dest     string    `json:"dest"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"` // when libvirt's migration call returned
	// Downtime is the switch-over pause libvirt measured.
	Downtime time.Duration `json:"downtime"`
	// Restarted says the guest was dead after the switch-over and was
	// restarted from its disk; Outage is then the time from the end of the
	// migration until it answered again (plus Downtime).
	Restarted bool          `json:"restarted"`
	Outage    time.Duration `json:"outage"`
	Bytes     uint64        `json:"bytes"`
	Rounds    int           `json:"rounds"`
	Live      bool          `json:"live"`
	RunningOn string        `json:"running_on"`
	Err       string        `json:"err,omitempty"`
}

// Records returns the migrations that have ended so far.
func (d *Driver) Records() []Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Record(nil), d.records...)
}

// Driver implements hypervisor.Driver on libvirt.
type Driver struct {
	cfg    Config
	dial   dialFunc
	hosts  map[string]*conn
	peers  map[string]string
	memCap map[string]uint64
	// ctx ends the jobs' waiting (Close); connCtx the connections' loops,
	// after the jobs have finished.
	ctx        context.Context
	cancel     context.CancelFunc
	connCtx    context.Context
	connCancel context.CancelFunc
	jobs       sync.WaitGroup
	wg         sync.WaitGroup

	mu       sync.Mutex
	steps    []Step
	records  []Record
	active   map[string]*job // by domain name
	incoming map[string]uint64
	dirty    map[string]float64 // last measured dirty rate per domain, bytes/s
}

var _ hypervisor.Driver = (*Driver)(nil)

// Errors specific to this driver.
var (
	// ErrNotActive: the job has ended.
	ErrNotActive = errors.New("no active migration job")
	// ErrSameHost: source and destination are the same host.
	ErrSameHost = errors.New("source and destination are the same host")
)

// New starts the driver's connections (in the background: a host that is
// down at start is retried with back-off).
func New(cfg Config) (*Driver, error) {
	cfg.defaults()
	d := &Driver{cfg: cfg, dial: cfg.dial, hosts: map[string]*conn{}, peers: map[string]string{},
		memCap: map[string]uint64{}, active: map[string]*job{}, incoming: map[string]uint64{}, dirty: map[string]float64{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.connCtx, d.connCancel = context.WithCancel(context.Background())
	for _, h := range cfg.Hosts {
		if h.Name == "" || h.URI == "" {
			return nil, fmt.Errorf("libvirt: host %q: name and URI are required", h.Name)
		}
		if _, dup := d.hosts[h.Name]; dup {
			return nil, fmt.Errorf("libvirt: host %q listed twice", h.Name)
		}
		control, peer, err := ControlURI(h.URI)
		if err != nil {
			return nil, err
		}
		d.peers[h.Name] = peer
		d.memCap[h.Name] = h.MemoryBytes
		d.hosts[h.Name] = &conn{d: d, host: h.Name, uri: control, tried: make(chan struct{}),
			log: cfg.Logger.With("host", h.Name)}
	}
	for _, c := range d.hosts {
		d.wg.Go(func() { c.loop(d.connCtx) })
	}
	return d, nil
}

// HostsFromFederation lists the federation's hosts that have a URI, with
// their memory as the capacity limit.
func HostsFromFederation(fed *model.Federation) []Host {
	var out []Host
	for _, s := range fed.Sites {
		for _, f := range s.Fabrics {
			for _, h := range f.Hosts {
				if h.URI != "" {
					out = append(out, Host{Name: h.Name, URI: h.URI, MemoryBytes: uint64(h.MemoryMiB) * (1 << 20)})
				}
			}
		}
	}
	return out
}

// WaitConnected waits until every host's control connection is up.
func (d *Driver) WaitConnected(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		var down []string
		for name, c := range d.hosts {
			c.mu.Lock()
			if c.c == nil {
				down = append(down, fmt.Sprintf("%s (%v)", name, c.lastErr))
			}
			c.mu.Unlock()
		}
		if len(down) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			sort.Strings(down)
			return fmt.Errorf("libvirt: hosts not connected: %v: %w", down, hypervisor.ErrHostUnreachable)
		case <-t.C:
		}
	}
}

// Close stops the connections' loops and waits for the driver's
// goroutines: a running migration is not aborted — Close waits until
// libvirt's migration call returns, skips the guest health check, verifies
// the placement if the hosts still answer and calls the observer.
func (d *Driver) Close() error {
	d.cancel()
	d.jobs.Wait()
	d.connCancel()
	d.wg.Wait()
	return nil
}

func (d *Driver) record(s Step) {
	s.At = time.Now()
	d.mu.Lock()
	d.steps = append(d.steps, s)
	d.mu.Unlock()
	d.cfg.Logger.Info("step", "domain", s.Domain, "kind", s.Kind, "host", s.Host, "detail", s.Detail, "err", s.Err)
	if d.cfg.OnStep != nil {
		d.cfg.OnStep(s)
	}
}

// Steps returns the recorded steps so far.
func (d *Driver) Steps() []Step {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Step(nil), d.steps...)
}

func (d *Driver) conn(host string) (*conn, error) {
	c, ok := d.hosts[host]
	if !ok {
		return nil, fmt.Errorf("unknown host %q: %w", host, hypervisor.ErrHostUnreachable)
	}
	return c, nil
}

// call runs f on host's control connection with the RPC timeout.
func (d *Driver) call(host string, f func(rpc) error) error {
	return d.callTimeout(host, d.cfg.RPCTimeout, f)
}

// callTimeout runs f on host's control connection; if it does not return
// within timeout the connection is closed (and reopened by its loop).
func (d *Driver) callTimeout(host string, timeout time.Duration, f func(rpc) error) error {
	c, err := d.conn(host)
	if err != nil {
		return err
	}
	cl, kill, err := c.get()
	if err != nil {
		return err
	}
	if err := timed(timeout, kill, func() error { return f(cl) }); err != nil {
		if errors.Is(err, errTimeout) {
			return fmt.Errorf("host %s: %v: %w", host, err, hypervisor.ErrHostUnreachable)
		}
		return err
	}
	return nil
}

// domState mirrors virDomainState.
func domState(s int32) hypervisor.DomainState {
	switch lv.DomainState(s) {
	case lv.DomainRunning, lv.DomainBlocked:
		return hypervisor.StateRunning
	case lv.DomainPaused, lv.DomainPmsuspended:
		return hypervisor.StatePaused
	case lv.DomainShutdown, lv.DomainShutoff:
		return hypervisor.StateShutoff
	case lv.DomainCrashed:
		return hypervisor.StateCrashed
	}
	return hypervisor.StateNoState
}

func isActive(s hypervisor.DomainState) bool {
	return s == hypervisor.StateRunning || s == hypervisor.StatePaused
}

// ListDomains lists the domains defined or running on host, with their
// vCPUs, memory, local disk allocation, state and last known dirty rate
// (from a dirty-rate calculation, see MeasureDirtyRate, or the last
// migration's job statistics).
func (d *Driver) ListDomains(ctx context.Context, host string) ([]hypervisor.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []hypervisor.Domain
	err := d.call(host, func(c rpc) error {
		doms, _, err := c.ConnectListAllDomains(1, 0)
		if err != nil {
			return err
		}
		rates := map[string]float64{}
		if recs, err := c.ConnectGetAllDomainStats(doms, uint32(lv.DomainStatsDirtyrate), 0); err == nil {
			for _, r := range recs {
				p := params(r.Params)
				if p.u64(lv.DomainStatsDirtyrateCalcStatus) == 2 { // measured
					rates[r.Dom.Name] = float64(p.u64(lv.DomainStatsDirtyrateMegabytesPerSecond)) * (1 << 20)
				}
			}
		}
		for _, dom := range doms {
			st, _, err := c.DomainGetState(dom, 0)
			if err != nil {
				if lv.IsNotFound(err) {
					continue // gone meanwhile
				}
				return err
			}
			_, maxMem, _, vcpu, _, err := c.DomainGetInfo(dom)
			if err != nil {
				if lv.IsNotFound(err) {
					continue
				}
				return err
			}
			pers, _ := c.DomainIsPersistent(dom)
			hd := hypervisor.Domain{Name: dom.Name, UUID: uuidString(dom.UUID), Host: host, State: domState(st),
				VCPU: int(vcpu), MemoryBytes: maxMem * 1024, Persistent: pers == 1}
			if x, err := c.DomainGetXMLDesc(dom, 0); err == nil {
				for _, path := range localDisks(x) {
					if alloc, capacity, _, err := c.DomainGetBlockInfo(dom, path, 0); err == nil {
						hd.LocalDiskBytes += max(alloc, capacity)
					}
				}
			}
			if r, ok := rates[dom.Name]; ok {
				hd.DirtyRateBytes = r
			} else {
				d.mu.Lock()
				hd.DirtyRateBytes = d.dirty[dom.Name]
				d.mu.Unlock()
			}
			out = append(out, hd)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("libvirt: list domains on %s: %w", host, mapErr(err))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MeasureDirtyRate runs QEMU's calc-dirty-rate on a domain for the given
// seconds and returns the rate in bytes/s; ListDomains reports it afterwards.
func (d *Driver) MeasureDirtyRate(ctx context.Context, host, domain string, seconds int) (float64, error) {
	var dom lv.Domain
	err := d.call(host, func(c rpc) error {
		var err error
		if dom, err = c.DomainLookupByName(domain); err != nil {
			return err
		}
		return c.DomainStartDirtyRateCalc(dom, int32(seconds), 0)
	})
	if err != nil {
		return 0, fmt.Errorf("libvirt: dirty rate of %s on %s: %w", domain, host, mapErr(err))
	}
	deadline := time.Now().Add(time.Duration(seconds)*time.Second + 10*time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		var rate float64
		var done bool
		err := d.call(host, func(c rpc) error {
			recs, err := c.ConnectGetAllDomainStats([]lv.Domain{dom}, uint32(lv.DomainStatsDirtyrate), 0)
			if err != nil || len(recs) == 0 {
				return err
			}
			p := params(recs[0].Params)
			if p.u64(lv.DomainStatsDirtyrateCalcStatus) == 2 {
				done = true
				rate = float64(p.u64(lv.DomainStatsDirtyrateMegabytesPerSecond)) * (1 << 20)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("libvirt: dirty rate of %s on %s: %w", domain, host, mapErr(err))
		}
		if done {
			d.mu.Lock()
			d.dirty[domain] = rate
			d.mu.Unlock()
			return rate, nil
		}
	}
	return 0, fmt.Errorf("libvirt: dirty rate of %s on %s: no result", domain, host)
}

func localDisks(domXML string) []string {
	var x libvirtxml.Domain
	if err := x.Unmarshal(domXML); err != nil || x.Devices == nil {
		return nil
	}
	var out []string
	for _, disk := range x.Devices.Disks {
		if disk.Device != "" && disk.Device != "disk" {
			continue
		}
		if disk.Source != nil && disk.Source.File != nil && disk.Source.File.File != "" {
			out = append(out, disk.Source.File.File)
		}
	}
	return out
}

func hasAgent(domXML string) bool {
	var x libvirtxml.Domain
	if err := x.Unmarshal(domXML); err != nil || x.Devices == nil {
		return false
	}
	for _, ch := range x.Devices.Channels {
		if ch.Target != nil && ch.Target.VirtIO != nil && ch.Target.VirtIO.Name == "org.qemu.guest_agent.0" {
			return true
		}
	}
	return false
}

func uuidString(u lv.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// mapErr wraps libvirt errors with the hypervisor package's sentinels.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{hypervisor.ErrAborted, hypervisor.ErrHostUnreachable, hypervisor.ErrNoSuchDomain,
		hypervisor.ErrLinkDown, hypervisor.ErrNotConverging, hypervisor.ErrDestinationFull, hypervisor.ErrDomainLost,
		hypervisor.ErrJobAlreadyActive, hypervisor.ErrHostDown} {
		if errors.Is(err, s) {
			return err
		}
	}
	var le lv.Error
	if errors.As(err, &le) {
		switch lv.ErrorNumber(le.Code) {
		case lv.ErrNoDomain:
			return fmt.Errorf("%w: %w", err, hypervisor.ErrNoSuchDomain)
		case lv.ErrOperationAborted:
			return fmt.Errorf("%w: %w", err, hypervisor.ErrAborted)
		case lv.ErrNoConnect, lv.ErrRPC, lv.ErrSystemError, lv.ErrAuthFailed:
			return fmt.Errorf("%w: %w", err, hypervisor.ErrLinkDown)
		case lv.ErrOperationInvalid:
			return fmt.Errorf("%w: %w", err, hypervisor.ErrJobAlreadyActive)
		case lv.ErrInternalError, lv.ErrOperationFailed:
			// the peer-to-peer connection or the migration stream broke
			for _, m := range []string{"socket is closed", "keepalive", "Connection reset", "Broken pipe", "connection closed", "Unable to write", "Unable to read"} {
				if strings.Contains(le.Message, m) {
					return fmt.Errorf("%w: %w", err, hypervisor.ErrLinkDown)
				}
			}
		}
		return err
	}
	// a closed or failed socket
	return fmt.Errorf("%w: %w", err, hypervisor.ErrHostUnreachable)
}

// typed parameter access
type params []lv.TypedParam

func (p params) u64(field string) uint64 {
	for _, tp := range p {
		if tp.Field != field {
			continue
		}
		switch v := tp.Value.I.(type) {
		case uint64:
			return v
		case int64:
			return uint64(max(v, 0))
		case uint32:
			return uint64(v)
		case int32:
			return uint64(max(v, 0))
		case float64:
			return uint64(max(v, 0))
		}
	}
	return 0
}

func (p params) has(field string) bool {
	for _, tp := range p {
		if tp.Field == field {
			return true
		}
	}
	return false
}

// jobInfo converts virDomainGetJobStats output.
func jobInfo(typ int32, p params) hypervisor.JobInfo {
	ji := hypervisor.JobInfo{
		Elapsed:              time.Duration(p.u64(lv.DomainJobTimeElapsed)) * time.Millisecond,
		DataTotal:            p.u64(lv.DomainJobDataTotal),
		DataProcessed:        p.u64(lv.DomainJobDataProcessed),
		DataRemaining:        p.u64(lv.DomainJobDataRemaining),
		MemTotal:             p.u64(lv.DomainJobMemoryTotal),
		MemProcessed:         p.u64(lv.DomainJobMemoryProcessed),
		MemRemaining:         p.u64(lv.DomainJobMemoryRemaining),
		MemIteration:         int(p.u64(lv.DomainJobMemoryIteration)),
		MemBytesPerSec:       float64(p.u64(lv.DomainJobMemoryBps)),
		DiskTotal:            p.u64(lv.DomainJobDiskTotal),
		DiskProcessed:        p.u64(lv.DomainJobDiskProcessed),
		DiskRemaining:        p.u64(lv.DomainJobDiskRemaining),
		DiskBytesPerSec:      float64(p.u64(lv.DomainJobDiskBps)),
		Downtime:             time.Duration(p.u64(lv.DomainJobDowntime)) * time.Millisecond,
		AutoConvergeThrottle: int(p.u64(lv.DomainJobAutoConvergeThrottle)),
	}
	page := p.u64(lv.DomainJobMemoryPageSize)
	if page == 0 {
		page = 4096
	}
	ji.MemDirtyRate = float64(p.u64(lv.DomainJobMemoryDirtyRate) * page)
	switch lv.DomainJobType(typ) {
	case lv.DomainJobNone:
		ji.Type = hypervisor.JobNone
	case lv.DomainJobBounded:
		ji.Type = hypervisor.JobBounded
	case lv.DomainJobUnbounded:
		ji.Type = hypervisor.JobUnbounded
	case lv.DomainJobCompleted:
		ji.Type = hypervisor.JobCompleted
	case lv.DomainJobFailed:
		ji.Type = hypervisor.JobFailed
	case lv.DomainJobCancelled:
		ji.Type = hypervisor.JobCancelled
	}
	switch {
	case ji.Type == hypervisor.JobCompleted:
		ji.Phase = hypervisor.PhaseDone
	case ji.DataProcessed == 0:
		ji.Phase = hypervisor.PhaseSetup
	case ji.MemIteration == 0 && ji.DiskTotal > 0 && ji.MemProcessed == 0:
		ji.Phase = hypervisor.PhaseDisk
	default:
		ji.Phase = hypervisor.PhasePrecopy
	}
	return ji
}
