package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
)

// DefaultInterval is the probe period when none is configured.
const DefaultInterval = time.Second

// AgentConfig sets up an Agent.
type AgentConfig struct {
	// ID is the host's id in the controller's roster (not ControllerID).
	ID uint32
	// Conn is the socket to use; nil means listen on Listen.
	Conn   *net.UDPConn
	Listen string
	// Controller, if valid, is the only address ASSIGNs are accepted from
	// (and reports go to). Zero: the first ASSIGN's sender (development).
	Controller netip.AddrPort
	// Interval is the probe period while the agent is a queen.
	Interval time.Duration
	Detector DetectorConfig
	// Load reports the host's CPU utilisation (0..1) and VM count for acks.
	Load    func() (util float64, vms int)
	Clock   clock.Clock
	Logger  *slog.Logger
	Metrics *Metrics
}

// Agent runs on every host: it answers probes, and while it is a queen it
// probes its targets every interval and reports their states to the
// controller. Create it with NewAgent, then Start (or Run); Close stops it.
type Agent struct {
	cfg  AgentConfig
	det  DetectorConfig
	conn *net.UDPConn
	log  *slog.Logger
	wg   sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	started    bool
	timer      clock.Timer
	controller netip.AddrPort
	epoch      uint64
	role       Role
	targets    []Target
	prober     *prober
	pending    *assembly
	buf        []byte
}

// assembly collects the chunks of one ASSIGN.
type assembly struct {
	epoch  uint64
	role   Role
	chunks [][]Target
	got    int
}

// NewAgent checks cfg and opens the socket.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.ID == ControllerID {
		return nil, fmt.Errorf("monitor: agent id %d is reserved for the controller", cfg.ID)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("monitor: agent interval %v, want > 0", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	det, err := cfg.Detector.withDefaults(cfg.Interval)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	conn := cfg.Conn
	if conn == nil {
		conn, err = listenUDP(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("monitor: agent %d: %w", cfg.ID, err)
		}
	}
	a := &Agent{cfg: cfg, det: det, conn: conn, log: lg.With("agent", cfg.ID), controller: cfg.Controller}
	a.prober = newProber(&a.det)
	return a, nil
}

func listenUDP(addr string) (*net.UDPConn, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	return net.ListenUDP("udp", ua)
}

// Addr returns the address the agent listens on.
func (a *Agent) Addr() netip.AddrPort { return a.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Start starts answering and probing.
func (a *Agent) Start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.closed {
		return
	}
	a.started = true
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		readLoop(a.conn, a.cfg.Metrics, a.handle)
	}()
	a.timer = a.cfg.Clock.AfterFunc(a.cfg.Interval, a.tick)
}

// Run starts the agent and stops it when ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	a.Start()
	<-ctx.Done()
	a.Close()
	return nil
}

// Close stops the agent as if its host crashed: no more answers, probes or
// reports. It waits for the agent's goroutines.
func (a *Agent) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Unlock()
	_ = a.conn.Close()
	a.wg.Wait()
}

// Epoch returns the epoch of the assignment the agent applies.
func (a *Agent) Epoch() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.epoch
}

// Targets returns the ids the agent probes (nil unless it is a queen).
func (a *Agent) Targets() []uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.role != RoleQueen {
		return nil
	}
	return a.prober.ids()
}

// readLoop reads datagrams until the socket closes and hands well-formed
// ones to handle.
func readLoop(conn *net.UDPConn, m *Metrics, handle func(*Message, netip.AddrPort)) {
	buf := make([]byte, MaxDatagram+1)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable surfacing as a read error
		}
		msg, err := Decode(buf[:n])
		if err != nil {
			m.decodeError()
			continue
		}
		m.receivedMsg(msg.Type)
		handle(msg, netip.AddrPortFrom(src.Addr().Unmap(), src.Port()))
	}
}

// send encodes and sends m (under a.mu).
func (a *Agent) send(m *Message, to netip.AddrPort) {
	b, err := Append(a.buf[:0], m)
	if err != nil {
		a.log.Error("encode", "type", m.Type, "err", err)
		return
	}
	a.buf = b
	if _, err := a.conn.WriteToUDPAddrPort(b, to); err == nil {
		a.cfg.Metrics.sentMsg(m.Type)
	}
}

func (a *Agent) handle(m *Message, src netip.AddrPort) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	now := a.cfg.Clock.Now()
	switch m.Type {
	case MsgPing:
		ack := &Message{Type: MsgAck, From: a.cfg.ID, Epoch: a.epoch, Seq: m.Seq}
		if a.cfg.Load != nil {
			u, vms := a.cfg.Load()
			if !(u >= 0) {
				u = 0
			}
			ack.UtilPermille = uint16(math.Round(min(u, 1) * 1000))
			ack.VMs = uint16(min(max(vms, 0), math.MaxUint16))
		}
		a.send(ack, src)
	case MsgAck:
		switch a.prober.ack(m, src, now) {
		case ackLate:
			a.cfg.Metrics.lateAck()
		case ackUnknown:
			a.cfg.Metrics.reject()
		}
	case MsgAssign:
		a.assign(m, src, now)
	default:
		a.cfg.Metrics.reject()
	}
}

// assign collects an ASSIGN's chunks and applies a complete, newer one.
func (a *Agent) assign(m *Message, src netip.AddrPort, now time.Time) {
	if m.From != ControllerID || (a.controller.IsValid() && src != a.controller) || m.Epoch <= a.epoch {
		a.cfg.Metrics.reject()
		return
	}
	if a.pending == nil || a.pending.epoch != m.Epoch {
		if a.pending != nil && a.pending.epoch > m.Epoch {
			return // an older assignment's chunk
		}
		a.pending = &assembly{epoch: m.Epoch, role: m.Role, chunks: make([][]Target, m.Chunks)}
	}
	p := a.pending
	if int(m.Chunks) != len(p.chunks) || m.Role != p.role {
		a.cfg.Metrics.reject()
		return
	}
	if p.chunks[m.Chunk] == nil {
		p.chunks[m.Chunk] = append([]Target{}, m.Targets...)
		p.got++
	}
	if p.got < len(p.chunks) {
		return
	}
	var ts []Target
	for _, c := range p.chunks {
		ts = append(ts, c...)
	}
	a.pending = nil
	a.epoch, a.role, a.targets = m.Epoch, p.role, ts
	if !a.controller.IsValid() {
		a.controller = src
	}
	if a.role == RoleQueen {
		a.prober.set(ts, now)
	} else {
		a.prober.set(nil, now)
	}
	a.log.Debug("assignment", "epoch", a.epoch, "role", a.role, "targets", len(ts))
}

// tick probes the targets and reports the previous verdicts.
func (a *Agent) tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	now := a.cfg.Clock.Now()
	if a.role == RoleQueen && a.controller.IsValid() {
		chunks := Chunk(a.prober.statuses(now), MaxStatusesPerChunk)
		for i, c := range chunks {
			a.send(&Message{Type: MsgReport, From: a.cfg.ID, Epoch: a.epoch, Chunk: uint16(i), Chunks: uint16(len(chunks)), Statuses: c}, a.controller)
		}
		for _, t := range a.prober.ping(now) {
			a.send(&Message{Type: MsgPing, From: a.cfg.ID, Epoch: a.epoch, Seq: a.prober.seqFor(t.ID)}, t.Addr)
		}
	}
	a.timer = a.cfg.Clock.AfterFunc(a.cfg.Interval, a.tick)
}
