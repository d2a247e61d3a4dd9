package monitor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fleet is a controller and agents on loopback.
type fleet struct {
	t      *testing.T
	ctrl   *Controller
	agents []*Agent // nil for hosts that are fakes
	hosts  []HostInfo
	killed map[uint32]time.Time

	mu     sync.Mutex
	events []Event
}

type fleetOpts struct {
	n        int
	level    Level
	scheme   string
	interval time.Duration
	detector DetectorConfig
	metrics  *Metrics
	// fake[i], if set, replaces agent i with a socket the test drives.
	fake map[int]*net.UDPConn
}

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newFleet(t *testing.T, o fleetOpts) *fleet {
	t.Helper()
	f := &fleet{t: t, killed: map[uint32]time.Time{}}
	ctrlConn := listen(t)
	ctrlAddr := ctrlConn.LocalAddr().(*net.UDPAddr).AddrPort()
	for i := range o.n {
		id := uint32(1000 + i)
		if fc, ok := o.fake[i]; ok {
			f.agents = append(f.agents, nil)
			f.hosts = append(f.hosts, HostInfo{ID: id, Name: fmt.Sprintf("fake%d", i), Addr: fc.LocalAddr().(*net.UDPAddr).AddrPort()})
			continue
		}
		a, err := NewAgent(AgentConfig{ID: id, Conn: listen(t), Controller: ctrlAddr, Interval: o.interval, Detector: o.detector,
			Metrics: o.metrics, Load: func() (float64, int) { return 0.25, 3 }})
		if err != nil {
			t.Fatal(err)
		}
		f.agents = append(f.agents, a)
		f.hosts = append(f.hosts, HostInfo{ID: id, Name: fmt.Sprintf("host%d", i), Addr: a.Addr()})
	}
	ctrl, err := NewController(ControllerConfig{Hosts: f.hosts, Scheme: o.scheme, Level: o.level, Seed: 1, Conn: ctrlConn,
		Interval: o.interval, Detector: o.detector, Metrics: o.metrics, OnEvent: func(e Event) {
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.ctrl = ctrl
	for _, a := range f.agents {
		if a != nil {
			a.Start()
		}
	}
	ctrl.Start()
	t.Cleanup(f.close)
	return f
}

func (f *fleet) close() {
	f.ctrl.Close()
	for _, a := range f.agents {
		if a != nil {
			a.Close()
		}
	}
}

func (f *fleet) kill(i int) {
	f.killed[f.hosts[i].ID] = time.Now()
	f.agents[i].Close()
}

func (f *fleet) eventsOf(kind string) map[uint32]Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint32]Event{}
	for _, e := range f.events {
		if e.Kind == kind {
			if _, seen := out[e.Host]; !seen {
				out[e.Host] = e
			}
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// settled: every queen applies its latest assignment, no queen role is
// vacant, and the controller leaves no live host unmonitored.
func (f *fleet) settled() bool {
	s := f.ctrl.Snapshot()
	if len(s.Unmonitored) > 0 {
		return false
	}
	if f.ctrl.qa != nil {
		f.ctrl.mu.Lock()
		vacant := len(f.ctrl.qa.FailedRoles())
		f.ctrl.mu.Unlock()
		if vacant > 0 {
			return false
		}
	}
	for _, h := range s.Hosts {
		if h.Queen && !h.Acked {
			return false
		}
	}
	return true
}

// agentCoverage counts, per live host, the live agents that actually probe
// it plus the controller when its snapshot says it does.
func (f *fleet) agentCoverage() map[uint32]int {
	cov := map[uint32]int{}
	for i, a := range f.agents {
		if a == nil {
			continue
		}
		if _, dead := f.killed[f.hosts[i].ID]; dead {
			continue
		}
		for _, id := range a.Targets() {
			cov[id]++
		}
	}
	for _, q := range f.ctrl.Snapshot().Queens {
		cov[q]++
	}
	return cov
}

// TestFailureInjection starts 121 agents on loopback, kills random hosts
// and queens at once, and measures how long the controller takes to
// declare each failed and whether every live host is still monitored
// afterwards — at Level 1 and Level 2.
func TestFailureInjection(t *testing.T) {
	const n = 121
	const interval = 100 * time.Millisecond
	det := DetectorConfig{Timeout: 20 * interval} // 2 s: robust on a loaded 2-core machine
	for _, level := range []Level{Level1, Level2} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) {
			f := newFleet(t, fleetOpts{n: n, level: level, interval: interval, detector: det})
			waitFor(t, 10*time.Second, "initial assignments", f.settled)
			// Initially: L1 monitors each non-queen host once, L2 twice.
			queens := f.ctrl.Snapshot().Queens
			waitFor(t, 5*time.Second, "agents probing", func() bool {
				cov := f.agentCoverage()
				for _, h := range f.hosts {
					want := int(level)
					if slices.Contains(queens, h.ID) {
						want = 1
					}
					if cov[h.ID] != want {
						return false
					}
				}
				return true
			})
			rng := rand.New(rand.NewPCG(uint64(level), 42))
			queenIdx := map[int]bool{}
			for _, q := range queens {
				queenIdx[int(q-1000)] = true
			}
			var victims []int
			for _, i := range rng.Perm(n) {
				if queenIdx[i] && len(victims) < 2 {
					victims = append(victims, i)
				}
			}
			members := 0
			for _, i := range rng.Perm(n) {
				if !queenIdx[i] && members < 8 {
					victims = append(victims, i)
					members++
				}
			}
			for _, i := range victims {
				f.kill(i)
			}
			waitFor(t, 30*time.Second, "every failure detected", func() bool {
				failed := f.eventsOf(EvFailed)
				for id := range f.killed {
					if _, ok := failed[id]; !ok {
						return false
					}
				}
				return true
			})
			var detect []time.Duration
			for id, e := range f.eventsOf(EvFailed) {
				at, ok := f.killed[id]
				if !ok {
					t.Errorf("live host %d declared failed (false positive) by %d", id, e.By)
					continue
				}
				detect = append(detect, e.At.Sub(at))
			}
			sort.Slice(detect, func(i, j int) bool { return detect[i] < detect[j] })
			waitFor(t, 20*time.Second, "re-assignment settles", f.settled)
			var cov map[uint32]int
			queens = f.ctrl.Snapshot().Queens
			waitFor(t, 10*time.Second, "agents apply the re-assignment", func() bool {
				cov = f.agentCoverage()
				for _, h := range f.hosts {
					if _, dead := f.killed[h.ID]; dead {
						continue
					}
					want := int(level)
					if slices.Contains(queens, h.ID) {
						want = 1
					}
					if cov[h.ID] < want {
						return false
					}
				}
				return true
			})
			live, sum := 0, 0
			for _, h := range f.hosts {
				if _, dead := f.killed[h.ID]; !dead {
					live++
					sum += cov[h.ID]
				}
			}
			replaced := len(f.eventsOf(EvReplaced))
			t.Logf("L%d: %d hosts, killed %d (2 queens): detection min %v median %v max %v; %d queens replaced; live hosts %d, all monitored, mean monitors %.2f",
				level, n, len(victims), detect[0].Round(time.Millisecond), detect[len(detect)/2].Round(time.Millisecond),
				detect[len(detect)-1].Round(time.Millisecond), replaced, live, float64(sum)/float64(live))
			if replaced < 2 {
				t.Errorf("%d queens replaced, want >= 2", replaced)
			}
			// A host whose queen died too waits for the queen's detection,
			// then for its new monitor's timeout.
			if max := detect[len(detect)-1]; max > 2*det.Timeout+20*interval {
				t.Errorf("slowest detection %v, want within twice the timeout %v + 20 intervals", max, det.Timeout)
			}
		})
	}
}

// TestGarbageAndLateAgents: a host that answers probes with garbage, and
// one that answers too late, are declared failed; their answers are
// counted, never taken as heartbeats; nobody crashes.
func TestGarbageAndLateAgents(t *testing.T) {
	const interval = 100 * time.Millisecond
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	garbage, late := listen(t), listen(t)
	// The fakes sit on non-queen squares of the 16-host board.
	a, _ := Assign(16, Level1, 1)
	var spots []int
	for h := range 16 {
		if _, q := a.Role(h); !q {
			spots = append(spots, h)
		}
	}
	gi, li := spots[0], spots[1]
	det := DetectorConfig{Timeout: 20 * interval}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // answers every ping with junk of the right size and wrong shape
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, src, err := garbage.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			junk := append([]byte("RFGM\x01\x02"), buf[6:n]...) // an "ack" with a ping's length: truncated
			_, _ = garbage.WriteToUDPAddrPort(junk, src)
			_, _ = garbage.WriteToUDPAddrPort([]byte("HTTP/1.1 200 OK\r\n\r\nalive"), src)
		}
	}()
	go func() { // answers correctly, but after twice the timeout
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, src, err := late.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m, err := Decode(buf[:n])
			if err != nil || m.Type != MsgPing {
				continue
			}
			reply, _ := Encode(&Message{Type: MsgAck, From: uint32(1000 + li), Seq: m.Seq})
			time.AfterFunc(2*det.Timeout, func() { _, _ = late.WriteToUDPAddrPort(reply, src) })
		}
	}()
	f := newFleet(t, fleetOpts{n: 16, level: Level1, interval: interval, detector: det, metrics: metrics,
		fake: map[int]*net.UDPConn{gi: garbage, li: late}})
	waitFor(t, 10*time.Second, "fakes declared failed", func() bool {
		failed := f.eventsOf(EvFailed)
		_, g := failed[uint32(1000+gi)]
		_, l := failed[uint32(1000+li)]
		return g && l
	})
	waitFor(t, 10*time.Second, "late acks counted", func() bool {
		return testutil.ToFloat64(metrics.late) > 0 && testutil.ToFloat64(metrics.decodeErrors) > 0
	})
	if n := len(f.eventsOf(EvFailed)); n != 2 {
		f.mu.Lock()
		for _, e := range f.events {
			t.Logf("%s %s %d by %d silence %v %s", e.At.Format("15:04:05.000"), e.Kind, e.Host, e.By, e.Silence, e.Detail)
		}
		f.mu.Unlock()
		t.Errorf("%d hosts declared failed, want exactly the two fakes (%d, %d)", n, 1000+gi, 1000+li)
	}
	f.close()
	_ = garbage.Close()
	_ = late.Close()
	wg.Wait()
}

// TestRecovery: a member host that comes back on the same address is seen
// alive again; a queen that comes back stays a member (its role was
// replaced) and is told so.
func TestRecovery(t *testing.T) {
	const interval = 100 * time.Millisecond
	det := DetectorConfig{Timeout: 20 * interval}
	f := newFleet(t, fleetOpts{n: 25, level: Level2, interval: interval, detector: det})
	waitFor(t, 10*time.Second, "initial assignments", f.settled)
	queen := int(f.ctrl.Snapshot().Queens[0] - 1000)
	member := -1
	for i := range 25 {
		if _, q := f.ctrl.qa.Role(i); !q {
			member = i
			break
		}
	}
	for _, i := range []int{queen, member} {
		addr := f.agents[i].Addr()
		f.kill(i)
		id := f.hosts[i].ID
		waitFor(t, 10*time.Second, "failure detected", func() bool { _, ok := f.eventsOf(EvFailed)[id]; return ok })
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			t.Skipf("cannot re-bind %v: %v", addr, err)
		}
		a, err := NewAgent(AgentConfig{ID: id, Conn: conn, Controller: f.ctrl.Addr(), Interval: interval, Detector: det})
		if err != nil {
			t.Fatal(err)
		}
		f.agents[i] = a
		delete(f.killed, id)
		a.Start()
		waitFor(t, 10*time.Second, "recovery noticed", func() bool { _, ok := f.eventsOf(EvRecovered)[id]; return ok })
		waitFor(t, 5*time.Second, "recovered host applies its assignment", func() bool { return a.Epoch() > 0 })
		if a.Targets() != nil {
			t.Errorf("recovered host %d probes %v; its queen role went to a replacement", id, a.Targets())
		}
	}
	waitFor(t, 10*time.Second, "settled", f.settled)
}

func TestMasterSlaveFleet(t *testing.T) {
	const interval = 100 * time.Millisecond
	f := newFleet(t, fleetOpts{n: 10, scheme: SchemeMasterSlave, interval: interval, detector: DetectorConfig{Timeout: 20 * interval}})
	waitFor(t, 10*time.Second, "initial assignment", f.settled)
	f.kill(0) // the master
	f.kill(5)
	waitFor(t, 10*time.Second, "master and host 5 failed, new master", func() bool {
		failed := f.eventsOf(EvFailed)
		_, m := failed[1000]
		_, h := failed[1005]
		return m && h && len(f.eventsOf(EvReplaced)) > 0
	})
	waitFor(t, 10*time.Second, "settled", f.settled)
}

func TestPhiAccrualFleet(t *testing.T) {
	const interval = 100 * time.Millisecond
	f := newFleet(t, fleetOpts{n: 16, level: Level1, interval: interval, detector: DetectorConfig{Kind: DetectPhi, Timeout: 40 * interval}})
	waitFor(t, 10*time.Second, "initial assignments", f.settled)
	victim := -1
	for i := range 16 {
		if _, q := f.ctrl.qa.Role(i); !q {
			victim = i
			break
		}
	}
	// Let phi learn the inter-arrival times at the victim's queen.
	vid := f.hosts[victim].ID
	waitFor(t, 10*time.Second, "phi history", func() bool {
		for _, a := range f.agents {
			a.mu.Lock()
			pt := a.prober.targets[vid]
			n := 0
			if pt != nil {
				n = len(pt.det.gaps)
			}
			a.mu.Unlock()
			if n >= 10 {
				return true
			}
		}
		return false
	})
	f.kill(victim)
	start := time.Now()
	waitFor(t, 10*time.Second, "phi detects", func() bool { _, ok := f.eventsOf(EvFailed)[f.hosts[victim].ID]; return ok })
	if d := time.Since(start); d >= 40*interval {
		t.Errorf("phi-accrual took %v, no faster than the hard timeout", d)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewController(ControllerConfig{Hosts: []HostInfo{{ID: 1, Addr: netip.MustParseAddrPort("127.0.0.1:1")}}}); !errors.Is(err, ErrUnfillable) {
		t.Errorf("1-host queen scheme: %v", err)
	}
	if _, err := NewController(ControllerConfig{}); !errors.Is(err, ErrNoHosts) {
		t.Errorf("no hosts: %v", err)
	}
	bad := []HostInfo{
		{ID: 1, Addr: netip.MustParseAddrPort("127.0.0.1:1")}, {ID: 1, Addr: netip.MustParseAddrPort("127.0.0.1:2")},
		{ID: 3, Addr: netip.MustParseAddrPort("127.0.0.1:2")}, {ID: ControllerID, Addr: netip.MustParseAddrPort("127.0.0.1:4")},
		{ID: 5},
	}
	_, err := NewController(ControllerConfig{Hosts: bad})
	for _, want := range []string{"already used by hosts[0]", "address 127.0.0.1:2 already used", "reserved", "not ip:port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("roster error %v, want it to mention %q", err, want)
		}
	}
	if _, err := NewController(ControllerConfig{Scheme: "gossip", Hosts: bad[:1]}); err == nil {
		t.Error("unknown scheme accepted")
	}
	if _, err := NewAgent(AgentConfig{ID: ControllerID}); err == nil {
		t.Error("agent with the controller's id accepted")
	}
	if _, err := NewAgent(AgentConfig{ID: 1, Detector: DetectorConfig{Kind: "magic"}}); err == nil {
		t.Error("unknown detector accepted")
	}
}
