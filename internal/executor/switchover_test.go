package executor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/sim"
)

// earlyDriver is a fakeDriver whose migrations report the switch-over
// (hypervisor.SwitchoverObserver) before they end, also the ones that
// then fail back to the source.
type earlyDriver struct{ *fakeDriver }

type earlyObs struct{ hypervisor.Observer }

func (o earlyObs) MigrationDone(r hypervisor.Result) {
	o.Observer.(hypervisor.SwitchoverObserver).SwitchedOver()
	o.Observer.MigrationDone(r)
}

func (d earlyDriver) Migrate(ctx context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	return d.fakeDriver.Migrate(ctx, req, earlyObs{obs})
}

// switchLog records each Switchover with the executor's view of the VM then.
type switchLog struct {
	ex    *Executor
	calls []string
}

func (s *switchLog) Switchover(_ context.Context, vm, service, from, to string) error {
	st := "?"
	for _, r := range s.ex.Report().VMs {
		if r.Name == vm {
			st = string(r.Status)
		}
	}
	s.calls = append(s.calls, fmt.Sprintf("%s/%s:%s→%s (%s)", service, vm, from, to, st))
	return nil
}

// TestSwitcherAtTheDriversSwitchover: with a driver that reports the
// switch-over, the Switcher is called then (the migration still running),
// once; a migration that fails after its switch-over switches the service
// back to the source.
func TestSwitcherAtTheDriversSwitchover(t *testing.T) {
	ix := testFederationMbps(t, 4, 4096, 400000)
	ix.Fed.Services = []model.Service{{Name: "web"}}
	ix.Fed.VMs[0].Service = "web"
	ix = model.NewIndex(ix.Fed)
	eng := sim.NewEngine(epoch)
	fd := newFakeDriver(eng, ix, 10*time.Second)
	fd.failFirst["vm00"] = 1
	sw := &switchLog{}
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: earlyDriver{fd}, Clock: eng, Start: epoch, Switcher: sw})
	if err != nil {
		t.Fatal(err)
	}
	sw.ex = ex
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	dests := fd.destCalls["vm00"]
	if len(dests) != 2 {
		t.Fatalf("vm00 migrations to %v, want a failed one and its retry", dests)
	}
	site := func(host string) string { return ix.Fed.Sites[ix.HostSite(ix.HostByName[host])].Name }
	want := []string{
		fmt.Sprintf("web/vm00:a→%s (running)", site(dests[0])),
		fmt.Sprintf("web/vm00:%s→a (running)", site(dests[0])), // back; the retry has already started
		fmt.Sprintf("web/vm00:a→%s (running)", site(dests[1])),
	}
	if fmt.Sprint(sw.calls) != fmt.Sprint(want) {
		t.Errorf("switchovers %q, want %q", sw.calls, want)
	}
}
