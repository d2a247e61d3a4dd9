package simhv

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/sim"
)

var epoch = time.Date(2026, 3, 11, 14, 46, 0, 0, time.UTC)

// obsFunc adapts a function to hypervisor.Observer.
type obsFunc func(hypervisor.Result)

func (f obsFunc) MigrationDone(r hypervisor.Result) { f(r) }

// recorder collects results and counts calls.
type recorder struct {
	results []hypervisor.Result
}

func (r *recorder) MigrationDone(res hypervisor.Result) { r.results = append(r.results, res) }

// one returns the only result, failing the test if there is not exactly one.
func (r *recorder) one(t *testing.T) hypervisor.Result {
	t.Helper()
	if len(r.results) != 1 {
		t.Fatalf("MigrationDone called %d times, want 1", len(r.results))
	}
	return r.results[0]
}

func parseFed(t testing.TB, doc string) *model.Index {
	t.Helper()
	f, err := model.ParseFederation([]byte(doc))
	if err != nil {
		t.Fatalf("federation: %v", err)
	}
	return model.NewIndex(f)
}

func newCluster(t testing.TB, doc string) *Cluster {
	t.Helper()
	c, err := New(sim.NewEngine(epoch), parseFed(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// req builds a live migration request of vm from its current host.
func req(c *Cluster, vm, dst string) hypervisor.MigrateRequest {
	return hypervisor.MigrateRequest{
		Domain:     vm,
		SourceHost: c.ix.Host(c.placement[c.ix.VMByName[vm]]).Name,
		DestHost:   dst,
		Params:     hypervisor.MigrateParams{Live: true, PeerToPeer: true},
	}
}

// start starts a migration, failing the test on error.
func start(t *testing.T, c *Cluster, r hypervisor.MigrateRequest, obs hypervisor.Observer) hypervisor.Job {
	t.Helper()
	j, err := c.Migrate(context.Background(), r, obs)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return j
}

// pathRate is the rate a lone migration gets between two hosts.
func pathRate(c *Cluster, src, dst string, capBps float64) (float64, time.Duration) {
	p, _ := netpath.Between(c.ix, c.ix.HostByName[src], c.ix.HostByName[dst])
	rate := netpath.FlowCap(capBps, p.RTT, 1)
	for _, r := range p.Resources {
		rate = math.Min(rate, netpath.Capacity(c.ix, r, c.linkMbps))
	}
	return rate, p.RTT
}

func within(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

// twoSites is a small federation: site a (hosts a1, a2 on 1 GbE) and site b
// (hosts b1, b2), joined by a 1 Gbit/s link, plus a site c reachable from
// nowhere. Hosts have 8 GiB of memory.
const twoSites = `
name: two
sites:
  - name: a
    lat: 34.3
    lon: 134.0
    fabrics:
      - name: fa
        hosts:
          - {name: a1, vcpu: 8, memory_mib: 8192, disk_gib: 500, nic_mbps: 1000}
          - {name: a2, vcpu: 8, memory_mib: 8192, disk_gib: 500, nic_mbps: 1000}
  - name: b
    lat: 35.0
    lon: 135.7
    fabrics:
      - name: fb
        hosts:
          - {name: b1, vcpu: 8, memory_mib: 8192, disk_gib: 500, nic_mbps: 1000}
          - {name: b2, vcpu: 8, memory_mib: 3072, disk_gib: 500, nic_mbps: 1000}
  - name: c
    lat: 36.0
    lon: 138.0
    fabrics:
      - name: fc
        hosts:
          - {name: c1, vcpu: 8, memory_mib: 8192, disk_gib: 500, nic_mbps: 1000}
links:
  - {name: ab, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: web, host: a1, vcpu: 2, memory_mib: 1024, dirty_rate_mibps: 0}
  - {name: db, host: a1, vcpu: 2, memory_mib: 2048, dirty_rate_mibps: 10, working_set_mib: 256}
  - {name: hot, host: a2, vcpu: 2, memory_mib: 1024, dirty_rate_mibps: 200}
  - {name: local, host: a2, vcpu: 2, memory_mib: 1024, disk_gib: 10, storage: local}
  - {name: app, host: a2, vcpu: 2, memory_mib: 2048}
  - {name: web2, host: a2, vcpu: 2, memory_mib: 1024}
  - {name: far, host: c1, vcpu: 2, memory_mib: 1024}
`
