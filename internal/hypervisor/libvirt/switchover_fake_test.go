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
	o.checkOne(t, d, "running,absent", "RESUMED_MIGRATED")
}

// checkOne checks, once the driver is closed, that SwitchedOver came
// once, before MigrationDone, with the domain's states on a and b as
// want, and that the switchover step says how.
func (o *switchObs) checkOne(t *testing.T, d *Driver, want, how string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) != 1 || o.doneFirst {
		t.Fatalf("SwitchedOver calls %v (after MigrationDone: %v), want one before it", o.seen, o.doneFirst)
	}
	if o.seen[0] != want {
		t.Errorf("at the switch-over a,b were %s, want %s (running at the destination)", o.seen[0], want)
	}
	if st := switchSteps(d); len(st) != 1 || !strings.Contains(st[0], how) {
		t.Errorf("switchover steps %q, want one saying %q", st, how)
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
	o.checkOne(t, d, "absent,running", "no RESUMED event")
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
