package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
)

// HostInfo is one host of the controller's roster.
type HostInfo struct {
	ID   uint32         `json:"id"`
	Name string         `json:"name"`
	Addr netip.AddrPort `json:"addr"`
}

// Schemes.
const (
	SchemeQueen       = "queen"
	SchemeMasterSlave = "master-slave"
)

// ControllerConfig sets up a Controller.
type ControllerConfig struct {
	Hosts []HostInfo
	// Scheme is SchemeQueen (default) or SchemeMasterSlave.
	Scheme string
	// Level of the queen scheme (default Level1).
	Level Level
	// Seed places duplicated pieces on the board.
	Seed uint64
	// Conn is the socket to use; nil means listen on Listen.
	Conn   *net.UDPConn
	Listen string
	// Interval is the controller's probe period (queens use theirs).
	Interval time.Duration
	Detector DetectorConfig
	Clock    clock.Clock
	Logger   *slog.Logger
	Metrics  *Metrics
	// OnEvent, if not nil, receives events (outside the controller's lock,
	// in order, from the controller's goroutines).
	OnEvent func(Event)
}

// Event kinds.
const (
	EvFailed    = "failed"
	EvRecovered = "recovered"
	EvQueenLost = "queen-failed"
	EvReplaced  = "queen-replaced"
)

// Event is something the controller concluded.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Host uint32    `json:"host"`
	Name string    `json:"name"`
	// By is who noticed: a queen's id, or ControllerID.
	By uint32 `json:"by"`
	// Silence is how long the host had been silent when declared failed.
	Silence time.Duration `json:"silence,omitempty"`
	Detail  string        `json:"detail,omitempty"`
}

// Controller runs the monitoring: it assigns queens, probes them, takes
// their reports, declares failures, re-assigns when queens fail and
// replaces them. Create it with NewController, then Start (or Run); Close
// stops it.
type Controller struct {
	cfg    ControllerConfig
	det    DetectorConfig
	conn   *net.UDPConn
	log    *slog.Logger
	byID   map[uint32]int
	byAddr map[netip.AddrPort]int
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	started   bool
	timer     clock.Timer
	scheme    Scheme
	qa        *Assignment
	ms        *MasterSlave
	epoch     uint64
	hostEpoch []uint64    // epoch of each host's latest assignment
	ackEpoch  []uint64    // latest epoch each host acknowledged
	lastSent  []time.Time // when each host's assignment was last sent
	failed    []bool
	failedAt  []time.Time
	prober    *prober
	events    []Event // queued for OnEvent
	buf       []byte
	emitting  sync.Mutex
}

// NewController checks cfg, computes the assignment and opens the socket.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("monitor: controller interval %v, want > 0", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Level == 0 {
		cfg.Level = Level1
	}
	det, err := cfg.Detector.withDefaults(cfg.Interval)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	c := &Controller{cfg: cfg, det: det, byID: map[uint32]int{}, byAddr: map[netip.AddrPort]int{}}
	c.log = cfg.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for i, h := range cfg.Hosts {
		switch {
		case h.ID == ControllerID:
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): id %d is reserved for the controller", i, h.Name, h.ID))
		case !h.Addr.IsValid() || h.Addr.Port() == 0:
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): address %q is not ip:port", i, h.Name, h.Addr))
		}
		if j, dup := c.byID[h.ID]; dup {
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): id %d already used by hosts[%d]", i, h.Name, h.ID, j))
		}
		if j, dup := c.byAddr[h.Addr]; dup && h.Addr.IsValid() {
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): address %s already used by hosts[%d]", i, h.Name, h.Addr, j))
		}
		c.byID[h.ID] = i
		c.byAddr[h.Addr] = i
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("monitor: roster: %w", err)
	}
	n := len(cfg.Hosts)
	switch cfg.Scheme {
	case "", SchemeQueen:
		c.cfg.Scheme = SchemeQueen
		if n > 0 && n < 4 {
			return nil, fmt.Errorf("monitor: %d hosts: %w; use the %s scheme for fewer than 4 hosts", n, ErrUnfillable, SchemeMasterSlave)
		}
		a, err := Assign(n, cfg.Level, cfg.Seed)
		if err != nil {
			return nil, fmt.Errorf("monitor: %w", err)
		}
		c.qa, c.scheme = a, a
	case SchemeMasterSlave:
		m, err := NewMasterSlave(n)
		if err != nil {
			return nil, fmt.Errorf("monitor: %w", err)
		}
		c.ms, c.scheme = m, m
	default:
		return nil, fmt.Errorf("monitor: scheme %q, want %q or %q", cfg.Scheme, SchemeQueen, SchemeMasterSlave)
	}
	c.hostEpoch = make([]uint64, n)
	c.ackEpoch = make([]uint64, n)
	c.lastSent = make([]time.Time, n)
	c.failed = make([]bool, n)
	c.failedAt = make([]time.Time, n)
	c.prober = newProber(&c.det)
	conn := cfg.Conn
	if conn == nil {
		conn, err = listenUDP(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("monitor: controller: %w", err)
		}
	}
	c.conn = conn
	return c, nil
}

// Addr returns the address the controller listens on.
func (c *Controller) Addr() netip.AddrPort { return c.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Start sends the initial assignments and starts probing.
func (c *Controller) Start() {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return
	}
	c.started = true
	now := c.cfg.Clock.Now()
	for h := range c.cfg.Hosts {
		if c.scheme.Targets(h) != nil {
			c.assignLocked(h, now)
		}
	}
	c.refreshProbesLocked(now)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		readLoop(c.conn, c.cfg.Metrics, c.handle)
	}()
	c.timer = c.cfg.Clock.AfterFunc(c.cfg.Interval, c.tick)
	c.mu.Unlock()
}

// Run starts the controller and stops it when ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	c.Start()
	<-ctx.Done()
	c.Close()
	return nil
}

// Close stops the controller and waits for its goroutines.
func (c *Controller) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	_ = c.conn.Close()
	c.wg.Wait()
}

func (c *Controller) send(m *Message, to netip.AddrPort) {
	b, err := Append(c.buf[:0], m)
	if err != nil {
		c.log.Error("encode", "type", m.Type, "err", err)
		return
	}
	c.buf = b
	if _, err := c.conn.WriteToUDPAddrPort(b, to); err == nil {
		c.cfg.Metrics.sentMsg(m.Type)
	}
}

// assignLocked sends host h its current assignment under a new epoch.
func (c *Controller) assignLocked(h int, now time.Time) {
	c.epoch++
	c.hostEpoch[h] = c.epoch
	c.resendLocked(h, now)
}

// resendLocked sends host h its current assignment under its epoch.
func (c *Controller) resendLocked(h int, now time.Time) {
	role := RoleMember
	var ts []Target
	if tg := c.scheme.Targets(h); tg != nil && !c.scheme.Down(h) {
		role = RoleQueen
		for _, t := range tg {
			ts = append(ts, Target{ID: c.cfg.Hosts[t].ID, Addr: c.cfg.Hosts[t].Addr})
		}
	}
	chunks := Chunk(ts, MaxTargetsPerChunk)
	for i, ch := range chunks {
		c.send(&Message{Type: MsgAssign, From: ControllerID, Epoch: c.hostEpoch[h], Role: role,
			Chunk: uint16(i), Chunks: uint16(len(chunks)), Targets: ch}, c.cfg.Hosts[h].Addr)
	}
	c.lastSent[h] = now
}

// refreshProbesLocked points the controller's own prober at its targets
// and at failed hosts no live queen probes any more (failed queens), so
// that their recovery is noticed.
func (c *Controller) refreshProbesLocked(now time.Time) {
	probe := map[int]bool{}
	for _, h := range c.scheme.ControllerTargets() {
		probe[h] = true
	}
	covered := map[int]bool{}
	for q := range c.cfg.Hosts {
		if c.scheme.Down(q) {
			continue
		}
		for _, t := range c.scheme.Targets(q) {
			covered[t] = true
		}
	}
	for h, f := range c.failed {
		if f && !covered[h] {
			probe[h] = true
		}
	}
	var ts []Target
	for _, h := range sortedKeys(probe) {
		ts = append(ts, Target{ID: c.cfg.Hosts[h].ID, Addr: c.cfg.Hosts[h].Addr})
	}
	c.prober.set(ts, now)
}

func (c *Controller) handle(m *Message, src netip.AddrPort) {
	c.mu.Lock()
	now := c.cfg.Clock.Now()
	if c.closed {
		c.mu.Unlock()
		return
	}
	h, known := c.byID[m.From]
	if !known || c.cfg.Hosts[h].Addr != src {
		c.cfg.Metrics.reject()
		c.mu.Unlock()
		return
	}
	c.ackEpoch[h] = max(c.ackEpoch[h], m.Epoch)
	switch m.Type {
	case MsgAck:
		switch c.prober.ack(m, src, now) {
		case ackOK:
			if c.failed[h] {
				c.recoverLocked(h, ControllerID, now)
			}
		case ackLate:
			c.cfg.Metrics.lateAck()
		case ackUnknown:
			c.cfg.Metrics.reject()
		}
	case MsgReport:
		c.reportLocked(h, m, now)
	case MsgPing:
		c.send(&Message{Type: MsgAck, From: ControllerID, Epoch: c.epoch, Seq: m.Seq}, src)
	default:
		c.cfg.Metrics.reject()
	}
	c.mu.Unlock()
	c.flushEvents()
}

// reportLocked applies queen q's report.
func (c *Controller) reportLocked(q int, m *Message, now time.Time) {
	targets := c.scheme.Targets(q)
	if targets == nil || c.scheme.Down(q) || m.Epoch != c.hostEpoch[q] {
		// Not a queen (any more), or acting on an old assignment: send it
		// what it should do, at most once per interval.
		c.cfg.Metrics.reject()
		if now.Sub(c.lastSent[q]) >= c.cfg.Interval {
			if c.hostEpoch[q] == 0 {
				c.assignLocked(q, now)
			} else {
				c.resendLocked(q, now)
			}
		}
		return
	}
	for _, s := range m.Statuses {
		h, ok := c.byID[s.ID]
		if !ok || !slices.Contains(targets, h) {
			c.cfg.Metrics.reject()
			continue
		}
		switch {
		case s.State == StateFailed && !c.failed[h]:
			c.failLocked(h, c.cfg.Hosts[q].ID, time.Duration(s.AgeMs)*time.Millisecond, now)
		case s.State == StateAlive && c.failed[h]:
			c.recoverLocked(h, c.cfg.Hosts[q].ID, now)
		}
	}
}

func (c *Controller) event(e Event) { c.events = append(c.events, e) }

// flushEvents delivers queued events in order, outside c.mu.
func (c *Controller) flushEvents() {
	if c.cfg.OnEvent == nil {
		c.mu.Lock()
		c.events = nil
		c.mu.Unlock()
		return
	}
	c.emitting.Lock()
	defer c.emitting.Unlock()
	c.mu.Lock()
	evs := c.events
	c.events = nil
	c.mu.Unlock()
	for _, e := range evs {
		c.cfg.OnEvent(e)
	}
}

// failLocked declares host h failed and re-assigns.
func (c *Controller) failLocked(h int, by uint32, silence time.Duration, now time.Time) {
	c.failed[h] = true
	c.failedAt[h] = now
	info := c.cfg.Hosts[h]
	c.cfg.Metrics.failure(silence)
	c.event(Event{At: now, Kind: EvFailed, Host: info.ID, Name: info.Name, By: by, Silence: silence})
	c.log.Info("host failed", "host", info.Name, "by", by, "silence", silence)
	wasQueen := c.scheme.Targets(h) != nil
	changed := map[int]bool{}
	switch {
	case c.qa != nil:
		ch, err := c.qa.Fail(h)
		if err != nil {
			c.log.Error("fail", "host", info.Name, "err", err)
			return
		}
		c.cfg.Metrics.takeover(ch.TakenOver)
		for _, m := range ch.Monitors {
			changed[m] = true
		}
		if wasQueen {
			c.event(Event{At: now, Kind: EvQueenLost, Host: info.ID, Name: info.Name, By: by,
				Detail: fmt.Sprintf("%d squares taken over", ch.TakenOver)})
		}
		for _, row := range c.qa.FailedRoles() {
			rc, err := c.qa.Replace(row)
			if err != nil || rc.Replacement < 0 {
				continue
			}
			c.cfg.Metrics.replaced(0)
			for _, m := range rc.Monitors {
				changed[m] = true
			}
			ri := c.cfg.Hosts[rc.Replacement]
			c.event(Event{At: now, Kind: EvReplaced, Host: ri.ID, Name: ri.Name, By: ControllerID,
				Detail: fmt.Sprintf("now queen of row %d", row)})
		}
	case c.ms != nil:
		if err := c.ms.Fail(h); err != nil {
			return
		}
		if wasQueen && c.ms.Master() >= 0 {
			changed[c.ms.Master()] = true
			mi := c.cfg.Hosts[c.ms.Master()]
			c.cfg.Metrics.replaced(0)
			c.event(Event{At: now, Kind: EvReplaced, Host: mi.ID, Name: mi.Name, By: ControllerID, Detail: "now master"})
		}
	}
	delete(changed, h)
	for _, m := range sortedKeys(changed) {
		if !c.scheme.Down(m) {
			c.assignLocked(m, now)
		}
	}
	c.refreshProbesLocked(now)
	c.cfg.Metrics.gauges(len(Unmonitored(c.scheme, 1)), c.failedCount())
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (c *Controller) failedCount() int {
	n := 0
	for _, f := range c.failed {
		if f {
			n++
		}
	}
	return n
}

// recoverLocked marks h alive again; it keeps whatever squares it has and
// does not get a queen role back.
func (c *Controller) recoverLocked(h int, by uint32, now time.Time) {
	c.failed[h] = false
	info := c.cfg.Hosts[h]
	switch {
	case c.qa != nil:
		c.qa.Recover(h)
	case c.ms != nil:
		c.ms.down[h] = false
	}
	c.cfg.Metrics.recovery()
	c.event(Event{At: now, Kind: EvRecovered, Host: info.ID, Name: info.Name, By: by})
	// A recovered host may believe it is still a queen: tell it otherwise.
	c.assignLocked(h, now)
	c.refreshProbesLocked(now)
	c.cfg.Metrics.gauges(len(Unmonitored(c.scheme, 1)), c.failedCount())
}

// tick probes the controller's targets, judges them and re-sends
// assignments that were not acknowledged.
func (c *Controller) tick() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	now := c.cfg.Clock.Now()
	for _, st := range c.prober.statuses(now) {
		h := c.byID[st.ID]
		if st.State == StateFailed && !c.failed[h] {
			c.failLocked(h, ControllerID, time.Duration(st.AgeMs)*time.Millisecond, now)
		}
	}
	for h := range c.cfg.Hosts {
		// Queens answer the controller's probes with their epoch; members
		// are told once (and again if they act as queens).
		isQueen := c.scheme.Targets(h) != nil
		if isQueen && c.hostEpoch[h] > c.ackEpoch[h] && !c.failed[h] && now.Sub(c.lastSent[h]) >= c.cfg.Interval {
			c.resendLocked(h, now)
		}
	}
	for _, t := range c.prober.ping(now) {
		c.send(&Message{Type: MsgPing, From: ControllerID, Epoch: c.epoch, Seq: c.prober.seqFor(t.ID)}, t.Addr)
	}
	c.timer = c.cfg.Clock.AfterFunc(c.cfg.Interval, c.tick)
	c.mu.Unlock()
	c.flushEvents()
}

// HostStatus is one host in a Snapshot.
type HostStatus struct {
	ID     uint32 `json:"id"`
	Name   string `json:"name"`
	Failed bool   `json:"failed"`
	Queen  bool   `json:"queen"`
	// Monitors counts the live monitors assigned to the host (queens and
	// the controller).
	Monitors int `json:"monitors"`
	// Acked: the host applies its latest assignment.
	Acked bool `json:"acked"`
}

// Snapshot is the controller's view.
type Snapshot struct {
	Scheme      string       `json:"scheme"`
	Level       Level        `json:"level"`
	Epoch       uint64       `json:"epoch"`
	Hosts       []HostStatus `json:"hosts"`
	Unmonitored []uint32     `json:"unmonitored"`
	Queens      []uint32     `json:"queens"`
}

// Snapshot returns the controller's current view.
func (c *Controller) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Scheme: c.cfg.Scheme, Level: c.cfg.Level, Epoch: c.epoch}
	cov := Coverage(c.scheme)
	for h, info := range c.cfg.Hosts {
		queen := c.scheme.Targets(h) != nil && !c.scheme.Down(h)
		s.Hosts = append(s.Hosts, HostStatus{ID: info.ID, Name: info.Name, Failed: c.failed[h], Queen: queen,
			Monitors: cov[h], Acked: c.ackEpoch[h] >= c.hostEpoch[h]})
		if queen {
			s.Queens = append(s.Queens, info.ID)
		}
	}
	for _, h := range Unmonitored(c.scheme, 1) {
		s.Unmonitored = append(s.Unmonitored, c.cfg.Hosts[h].ID)
	}
	return s
}
