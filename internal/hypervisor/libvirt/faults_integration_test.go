package libvirt_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/testbed"
)

// waitProgress polls the job until it has moved at least bytes.
func waitProgress(t *testing.T, job hypervisor.Job, bytes uint64) hypervisor.JobInfo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := job.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.DataProcessed >= bytes && info.Phase != hypervisor.PhaseSetup {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("migration did not move %d bytes within 60 s: %+v", bytes, info)
		}
		time.Sleep(100 * time.Millisecond) // polling job statistics
	}
}

func stepKinds(d *libvirt.Driver, dom string) []string {
	var out []string
	for _, s := range d.Steps() {
		if s.Domain == dom {
			out = append(out, s.Kind)
		}
	}
	return out
}

func hasStep(d *libvirt.Driver, dom, kind string) bool {
	for _, k := range stepKinds(d, dom) {
		if k == kind {
			return true
		}
	}
	return false
}

func alive(t *testing.T, s *testbed.Site, name string) {
	t.Helper()
	off := s.ConsoleSize(name)
	if _, err := s.WaitConsole(context.Background(), name, off, "memchk OK", 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestNonLiveDirtyingIntegrity: a guest rewriting 20 MiB/s of a 64 MiB
// pattern goes a → b → c → a non-live (paused for the copy); its memory
// check stays clean and it never reboots.
func TestNonLiveDirtyingIntegrity(t *testing.T) {
	b := sharedBed(t)
	d := newDriver(t, b, nil)
	g := testbed.GuestSpec{Name: "dirty-nonlive", MemoryMiB: 256, CheckMiB: 64, DirtyMiBps: 20}
	startGuest(t, b.Sites[0], g)
	hops := []*testbed.Site{b.Sites[1], b.Sites[2], b.Sites[0]}
	from := b.Sites[0]
	for _, to := range hops {
		off := to.ConsoleSize(g.Name)
		o := newObs()
		if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: from.Name, DestHost: to.Name, Params: params(false)}, o); err != nil {
			t.Fatal(err)
		}
		r := o.wait(t, 2*time.Minute)
		if r.Err != nil || r.RunningOn != to.Name {
			t.Fatalf("%s → %s: %v (running on %q)", from.Name, to.Name, r.Err, r.RunningOn)
		}
		t.Logf("non-live %s → %s: %.2f s, pause %v, %d MiB", from.Name, to.Name, r.Finished.Sub(r.Started).Seconds(), r.Downtime, r.Bytes>>20)
		oneOnly(t, b, g.Name, to)
		checkIntegrity(t, to, g.Name, off, 3)
		if strings.Contains(to.ConsoleSince(g.Name, off), "GUEST-UP") {
			t.Fatalf("guest rebooted on %s", to.Name)
		}
		from = to
	}
}

// TestLiveDirtying: a live migration of a guest dirtying 20 MiB/s reports
// job statistics while it runs; afterwards the guest runs at the
// destination only and runs guestd (restarted from its disk if QEMU
// 7.2/TCG lost writes at the switch-over and the driver noticed).
func TestLiveDirtying(t *testing.T) {
	b := sharedBed(t)
	d := newDriver(t, b, nil)
	a, c := b.Sites[0], b.Sites[2]
	g := testbed.GuestSpec{Name: "dirty-live", MemoryMiB: 256, CheckMiB: 64, DirtyMiBps: 20}
	startGuest(t, a, g)
	off := c.ConsoleSize(g.Name)
	o := newObs()
	p := params(true)
	p.BandwidthBytes = 32 << 20 // long enough to watch
	job, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: p}, o)
	if err != nil {
		t.Fatal(err)
	}
	info := waitProgress(t, job, 8<<20)
	t.Logf("in flight: %+v", info)
	if info.Type != hypervisor.JobUnbounded || info.BytesPerSec() <= 0 || info.DataRemaining == 0 {
		t.Errorf("job statistics while running: %+v", info)
	}
	r := o.wait(t, 2*time.Minute)
	if r.Err != nil || r.RunningOn != c.Name {
		t.Fatalf("%v (running on %q)", r.Err, r.RunningOn)
	}
	t.Logf("live dirtying: %.2f s, downtime %v, %d MiB, %d iterations, steps %v", r.Finished.Sub(r.Started).Seconds(), r.Downtime, r.Bytes>>20, r.Rounds, stepKinds(d, g.Name))
	if r.Rounds < 2 {
		t.Errorf("a dirtying guest took %d iterations", r.Rounds)
	}
	if hasStep(d, g.Name, "restart") {
		// What did the guest do between the switch-over and the restart?
		out := c.ConsoleSince(g.Name, off)
		before, _, _ := strings.Cut(out, "GUEST-UP")
		t.Logf("restarted after the switch-over; console before the restart: trouble %q, %d memory checks, tail %q",
			testbed.Trouble(before), testbed.CountOK(before), before[max(0, len(before)-400):])
	}
	oneOnly(t, b, g.Name, c)
	liveOutcome(t, d, c, g.Name, off)
}

// TestCopyStorage: a guest with a local qcow2 disk that it keeps rewriting
// is migrated with copy-storage-all (NBD); at the destination both the
// memory and the disk checks stay clean.
func TestCopyStorage(t *testing.T) {
	b := sharedBed(t)
	d := newDriver(t, b, nil)
	a, c := b.Sites[1], b.Sites[2]
	g := testbed.GuestSpec{Name: "disk", DiskMiB: 32}
	startGuest(t, a, g)
	if _, err := a.WaitConsole(context.Background(), g.Name, 0, "diskchk OK", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	off := c.ConsoleSize(g.Name)
	o := newObs()
	p := params(false)
	p.CopyStorage = hypervisor.CopyStorageAll
	if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: p}, o); err != nil {
		t.Fatal(err)
	}
	r := o.wait(t, 2*time.Minute)
	if r.Err != nil || r.RunningOn != c.Name {
		t.Fatalf("%v (running on %q)", r.Err, r.RunningOn)
	}
	t.Logf("copy-storage: %.2f s, downtime %v, %d MiB", r.Finished.Sub(r.Started).Seconds(), r.Downtime, r.Bytes>>20)
	oneOnly(t, b, g.Name, c)
	checkIntegrity(t, c, g.Name, off, 3)
	if _, err := c.WaitConsole(context.Background(), g.Name, off, "diskchk OK", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	doms, err := d.ListDomains(context.Background(), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, dom := range doms {
		if dom.Name == g.Name && (dom.LocalDiskBytes < 32<<20 || !dom.Persistent || dom.State != hypervisor.StateRunning) {
			t.Errorf("inventory after copy-storage: %+v", dom)
		}
	}
}

// TestAbort: a slow (2 MiB/s) live migration is aborted mid-way; the guest
// keeps running on the source only.
func TestAbort(t *testing.T) {
	b := sharedBed(t)
	for _, drive := range []bool{false, true} {
		t.Run(fmt.Sprintf("drive=%v", drive), func(t *testing.T) {
			d := newDriver(t, b, func(c *libvirt.Config) { c.Drive = drive })
			a, c := b.Sites[0], b.Sites[1]
			g := testbed.GuestSpec{Name: fmt.Sprintf("abort-%v", drive)}
			startGuest(t, a, g)
			o := switchingObs{newObs()} // Drive applies to migrations that report the switch-over
			p := params(true)
			p.BandwidthBytes = 2 << 20
			job, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: p}, o)
			if err != nil {
				t.Fatal(err)
			}
			waitProgress(t, job, 2<<20)
			if err := job.Abort(); err != nil {
				t.Fatal(err)
			}
			r := o.wait(t, time.Minute)
			if !errors.Is(r.Err, hypervisor.ErrAborted) || r.RunningOn != a.Name {
				t.Fatalf("after abort: err %v, running on %q; want ErrAborted on %s", r.Err, r.RunningOn, a.Name)
			}
			if info, _ := job.Info(); info.Type != hypervisor.JobCancelled {
				t.Errorf("job type after abort = %s", info.Type)
			}
			oneOnly(t, b, g.Name, a)
			alive(t, a, g.Name)
		})
	}
}

// switchingObs is an obs that is a hypervisor.SwitchoverObserver.
type switchingObs struct{ *obs }

func (switchingObs) SwitchedOver() {}

// TestBandwidthChange: a migration started at 2 MiB/s runs at about that
// rate; raised to unlimited mid-way, it finishes at once.
func TestBandwidthChange(t *testing.T) {
	b := sharedBed(t)
	d := newDriver(t, b, nil)
	a, c := b.Sites[0], b.Sites[2]
	g := testbed.GuestSpec{Name: "speed"}
	startGuest(t, a, g)
	o := newObs()
	p := params(true)
	p.BandwidthBytes = 2 << 20
	job, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: p}, o)
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, job, 2<<20)
	info := waitProgress(t, job, 6<<20)
	slow := info.BytesPerSec()
	t.Logf("capped at 2 MiB/s: %.2f MiB/s, %d MiB left", slow/(1<<20), info.DataRemaining>>20)
	if slow > 3<<20 {
		t.Errorf("rate %.1f MiB/s under a 2 MiB/s cap", slow/(1<<20))
	}
	t0 := time.Now()
	if err := job.SetMaxSpeed(0); err != nil {
		t.Fatal(err)
	}
	r := o.wait(t, time.Minute)
	rest := time.Since(t0)
	if r.Err != nil || r.RunningOn != c.Name {
		t.Fatalf("%v (running on %q)", r.Err, r.RunningOn)
	}
	// At 2 MiB/s what was left would take remaining/2 MiB/s seconds.
	capped := time.Duration(float64(info.DataRemaining) / float64(2<<20) * float64(time.Second))
	t.Logf("after lifting the cap: done in %v (health check included); at 2 MiB/s it would take %v more", rest, capped)
	if rest > capped/2+5*time.Second {
		t.Errorf("lifting the cap did not speed the migration up: %v vs %v", rest, capped)
	}
	oneOnly(t, b, g.Name, c)
}

// TestLinkCut: the a–b link drops everything mid-migration; the migration
// fails with the link reported down and the guest keeps running on the
// source only.
func TestLinkCut(t *testing.T) {
	b := sharedBed(t)
	d := newDriver(t, b, func(c *libvirt.Config) { c.StallTimeout = 8 * time.Second })
	a, c := b.Sites[0], b.Sites[1]
	g := testbed.GuestSpec{Name: "cut"}
	startGuest(t, a, g)
	o := newObs()
	p := params(true)
	p.BandwidthBytes = 4 << 20
	job, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: p}, o)
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, job, 4<<20)
	link := b.LinkBetween(a, c)
	link.Cut(true)
	t0 := time.Now()
	r := o.wait(t, 2*time.Minute)
	link.Cut(false)
	t.Logf("after the cut: failed in %v: %v (steps %v)", time.Since(t0), r.Err, stepKinds(d, g.Name))
	if r.Err == nil || r.RunningOn != a.Name {
		t.Fatalf("err %v, running on %q; want a failure with the guest on %s", r.Err, r.RunningOn, a.Name)
	}
	if !errors.Is(r.Err, hypervisor.ErrLinkDown) {
		t.Errorf("error does not say the link is down: %v", r.Err)
	}
	oneOnly(t, b, g.Name, a)
	alive(t, a, g.Name)
}

// TestUnreachableSite: a host whose daemon cannot be reached is refused at
// once, for inventory and migration; a destination daemon that the source
// cannot reach fails the migration with the guest still on the source.
func TestUnreachableSite(t *testing.T) {
	b := sharedBed(t)
	hs := append(hosts(b), libvirt.Host{Name: "gone", URI: "qemu+unix:///system?socket=" + b.Dir() + "/nowhere/libvirt-sock"},
		libvirt.Host{Name: "far", URI: b.Sites[2].URI() + "&peer=qemu%2Btcp%3A%2F%2F10.78.0.99%2Fsystem"})
	d, err := libvirt.New(libvirt.Config{Hosts: hs, RPCTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ListDomains(context.Background(), "gone"); !errors.Is(err, hypervisor.ErrHostUnreachable) {
		t.Errorf("ListDomains on an unreachable host: %v", err)
	}
	a := b.Sites[0]
	g := testbed.GuestSpec{Name: "unreach"}
	startGuest(t, a, g)
	o := newObs()
	if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: "gone", Params: params(true)}, o); !errors.Is(err, hypervisor.ErrHostUnreachable) {
		t.Errorf("Migrate to an unreachable host: %v", err)
	}
	if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: "far", Params: params(true)}, o); err != nil {
		t.Fatal(err)
	}
	r := o.wait(t, 2*time.Minute)
	t.Logf("peer unreachable: %v", r.Err)
	if r.Err == nil || r.RunningOn != a.Name {
		t.Fatalf("err %v, running on %q", r.Err, r.RunningOn)
	}
	oneOnly(t, b, g.Name, a)
}

// TestDomainDisappears: an unknown domain is refused; a domain destroyed
// behind the driver's back mid-migration is restarted from its disk on the
// source, where it is still defined (never nowhere).
func TestDomainDisappears(t *testing.T) {
	b := sharedBed(t)
	d := newDriver(t, b, nil)
	a, c := b.Sites[1], b.Sites[0]
	if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: "no-such", SourceHost: a.Name, DestHost: c.Name, Params: params(true)}, newObs()); !errors.Is(err, hypervisor.ErrNoSuchDomain) {
		t.Errorf("Migrate of an unknown domain: %v", err)
	}
	g := testbed.GuestSpec{Name: "vanish"}
	startGuest(t, a, g)
	o := newObs()
	p := params(true)
	p.BandwidthBytes = 2 << 20
	job, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: p}, o)
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, job, 2<<20)
	off := a.ConsoleSize(g.Name)
	if err := a.Virsh(context.Background(), "destroy", g.Name); err != nil {
		t.Fatal(err)
	}
	r := o.wait(t, 2*time.Minute)
	t.Logf("domain destroyed mid-migration: %v, running on %q, steps %v", r.Err, r.RunningOn, stepKinds(d, g.Name))
	if r.Err == nil || r.RunningOn != a.Name {
		t.Fatalf("err %v, running on %q; want a failure with the guest restarted on %s", r.Err, r.RunningOn, a.Name)
	}
	if !hasStep(d, g.Name, "repair") {
		t.Errorf("no repair recorded: %v", stepKinds(d, g.Name))
	}
	oneOnly(t, b, g.Name, a)
	if _, err := a.WaitConsole(context.Background(), g.Name, off, "memchk OK", 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestDestinationFull: a destination whose memory limit the guest would
// exceed is refused before anything moves.
func TestDestinationFull(t *testing.T) {
	b := sharedBed(t)
	hs := hosts(b)
	hs[2].MemoryBytes = 200 << 20
	d, err := libvirt.New(libvirt.Config{Hosts: hs})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	startGuest(t, b.Sites[2], testbed.GuestSpec{Name: "resident"})
	g := testbed.GuestSpec{Name: "tenant"}
	startGuest(t, b.Sites[0], g)
	_, err = d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: b.Sites[0].Name, DestHost: b.Sites[2].Name, Params: params(true)}, newObs())
	t.Logf("full destination: %v", err)
	if !errors.Is(err, hypervisor.ErrDestinationFull) {
		t.Fatalf("want ErrDestinationFull, got %v", err)
	}
	oneOnly(t, b, g.Name, b.Sites[0])
}

// TestNotConverging: a guest rewriting a 64 MiB working set as fast as it
// can, over a 16 MiB/s cap with a 10 ms downtime limit. Under TCG QEMU
// converges it anyway after 5–9 iterations, so the driver's iteration
// bound is set to 1: at the second iteration the driver gives up
// (ErrNotConverging, guest on the source), or with ColdFallback completes
// the move non-live.
func TestNotConverging(t *testing.T) {
	b := sharedBed(t)
	a, c := b.Sites[0], b.Sites[1]
	g := testbed.GuestSpec{Name: "hot", MemoryMiB: 256, CheckMiB: 64, FlatOut: true}
	startGuest(t, a, g)
	alive(t, a, g.Name)
	if lines := strings.Split(strings.TrimSpace(a.ConsoleSince(g.Name, 0)), "\n"); len(lines) > 0 {
		t.Logf("guest: %s", lines[len(lines)-1])
	}
	p := params(true)
	p.BandwidthBytes = 16 << 20
	p.MaxDowntime = 10 * time.Millisecond
	for _, fallback := range []bool{false, true} {
		d := newDriver(t, b, func(cfg *libvirt.Config) { cfg.MaxIterations = 1; cfg.ColdFallback = fallback })
		o := newObs()
		if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: p}, o); err != nil {
			t.Fatal(err)
		}
		r := o.wait(t, 3*time.Minute)
		t.Logf("fallback=%v: %v, running on %q, %.1f s, steps %v", fallback, r.Err, r.RunningOn, r.Finished.Sub(r.Started).Seconds(), stepKinds(d, g.Name))
		if !fallback {
			if !errors.Is(r.Err, hypervisor.ErrNotConverging) || r.RunningOn != a.Name {
				t.Fatalf("want ErrNotConverging with the guest on %s", a.Name)
			}
			oneOnly(t, b, g.Name, a)
			continue
		}
		if r.Err != nil || r.RunningOn != c.Name {
			t.Fatalf("cold fallback: err %v, running on %q", r.Err, r.RunningOn)
		}
		if !hasStep(d, g.Name, "fallback") {
			// On a loaded CI machine the TCG guest can be starved of CPU
			// so that its dirtying stalls and the live attempt
			// converges before the iteration check sees it; the move
			// is then complete without the fallback, which is fine.
			t.Logf("the live attempt converged (guest starved of CPU); cold fallback not exercised in this run")
		}
		oneOnly(t, b, g.Name, c)
		alive(t, c, g.Name)
	}
}

// TestDeadGuestRestarted: the guest kernel panics right after the
// switch-over (as with QEMU 7.2/TCG's lost writes; here triggered through
// the test agent's refuge-panic). The domain still shows "running", but
// the health check notices and the driver restarts it from its disk at
// the destination.
func TestDeadGuestRestarted(t *testing.T) {
	b := sharedBed(t)
	var once sync.Once
	d := newDriver(t, b, func(cfg *libvirt.Config) {
		cfg.Health = func(ctx context.Context, c libvirt.Agent, dom lv.Domain) error {
			once.Do(func() { _, _ = c.QEMUDomainAgentCommand(dom, `{"execute":"refuge-panic"}`, 3, 0) })
			return libvirt.AgentHealth(ctx, c, dom)
		}
	})
	a, c := b.Sites[2], b.Sites[0]
	g := testbed.GuestSpec{Name: "phoenix"}
	startGuest(t, a, g)
	off := c.ConsoleSize(g.Name)
	o := newObs()
	if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: a.Name, DestHost: c.Name, Params: params(true)}, o); err != nil {
		t.Fatal(err)
	}
	r := o.wait(t, 3*time.Minute)
	t.Logf("dead guest: %v, running on %q, downtime %v, steps %v", r.Err, r.RunningOn, r.Downtime, stepKinds(d, g.Name))
	if r.Err != nil || r.RunningOn != c.Name || !hasStep(d, g.Name, "restart") {
		t.Fatalf("want success with a restart at %s", c.Name)
	}
	out := c.ConsoleSince(g.Name, off)
	if !strings.Contains(out, "Kernel panic") || strings.Count(out, "GUEST-UP") != 1 {
		t.Errorf("want a panic then one fresh boot on %s; console: %s", c.Name, out)
	}
	oneOnly(t, b, g.Name, c)
}
