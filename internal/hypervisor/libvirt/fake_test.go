package libvirt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/refuge-project/refuge/internal/hypervisor"
)

// A fake federation of libvirt daemons behind the rpc interface.

type world struct {
	mu    sync.Mutex
	hosts map[string]*fakeHost // by control URI
	peers map[string]*fakeHost // by peer URI
	dials atomic.Int32
	// failDials makes the next n dials fail.
	failDials atomic.Int32
	// hang makes dials to these URIs block until the channel is closed.
	hang map[string]chan struct{}
}

type fdom struct {
	state      lv.DomainState
	persistent bool
	memKiB     uint64
	agent      bool
	agentDead  bool
	job        lv.DomainJobType
}

type fakeHost struct {
	w    *world
	name string
	doms map[string]*fdom
	// perform, if set, runs instead of the default move.
	perform func(h *fakeHost, dom string, dst *fakeHost, flags lv.DomainMigrateFlags) error
	aborts  atomic.Int32
	// subs are the lifecycle event subscriptions of its connections.
	subs map[chan lv.DomainEventLifecycleMsg]bool
}

// LifecycleEvents subscribes to the host's lifecycle events until ctx ends
// or the connection is closed.
func (c *fakeConn) LifecycleEvents(ctx context.Context) (<-chan lv.DomainEventLifecycleMsg, error) {
	ch := make(chan lv.DomainEventLifecycleMsg, 16)
	c.h.w.mu.Lock()
	if c.h.subs == nil {
		c.h.subs = map[chan lv.DomainEventLifecycleMsg]bool{}
	}
	c.h.subs[ch] = true
	c.h.w.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-c.disc:
		}
		c.h.w.mu.Lock()
		delete(c.h.subs, ch)
		close(ch)
		c.h.w.mu.Unlock()
	}()
	return ch, nil
}

// emit sends a lifecycle event to the host's subscribers; the caller holds w.mu.
func (h *fakeHost) emit(dom string, ev lv.DomainEventType, detail int32) {
	for ch := range h.subs {
		ch <- lv.DomainEventLifecycleMsg{Dom: lv.Domain{Name: dom}, Event: int32(ev), Detail: detail}
	}
}

type fakeConn struct {
	h    *fakeHost
	disc chan struct{}
	once sync.Once
}

func newWorld(names ...string) *world {
	w := &world{hosts: map[string]*fakeHost{}, peers: map[string]*fakeHost{}, hang: map[string]chan struct{}{}}
	for _, n := range names {
		h := &fakeHost{w: w, name: n, doms: map[string]*fdom{}}
		w.hosts["test:///"+n] = h
		w.peers["peer://"+n] = h
	}
	return w
}

func (w *world) host(n string) *fakeHost { return w.hosts["test:///"+n] }

func (w *world) dial(uri string) (rpc, func(), error) {
	w.dials.Add(1)
	if w.failDials.Load() > 0 {
		w.failDials.Add(-1)
		return nil, nil, errors.New("connection refused")
	}
	w.mu.Lock()
	h, ok := w.hosts[uri]
	hang := w.hang[uri]
	w.mu.Unlock()
	if hang != nil {
		<-hang
		return nil, nil, fmt.Errorf("dial %s: i/o timeout", uri)
	}
	if !ok {
		return nil, nil, fmt.Errorf("no daemon at %s", uri)
	}
	c := &fakeConn{h: h, disc: make(chan struct{})}
	return c, func() { c.once.Do(func() { close(c.disc) }) }, nil
}

func (w *world) driver(t *testing.T, mod func(*Config)) *Driver {
	t.Helper()
	d := w.newDriver(t, mod)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// newDriver starts a driver on the world's hosts without waiting for them.
func (w *world) newDriver(t *testing.T, mod func(*Config)) *Driver {
	t.Helper()
	cfg := Config{dial: w.dial, HealthSettle: time.Millisecond, PollInterval: 5 * time.Millisecond, KeepAlive: 20 * time.Millisecond,
		ReconnectMin: time.Millisecond, ReconnectMax: 5 * time.Millisecond, RPCTimeout: time.Second, HealthTimeout: 100 * time.Millisecond, BootTimeout: time.Second}
	for uri, h := range w.hosts {
		cfg.Hosts = append(cfg.Hosts, Host{Name: h.name, URI: uri + "?peer=peer://" + h.name})
	}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func (h *fakeHost) add(name string, mib uint64) *fdom {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	d := &fdom{state: lv.DomainRunning, persistent: true, memKiB: mib * 1024, agent: true}
	h.doms[name] = d
	return d
}

func (h *fakeHost) state(name string) string {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	d, ok := h.doms[name]
	if !ok {
		return "absent"
	}
	return string(domState(int32(d.state)))
}

var errNoDomain = lv.Error{Code: uint32(lv.ErrNoDomain), Message: "Domain not found"}

func (c *fakeConn) get(name string) (*fdom, error) {
	d, ok := c.h.doms[name]
	if !ok {
		return nil, errNoDomain
	}
	return d, nil
}

func (c *fakeConn) ConnectGetLibVersion() (uint64, error) { return 9000000, nil }
func (c *fakeConn) ConnectListAllDomains(_ int32, flags lv.ConnectListAllDomainsFlags) ([]lv.Domain, uint32, error) {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	var out []lv.Domain
	for n, d := range c.h.doms {
		if flags&lv.ConnectListDomainsActive != 0 && d.state != lv.DomainRunning && d.state != lv.DomainPaused {
			continue
		}
		out = append(out, lv.Domain{Name: n})
	}
	return out, uint32(len(out)), nil
}
func (c *fakeConn) ConnectGetAllDomainStats([]lv.Domain, uint32, uint32) ([]lv.DomainStatsRecord, error) {
	return nil, nil
}
func (c *fakeConn) DomainLookupByName(name string) (lv.Domain, error) {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	if _, err := c.get(name); err != nil {
		return lv.Domain{}, err
	}
	return lv.Domain{Name: name}, nil
}
func (c *fakeConn) DomainGetState(dom lv.Domain, _ uint32) (int32, int32, error) {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return 0, 0, err
	}
	return int32(d.state), 0, nil
}
func (c *fakeConn) DomainGetInfo(dom lv.Domain) (uint8, uint64, uint64, uint16, uint64, error) {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	return uint8(d.state), d.memKiB, d.memKiB, 1, 0, nil
}
func (c *fakeConn) DomainGetXMLDesc(dom lv.Domain, _ lv.DomainXMLFlags) (string, error) {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return "", err
	}
	x := "<domain type='qemu'><name>" + dom.Name + "</name><devices>"
	if d.agent {
		x += "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
	}
	return x + "</devices></domain>", nil
}
func (c *fakeConn) DomainGetBlockInfo(lv.Domain, string, uint32) (uint64, uint64, uint64, error) {
	return 0, 0, 0, nil
}
func (c *fakeConn) DomainIsPersistent(dom lv.Domain) (int32, error) { return 1, nil }
func (c *fakeConn) DomainMigratePerform3Params(dom lv.Domain, dconnuri lv.OptString, _ []lv.TypedParam, _ []byte, flags lv.DomainMigrateFlags) ([]byte, error) {
	c.h.w.mu.Lock()
	dst := c.h.w.peers[dconnuri[0]]
	d, err := c.get(dom.Name)
	if err == nil {
		d.job = lv.DomainJobUnbounded
	}
	perform := c.h.perform
	c.h.w.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if dst == nil {
		return nil, lv.Error{Code: uint32(lv.ErrOperationFailed), Message: "unable to connect to server: Connection reset"}
	}
	defer func() {
		c.h.w.mu.Lock()
		d.job = lv.DomainJobNone
		c.h.w.mu.Unlock()
	}()
	if perform != nil {
		return nil, perform(c.h, dom.Name, dst, flags)
	}
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	delete(c.h.doms, dom.Name)
	moved := *d
	moved.job = lv.DomainJobNone
	dst.doms[dom.Name] = &moved
	dst.emit(dom.Name, lv.DomainEventResumed, int32(lv.DomainEventResumedMigrated))
	return nil, nil
}
func (c *fakeConn) DomainMigrateSetMaxDowntime(lv.Domain, uint64, uint32) error { return nil }
func (c *fakeConn) DomainGetJobStats(dom lv.Domain, flags lv.DomainGetJobStatsFlags) (int32, []lv.TypedParam, error) {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return 0, nil, err
	}
	if flags&lv.DomainJobStatsCompleted != 0 {
		return int32(lv.DomainJobCompleted), []lv.TypedParam{
			{Field: lv.DomainJobTimeElapsed, Value: *lv.NewTypedParamValueUllong(1500)},
			{Field: lv.DomainJobDataProcessed, Value: *lv.NewTypedParamValueUllong(100 << 20)},
			{Field: lv.DomainJobDowntime, Value: *lv.NewTypedParamValueUllong(120)},
			{Field: lv.DomainJobMemoryIteration, Value: *lv.NewTypedParamValueUllong(3)},
		}, nil
	}
	if d.job == lv.DomainJobNone {
		return int32(lv.DomainJobNone), nil, nil
	}
	return int32(d.job), []lv.TypedParam{
		{Field: lv.DomainJobDataProcessed, Value: *lv.NewTypedParamValueUllong(10 << 20)},
		{Field: lv.DomainJobDataRemaining, Value: *lv.NewTypedParamValueUllong(90 << 20)},
		{Field: lv.DomainJobMemoryIteration, Value: *lv.NewTypedParamValueUllong(1)},
		{Field: lv.DomainJobMemoryBps, Value: *lv.NewTypedParamValueUllong(50 << 20)},
	}, nil
}
func (c *fakeConn) DomainMigrateSetMaxSpeed(lv.Domain, uint64, uint32) error { return nil }
func (c *fakeConn) DomainMigrateStartPostCopy(lv.Domain, uint32) error       { return nil }
func (c *fakeConn) DomainAbortJob(lv.Domain) error {
	c.h.aborts.Add(1)
	return nil
}
func (c *fakeConn) DomainDestroy(dom lv.Domain) error {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return err
	}
	d.state = lv.DomainShutoff
	return nil
}
func (c *fakeConn) DomainCreate(dom lv.Domain) error {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return err
	}
	d.state, d.agentDead = lv.DomainRunning, false
	return nil
}
func (c *fakeConn) DomainResume(dom lv.Domain) error {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return err
	}
	d.state = lv.DomainRunning
	return nil
}
func (c *fakeConn) DomainStartDirtyRateCalc(lv.Domain, int32, uint32) error { return nil }

// DomainMemoryPeek reads a memory whose every fourth page is not zero.
func (c *fakeConn) DomainMemoryPeek(dom lv.Domain, off uint64, size uint32, _ lv.DomainMemoryFlags) ([]byte, error) {
	if _, err := c.get(dom.Name); err != nil {
		return nil, err
	}
	b := make([]byte, size)
	for p := uint64(0); p < uint64(size); p += pageSize {
		if (off+p)/pageSize%4 == 0 {
			b[p+100] = 1
		}
	}
	return b, nil
}
func (c *fakeConn) QEMUDomainAgentCommand(dom lv.Domain, _ string, _ int32, _ uint32) (lv.OptString, error) {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return nil, err
	}
	if d.agentDead {
		return nil, lv.Error{Code: uint32(lv.ErrAgentUnresponsive), Message: "Guest agent is not responding"}
	}
	return lv.OptString{`{"return":{}}`}, nil
}
func (c *fakeConn) Disconnected() <-chan struct{} { return c.disc }

// observer checking the Driver contract: called once, never before Migrate returned.
type checkObs struct {
	returned atomic.Bool
	calls    atomic.Int32
	early    atomic.Bool
	ch       chan hypervisor.Result
}

func newCheckObs() *checkObs { return &checkObs{ch: make(chan hypervisor.Result, 2)} }
func (o *checkObs) MigrationDone(r hypervisor.Result) {
	if !o.returned.Load() {
		o.early.Store(true)
	}
	o.calls.Add(1)
	o.ch <- r
}

func (o *checkObs) wait(t *testing.T) hypervisor.Result {
	t.Helper()
	select {
	case r := <-o.ch:
		if o.early.Load() {
			t.Error("MigrationDone before Migrate returned")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no MigrationDone")
	}
	return hypervisor.Result{}
}

func migrate(t *testing.T, d *Driver, dom, src, dst string, o *checkObs) hypervisor.Job {
	t.Helper()
	j, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: dom, SourceHost: src, DestHost: dst,
		Params: hypervisor.MigrateParams{Live: true, PeerToPeer: true, PersistDest: true, UndefineSource: true}}, o)
	o.returned.Store(true)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestFakeMigrateSuccess(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	d := w.driver(t, nil)
	o := newCheckObs()
	j := migrate(t, d, "vm", "a", "b", o)
	r := o.wait(t)
	if r.Err != nil || r.RunningOn != "b" || r.Downtime != 120*time.Millisecond || r.Rounds != 3 || r.Bytes != 100<<20 {
		t.Fatalf("result %+v", r)
	}
	if info, _ := j.Info(); info.Type != hypervisor.JobCompleted {
		t.Errorf("final job %+v", info)
	}
	if w.host("a").state("vm") != "absent" || w.host("b").state("vm") != "running" {
		t.Error("domain not moved")
	}
	recs := d.Records()
	if len(recs) != 1 || recs[0].RunningOn != "b" || recs[0].Restarted {
		t.Errorf("records %+v", recs)
	}
	if err := j.Abort(); !errors.Is(err, ErrNotActive) {
		t.Errorf("Abort after the end: %v", err)
	}
	_ = d.Close() // waits for every driver goroutine: no second call can come after this
	if o.calls.Load() != 1 {
		t.Errorf("MigrationDone called %d times", o.calls.Load())
	}
}

func TestFakeRefusals(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	w.host("b").add("big", 900)
	d := w.driver(t, func(c *Config) {
		for i := range c.Hosts {
			if c.Hosts[i].Name == "b" {
				c.Hosts[i].MemoryBytes = 1 << 30
			}
		}
	})
	for _, tc := range []struct {
		dom, src, dst string
		want          error
	}{
		{"vm", "a", "nowhere", hypervisor.ErrHostUnreachable},
		{"vm", "a", "a", ErrSameHost},
		{"ghost", "a", "b", hypervisor.ErrNoSuchDomain},
		{"vm", "a", "b", hypervisor.ErrDestinationFull},
	} {
		_, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: tc.dom, SourceHost: tc.src, DestHost: tc.dst}, newCheckObs())
		if !errors.Is(err, tc.want) {
			t.Errorf("%s %s→%s: %v, want %v", tc.dom, tc.src, tc.dst, err, tc.want)
		}
	}
}

func TestFakeLinkFailureLeavesSource(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	w.host("a").perform = func(*fakeHost, string, *fakeHost, lv.DomainMigrateFlags) error {
		return lv.Error{Code: uint32(lv.ErrInternalError), Message: "client socket is closed"}
	}
	d := w.driver(t, nil)
	o := newCheckObs()
	migrate(t, d, "vm", "a", "b", o)
	r := o.wait(t)
	if !errors.Is(r.Err, hypervisor.ErrLinkDown) || r.RunningOn != "a" {
		t.Fatalf("result %+v", r)
	}
}

func TestFakeBothActiveRepaired(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	w.host("a").perform = func(src *fakeHost, dom string, dst *fakeHost, _ lv.DomainMigrateFlags) error {
		// the destination QEMU was left behind, paused, and the source paused too
		w.mu.Lock()
		dst.doms[dom] = &fdom{state: lv.DomainPaused, memKiB: 128 << 10}
		src.doms[dom].state = lv.DomainPaused
		w.mu.Unlock()
		return lv.Error{Code: uint32(lv.ErrOperationFailed), Message: "migration failed"}
	}
	d := w.driver(t, nil)
	o := newCheckObs()
	migrate(t, d, "vm", "a", "b", o)
	r := o.wait(t)
	if r.Err == nil || r.RunningOn != "a" {
		t.Fatalf("result %+v", r)
	}
	if w.host("a").state("vm") != "running" || w.host("b").state("vm") == "running" || w.host("b").state("vm") == "paused" {
		t.Errorf("after repair: a %s, b %s", w.host("a").state("vm"), w.host("b").state("vm"))
	}
	repaired := false
	for _, s := range d.Steps() {
		repaired = repaired || s.Kind == "repair"
	}
	if !repaired {
		t.Error("no repair recorded")
	}
}

func TestFakeDeadGuestRestarted(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	w.host("a").perform = func(src *fakeHost, dom string, dst *fakeHost, _ lv.DomainMigrateFlags) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		moved := *src.doms[dom]
		moved.agentDead = true // the guest kernel died at the switch-over
		moved.job = lv.DomainJobNone
		delete(src.doms, dom)
		dst.doms[dom] = &moved
		return nil
	}
	d := w.driver(t, nil)
	o := newCheckObs()
	migrate(t, d, "vm", "a", "b", o)
	r := o.wait(t)
	if r.Err != nil || r.RunningOn != "b" {
		t.Fatalf("result %+v", r)
	}
	if recs := d.Records(); len(recs) != 1 || !recs[0].Restarted {
		t.Errorf("restart not recorded: %+v", recs)
	}
}

func TestFakeAbort(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	release := make(chan struct{})
	w.host("a").perform = func(*fakeHost, string, *fakeHost, lv.DomainMigrateFlags) error {
		<-release
		return lv.Error{Code: uint32(lv.ErrOperationAborted), Message: "operation aborted: migration out: canceled by client"}
	}
	d := w.driver(t, nil)
	o := newCheckObs()
	j := migrate(t, d, "vm", "a", "b", o)
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, _ := j.Info()
		if info.DataProcessed > 0 {
			if info.MemBytesPerSec != 50<<20 || info.Phase != hypervisor.PhasePrecopy {
				t.Errorf("job stats %+v", info)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no job statistics")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := j.SetMaxSpeed(10 << 20); err != nil {
		t.Fatal(err)
	}
	if err := j.Abort(); err != nil {
		t.Fatal(err)
	}
	close(release)
	r := o.wait(t)
	if !errors.Is(r.Err, hypervisor.ErrAborted) || r.RunningOn != "a" {
		t.Fatalf("result %+v", r)
	}
	if info, _ := j.Info(); info.Type != hypervisor.JobCancelled {
		t.Errorf("final job %+v", info)
	}
}

func TestFakeReconnect(t *testing.T) {
	w := newWorld("a")
	w.failDials.Store(3)
	w.host("a").add("vm", 64)
	d := w.driver(t, nil)
	doms, err := d.ListDomains(context.Background(), "a")
	if err != nil || len(doms) != 1 || doms[0].MemoryBytes != 64<<20 || doms[0].State != hypervisor.StateRunning {
		t.Fatalf("ListDomains: %+v %v", doms, err)
	}
	// Drop the connection: the driver reconnects.
	c := d.hosts["a"]
	c.mu.Lock()
	kill, gen := c.kill, c.gen
	c.mu.Unlock()
	kill()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		g, up := c.gen, c.c != nil
		c.mu.Unlock()
		if g > gen && up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reconnect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w.dials.Load() < 5 {
		t.Errorf("%d dials, want ≥ 5 (3 failures, the first connection, the reconnect)", w.dials.Load())
	}
}

func TestControlURI(t *testing.T) {
	c, p, err := ControlURI("qemu+unix:///system?socket=/tmp/x/libvirt-sock&peer=qemu+tcp://10.0.0.2/system")
	if err != nil || c != "qemu+unix:///system?socket=%2Ftmp%2Fx%2Flibvirt-sock" || p != "qemu+tcp://10.0.0.2/system" {
		t.Fatalf("ControlURI = %q %q %v", c, p, err)
	}
	c, p, _ = ControlURI("qemu+tls://h1.example/system")
	if c != p || c != "qemu+tls://h1.example/system" {
		t.Fatalf("ControlURI = %q %q", c, p)
	}
}

func TestMapErr(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{lv.Error{Code: uint32(lv.ErrOperationAborted)}, hypervisor.ErrAborted},
		{lv.Error{Code: uint32(lv.ErrNoDomain)}, hypervisor.ErrNoSuchDomain},
		{lv.Error{Code: uint32(lv.ErrInternalError), Message: "connection closed due to keepalive timeout"}, hypervisor.ErrLinkDown},
		{errors.New("EOF"), hypervisor.ErrHostUnreachable},
	} {
		if got := mapErr(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("mapErr(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
