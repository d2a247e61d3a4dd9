package libvirt

import (
	"context"
	"errors"
	"strings"
	"testing"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/refuge-project/refuge/internal/hypervisor"
)

// DomainSuspend is virDomainSuspend on the fake: the domain pauses.
func (c *fakeConn) DomainSuspend(dom lv.Domain) error {
	c.h.w.mu.Lock()
	defer c.h.w.mu.Unlock()
	d, err := c.get(dom.Name)
	if err != nil {
		return err
	}
	d.state = lv.DomainPaused
	return nil
}

// heldMigration makes host src's migrations wait for release, then move
// the domain as it is (a paused domain arrives paused) or, with fail,
// leave it and report a broken connection.
func heldMigration(w *world, src string, fail bool) (release func()) {
	ch := make(chan struct{})
	w.host(src).perform = func(src *fakeHost, dom string, dst *fakeHost, _ lv.DomainMigrateFlags) error {
		<-ch
		if fail {
			return lv.Error{Code: uint32(lv.ErrOperationFailed), Message: "migration failed: Connection reset by peer"}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		moved := *src.doms[dom]
		moved.job = lv.DomainJobNone
		delete(src.doms, dom)
		dst.doms[dom] = &moved
		return nil
	}
	return func() { close(ch) }
}

func startWith(t *testing.T, d *Driver, p hypervisor.MigrateParams, route []string, o *checkObs) hypervisor.Job {
	t.Helper()
	j, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: "vm", SourceHost: "a", DestHost: "b", Params: p, Route: route}, o)
	o.returned.Store(true)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// held is a migration of vm from a to b that waits for release.
type held struct {
	w       *world
	d       *Driver
	o       *checkObs
	j       hypervisor.Job
	release func()
}

func startHeld(t *testing.T, p hypervisor.MigrateParams, fail bool) held {
	t.Helper()
	h := held{w: newWorld("a", "b"), o: newCheckObs()}
	h.w.host("a").add("vm", 128)
	h.release = heldMigration(h.w, "a", fail)
	h.d = h.w.driver(t, nil)
	h.j = startWith(t, h.d, p, nil, h.o)
	return h
}

func hasStep(d *Driver, kind, detail string) bool {
	for _, s := range d.Steps() {
		if s.Kind == kind && strings.Contains(s.Detail, detail) {
			return true
		}
	}
	return false
}

var live = hypervisor.MigrateParams{Live: true, PeerToPeer: true}

// Pause suspends the source domain during the migration; the domain
// arrives paused and the driver resumes it at the destination.
func TestFakePauseResumesAtTheDestination(t *testing.T) {
	h := startHeld(t, live, false)
	w, d, o, j := h.w, h.d, h.o, h.j
	if err := j.Pause(); err != nil {
		t.Fatal(err)
	}
	if st := w.host("a").state("vm"); st != "paused" {
		t.Errorf("source domain %s after Pause", st)
	}
	if info, _ := j.Info(); !info.Paused || info.PostCopy {
		t.Errorf("job %+v after Pause", info)
	}
	if err := j.Pause(); err != nil {
		t.Errorf("second Pause: %v", err)
	}
	if err := j.StartPostCopy(); !errors.Is(err, hypervisor.ErrNotAllowed) {
		t.Errorf("StartPostCopy after Pause: %v", err)
	}
	h.release()
	r := o.wait(t)
	if r.Err != nil || r.RunningOn != "b" {
		t.Fatalf("result %+v", r)
	}
	if st := w.host("b").state("vm"); st != "running" {
		t.Errorf("destination domain %s, want resumed", st)
	}
	if !hasStep(d, "pause", "suspended") || !hasStep(d, "repair", "resumed") {
		t.Errorf("steps %+v", d.Steps())
	}
	if info, _ := j.Info(); info.Type != hypervisor.JobCompleted || !info.Paused {
		t.Errorf("final job %+v", info)
	}
	if err := j.Pause(); !errors.Is(err, ErrNotActive) {
		t.Errorf("Pause after the end: %v", err)
	}
}

// A paused migration that fails leaves the domain running on its source.
func TestFakePausedMigrationFailsOnTheSource(t *testing.T) {
	h := startHeld(t, live, true)
	if err := h.j.Pause(); err != nil {
		t.Fatal(err)
	}
	h.release()
	r := h.o.wait(t)
	if r.Err == nil || r.RunningOn != "a" {
		t.Fatalf("result %+v", r)
	}
	if st := h.w.host("a").state("vm"); st != "running" {
		t.Errorf("source domain %s, want resumed", st)
	}
}

func TestFakePauseOfANonLiveMigrationDoesNothing(t *testing.T) {
	h := startHeld(t, hypervisor.MigrateParams{PeerToPeer: true}, false)
	if err := h.j.Pause(); err != nil {
		t.Errorf("Pause: %v", err)
	}
	if st := h.w.host("a").state("vm"); st != "running" {
		t.Errorf("Pause of a non-live migration suspended the domain: %s", st)
	}
	if info, _ := h.j.Info(); !info.Paused {
		t.Errorf("non-live job not reported paused: %+v", info)
	}
	h.release()
	if r := h.o.wait(t); r.Err != nil || r.RunningOn != "b" {
		t.Fatalf("result %+v", r)
	}
}

func TestFakeStartPostCopy(t *testing.T) {
	plain := startHeld(t, live, false)
	if err := plain.j.StartPostCopy(); !errors.Is(err, hypervisor.ErrNotAllowed) {
		t.Errorf("StartPostCopy without Params.PostCopy: %v", err)
	}
	plain.release()
	if r := plain.o.wait(t); r.Err != nil || r.RunningOn != "b" {
		t.Fatalf("result %+v", r)
	}

	p := live
	p.PostCopy = true
	h := startHeld(t, p, false)
	d, o, j := h.d, h.o, h.j
	if err := j.StartPostCopy(); err != nil {
		t.Fatal(err)
	}
	if info, _ := j.Info(); !info.PostCopy || info.Paused || info.Phase != hypervisor.PhasePostcopy {
		t.Errorf("job %+v in post-copy", info)
	}
	if err := j.StartPostCopy(); err != nil {
		t.Errorf("second StartPostCopy: %v", err)
	}
	for name, f := range map[string]func() error{"Abort": j.Abort, "Pause": j.Pause} {
		if err := f(); !errors.Is(err, hypervisor.ErrNotAllowed) {
			t.Errorf("%s in post-copy: %v", name, err)
		}
	}
	h.release()
	if r := o.wait(t); r.Err != nil || r.RunningOn != "b" {
		t.Fatalf("result %+v", r)
	}
	if !hasStep(d, "postcopy", "requested") {
		t.Errorf("steps %+v", d.Steps())
	}
	if err := j.StartPostCopy(); !errors.Is(err, ErrNotActive) {
		t.Errorf("StartPostCopy after the end: %v", err)
	}
}

// The driver records a route but does not steer: the migration runs as
// without one.
func TestFakeRouteRecordedNotSteered(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	d := w.driver(t, nil)
	o := newCheckObs()
	startWith(t, d, live, []string{"ab", "bc"}, o)
	if r := o.wait(t); r.Err != nil || r.RunningOn != "b" {
		t.Fatalf("result %+v", r)
	}
	if !hasStep(d, "migrate", "route=ab,bc (not steered)") {
		t.Errorf("route not recorded: %+v", d.Steps())
	}
}
