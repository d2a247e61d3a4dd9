package libvirt

import (
	"strings"
	"sync"
	"testing"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/refuge-project/refuge/internal/hypervisor"
)

// switchObs is a checkObs that also records SwitchedOver, with where the
// domain was at that moment.
type switchObs struct {
	*checkObs
	w  *world
	mu sync.Mutex
	// seen: one entry per SwitchedOver, the domain's state on a and b.
	seen []string
	// doneFirst: MigrationDone came before SwitchedOver.
	doneFirst bool
}

func (o *switchObs) SwitchedOver() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.doneFirst = o.doneFirst || o.calls.Load() > 0
	o.seen = append(o.seen, o.w.host("a").state("vm")+","+o.w.host("b").state("vm"))
}

func switchSteps(d *Driver) []string {
	var out []string
	for _, s := range d.Steps() {
		if s.Kind == "switchover" {
			out = append(out, s.Detail)
		}
	}
	return out
}

func TestFakeSwitchedOverOnResumedEvent(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	d := w.driver(t, nil)
	o := &switchObs{checkObs: newCheckObs(), w: w}
	migrate(t, d, "vm", "a", "b", o.checkObs) // a plain Observer
	if r := o.wait(t); r.Err != nil {
		t.Fatal(r.Err)
	}
	if len(o.seen) != 0 || len(switchSteps(d)) != 0 {
		t.Fatalf("a plain Observer got switch-overs: %v %v", o.seen, switchSteps(d))
	}

	o = &switchObs{checkObs: newCheckObs(), w: w}
	if _, err := d.Migrate(t.Context(), hypervisor.MigrateRequest{Domain: "vm", SourceHost: "b", DestHost: "a",
		Params: hypervisor.MigrateParams{Live: true, PeerToPeer: true}}, o); err != nil {
		t.Fatal(err)
	}
	o.returned.Store(true)
	if r := o.wait(t); r.Err != nil || r.RunningOn != "a" {
		t.Fatalf("result %+v", r)
	}
	_ = d.Close()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) != 1 || o.doneFirst {
		t.Fatalf("SwitchedOver calls %v (after MigrationDone: %v), want one before it", o.seen, o.doneFirst)
	}
	if o.seen[0] != "running,absent" {
		t.Errorf("at the switch-over a,b were %s, want the domain running at the destination a", o.seen[0])
	}
	if st := switchSteps(d); len(st) != 1 || !strings.Contains(st[0], "RESUMED_MIGRATED") {
		t.Errorf("switchover steps %q, want one from the libvirt event", st)
	}
}

func TestFakeSwitchedOverWithoutEvent(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	w.host("a").perform = func(src *fakeHost, dom string, dst *fakeHost, _ lv.DomainMigrateFlags) error {
		w.mu.Lock() // moves the domain without a lifecycle event
		defer w.mu.Unlock()
		dst.doms[dom] = src.doms[dom]
		delete(src.doms, dom)
		return nil
	}
	d := w.driver(t, nil)
	o := &switchObs{checkObs: newCheckObs(), w: w}
	if _, err := d.Migrate(t.Context(), hypervisor.MigrateRequest{Domain: "vm", SourceHost: "a", DestHost: "b"}, o); err != nil {
		t.Fatal(err)
	}
	o.returned.Store(true)
	o.wait(t)
	_ = d.Close()
	if len(o.seen) != 1 || o.doneFirst {
		t.Fatalf("SwitchedOver calls %v (after MigrationDone: %v), want one before it", o.seen, o.doneFirst)
	}
	if o.seen[0] != "absent,running" {
		t.Errorf("at the switch-over a,b were %s, want the domain running at the destination b", o.seen[0])
	}
	if st := switchSteps(d); len(st) != 1 || !strings.Contains(st[0], "no RESUMED event") {
		t.Errorf("switchover steps %q, want the fallback after verification", st)
	}
}

func TestFakeNoSwitchOverWhenTheMigrationFails(t *testing.T) {
	w := newWorld("a", "b")
	w.host("a").add("vm", 128)
	w.host("a").perform = func(*fakeHost, string, *fakeHost, lv.DomainMigrateFlags) error {
		return lv.Error{Code: uint32(lv.ErrOperationFailed), Message: "migration failed"}
	}
	d := w.driver(t, nil)
	o := &switchObs{checkObs: newCheckObs(), w: w}
	if _, err := d.Migrate(t.Context(), hypervisor.MigrateRequest{Domain: "vm", SourceHost: "a", DestHost: "b"}, o); err != nil {
		t.Fatal(err)
	}
	o.returned.Store(true)
	if r := o.wait(t); r.Err == nil || r.RunningOn != "a" {
		t.Fatalf("result %+v", r)
	}
	_ = d.Close()
	if len(o.seen) != 0 {
		t.Errorf("SwitchedOver after a failed migration: %v", o.seen)
	}
}
