package libvirt_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/testbed"
)

// TestLiveSoak migrates one dirtying guest back and forth live, at a
// bandwidth cap that makes each migration last a few seconds, and counts
// how often the guest was dead after the switch-over (the driver's health
// check notices and restarts it). An experiment, not part of the suite:
// REFUGE_SOAK=N runs N migrations; REFUGE_SOAK_ARGS adds guest kernel
// arguments, REFUGE_SOAK_MACHINE sets the machine type. (pti=on, which
// would keep kernel mappings out of the global TLB, made the TCG guest too
// slow to finish one memory check in minutes.)
func TestLiveSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("REFUGE_SOAK"))
	if n <= 0 {
		t.Skip("experiment: set REFUGE_SOAK=N")
	}
	b := sharedBed(t)
	d := newDriver(t, b, nil)
	g := testbed.GuestSpec{Name: "soak", MemoryMiB: 256, CheckMiB: 64, DirtyMiBps: 20,
		KernelArgs: os.Getenv("REFUGE_SOAK_ARGS"), Machine: os.Getenv("REFUGE_SOAK_MACHINE")}
	startGuest(t, b.Sites[0], g)
	from, to := b.Sites[0], b.Sites[1]
	dead := 0
	for i := range n {
		off := to.ConsoleSize(g.Name)
		o := newObs()
		p := params(true)
		p.BandwidthBytes = 32 << 20
		if _, err := d.Migrate(context.Background(), hypervisor.MigrateRequest{Domain: g.Name, SourceHost: from.Name, DestHost: to.Name, Params: p}, o); err != nil {
			t.Fatal(err)
		}
		r := o.wait(t, 3*time.Minute)
		if r.Err != nil || r.RunningOn != to.Name {
			t.Fatalf("run %d: %v (running on %q)", i, r.Err, r.RunningOn)
		}
		recs := d.Records()
		rec := recs[len(recs)-1]
		if rec.Restarted {
			dead++
		}
		out := to.ConsoleSince(g.Name, off)
		t.Logf("run %d %s→%s: %.1f s, downtime %v, %d iterations, restarted %v %s", i, from.Name, to.Name,
			rec.Finished.Sub(rec.Started).Seconds(), rec.Downtime, rec.Rounds, rec.Restarted, testbed.Trouble(out))
		from, to = to, from
	}
	t.Logf("SOAK machine=%q args=%q: guest dead after %d of %d live migrations", g.Machine, g.KernelArgs, dead, n)
}
