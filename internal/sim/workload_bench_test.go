package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/sim"
)

// workloadFederation is a coastal site of 32 hosts running vms VMs, and
// two inland sites of 32 hosts each: coast–inland1 10 Gbit/s (5 ms),
// coast–inland2 1 Gbit/s over a tunnel (12 ms), inland1–inland2 1 Gbit/s.
func workloadFederation(vms int) *model.Federation {
	f := &model.Federation{Name: "workload"}
	for s, name := range []string{"coast", "inland1", "inland2"} {
		site := model.Site{Name: name}
		for fb := range 2 {
			fab := model.Fabric{Name: fmt.Sprintf("%s-f%d", name, fb)}
			for h := range 16 {
				fab.Hosts = append(fab.Hosts, model.Host{
					Name: fmt.Sprintf("%s-f%d-h%02d", name, fb, h), VCPU: 64, MemoryMiB: 256 << 10, DiskGiB: 4000,
					NICMbps: []float64{10000, 10000, 1000}[s],
				})
			}
			site.Fabrics = append(site.Fabrics, fab)
		}
		f.Sites = append(f.Sites, site)
	}
	f.Links = []model.Link{
		{Name: "c-i1", A: "coast", B: "inland1", BandwidthMbps: 10000, RTTMs: 5, Mode: model.LinkDedicated},
		{Name: "c-i2", A: "coast", B: "inland2", BandwidthMbps: 1000, RTTMs: 12, Mode: model.LinkDedicated, TunnelOverheadBytes: 82},
		{Name: "i1-i2", A: "inland1", B: "inland2", BandwidthMbps: 1000, RTTMs: 8, Mode: model.LinkShared, BackgroundMbps: 200},
	}
	for v := range vms {
		vm := model.VM{
			Name: fmt.Sprintf("vm%04d", v), Host: f.Sites[0].Fabrics[v%2].Hosts[(v/2)%16].Name,
			VCPU: 2, MemoryMiB: int64(1+v%8) << 10, Storage: model.StorageShared,
			DirtyRateMiBps: float64(v % 5 * 10), WorkingSetMiB: 256,
		}
		if v%7 == 0 {
			vm.Storage, vm.DiskGiB = model.StorageLocal, 10
		}
		f.VMs = append(f.VMs, vm)
	}
	return f
}

// evacuation is a minimal executor: it moves every VM off the coast, at
// most perHost migrations per source host at a time, spreading them over
// the inland hosts.
type evacuation struct {
	c       *simhv.Cluster
	ix      *model.Index
	perHost int
	queue   [][]int // per source host, VMs left to move
	next    int     // round-robin destination
	dests   []int
	done    int
	failed  int
}

func (ev *evacuation) startNext(src int) {
	for len(ev.queue[src]) > 0 {
		v := ev.queue[src][0]
		ev.queue[src] = ev.queue[src][1:]
		vm := &ev.ix.Fed.VMs[v]
		p := hypervisor.MigrateParams{Live: true, AutoConverge: true}
		if vm.CopiesDisk() {
			p.CopyStorage = hypervisor.CopyStorageAll
		}
		for range ev.dests {
			dst := ev.dests[ev.next%len(ev.dests)]
			ev.next++
			_, err := ev.c.Migrate(context.Background(), hypervisor.MigrateRequest{
				Domain: vm.Name, SourceHost: ev.ix.Host(src).Name, DestHost: ev.ix.Host(dst).Name, Params: p,
			}, doneFunc(func(r hypervisor.Result) {
				ev.done++
				if r.Err != nil {
					ev.failed++
				}
				ev.startNext(src)
			}))
			if err == nil {
				return
			}
		}
		ev.failed++
	}
}

type doneFunc func(hypervisor.Result)

func (f doneFunc) MigrationDone(r hypervisor.Result) { f(r) }

func runEvacuation(tb testing.TB, vms, perHost int) (*sim.Engine, *evacuation) {
	ix := model.NewIndex(workloadFederation(vms))
	e := sim.NewEngine(time.Date(2026, 3, 11, 14, 46, 0, 0, time.UTC))
	c, err := simhv.New(e, ix)
	if err != nil {
		tb.Fatal(err)
	}
	ev := &evacuation{c: c, ix: ix, perHost: perHost, queue: make([][]int, len(ix.Hosts))}
	for h := range ix.Hosts {
		if ix.HostSite(h) != 0 {
			ev.dests = append(ev.dests, h)
		}
	}
	for v, h := range ix.VMHost {
		ev.queue[h] = append(ev.queue[h], v)
	}
	for h := range ix.Hosts {
		for range perHost {
			ev.startNext(h)
		}
	}
	e.Run()
	if ev.done+ev.failed < vms {
		tb.Fatalf("evacuation: %d done, %d failed of %d", ev.done, ev.failed, vms)
	}
	return e, ev
}

func TestEvacuationWorkload(t *testing.T) {
	e, ev := runEvacuation(t, 512, 4)
	if ev.failed != 0 {
		t.Errorf("%d of %d migrations failed", ev.failed, ev.done)
	}
	t.Logf("512 VMs evacuated in %v of virtual time, %d events", e.Elapsed(), e.Events())
}

// BenchmarkMigrationWorkload evacuates 512 VMs (1–8 GiB, some with local
// disks) from a 32-host site over three links, 4 at a time per source
// host (up to 128 concurrent migrations), through simhv.Cluster.
func BenchmarkMigrationWorkload(b *testing.B) {
	b.ReportAllocs()
	var events uint64
	var virtual time.Duration
	start := time.Now()
	for range b.N {
		e, _ := runEvacuation(b, 512, 4)
		events += e.Events()
		virtual = e.Elapsed()
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(events)/secs, "events/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
	b.ReportMetric(float64(512*b.N)/secs, "migrations/s")
	b.ReportMetric(virtual.Seconds()/(secs/float64(b.N)), "speedup")
}
