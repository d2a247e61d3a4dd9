package simhv

import (
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/precopy"
)

// Seed 000 (section 4, table 3) migrated a Moodle VM with 2 GB of memory
// and a 20 GB disk on shared Sheepdog storage over 1 GbE: 25.1 s between
// two nodes of one fabric, 26.2 s between the fabrics of two organizations
// joined by EtherIP inside IPsec. docs/calibration.md derives the model.

// seedIntra is one fabric of two nodes.
const seedIntra = `
name: seed000-intra
sites:
  - name: org-a
    lat: 34.3
    lon: 134.0
    fabrics:
      - name: fabric-a
        hosts:
          - {name: node1, vcpu: 4, memory_mib: 16384, disk_gib: 250, nic_mbps: 1000}
          - {name: node2, vcpu: 4, memory_mib: 16384, disk_gib: 250, nic_mbps: 1000}
vms:
  - name: moodle
    host: node1
    vcpu: 2
    memory_mib: 2048
    disk_gib: 20
    storage: shared
    dirty_rate_mibps: 30
    working_set_mib: 256
`

// seedInter is two organizations of one node each, joined by a 1 Gbit/s
// L2VPN (EtherIP in IPsec ESP: 82 bytes per packet) with a 4 ms RTT.
const seedInter = `
name: seed000-inter
sites:
  - name: org-a
    lat: 34.3
    lon: 134.0
    fabrics:
      - name: fabric-a
        hosts:
          - {name: node1, vcpu: 4, memory_mib: 16384, disk_gib: 250, nic_mbps: 1000}
  - name: org-b
    lat: 34.1
    lon: 134.6
    fabrics:
      - name: fabric-b
        hosts:
          - {name: node5, vcpu: 4, memory_mib: 16384, disk_gib: 250, nic_mbps: 1000}
links:
  - {name: l2vpn, a: org-a, b: org-b, bandwidth_mbps: 1000, rtt_ms: 4, tunnel_overhead_bytes: 82}
vms:
  - name: moodle
    host: node1
    vcpu: 2
    memory_mib: 2048
    disk_gib: 20
    storage: shared
    dirty_rate_mibps: 30
    working_set_mib: 256
`

func TestCalibrationSeed000(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string
		dst      string
		measured time.Duration
	}{
		{"intra-fabric node1→node2", seedIntra, "node2", 25100 * time.Millisecond},
		{"inter-fabric node1→node5", seedInter, "node5", 26200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, tc.doc)
			var rec recorder
			start(t, c, req(c, "moodle", tc.dst), &rec)
			c.Engine().Run()
			r := rec.one(t)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			got := r.Finished.Sub(r.Started)
			if !within(got.Seconds(), tc.measured.Seconds(), 0.10) {
				t.Errorf("simulated %v, measured %v: off by more than 10%%", got, tc.measured)
			}
			rate, rtt := pathRate(c, "node1", tc.dst, 0)
			vm := &c.ix.Fed.VMs[0]
			est := precopy.Solo(precopy.Guest{
				MemoryBytes: vm.MemoryBytes(),
				DirtyRate:   vm.DirtyRateMiBps * (1 << 20),
				WorkingSet:  vm.WorkingSetMiB * (1 << 20),
			}, precopy.Config{MaxDowntime: DefaultMaxDowntime}, rate, rtt)
			if !within(got.Seconds(), est.Total.Seconds(), 0.01) {
				t.Errorf("simulated %v, precopy.Solo %v: off by more than 1%%", got, est.Total)
			}
			if r.Rounds != est.Rounds || !within(float64(r.Bytes), est.Bytes, 0.001) {
				t.Errorf("rounds %d, bytes %d; Solo: %d, %.0f", r.Rounds, r.Bytes, est.Rounds, est.Bytes)
			}
			if !within(r.Downtime.Seconds(), est.Downtime.Seconds(), 0.01) || r.Downtime > DefaultMaxDowntime+precopy.SwitchoverOverhead {
				t.Errorf("downtime %v, Solo %v", r.Downtime, est.Downtime)
			}
			if r.RunningOn != tc.dst || c.Placement()[0] != c.ix.HostByName[tc.dst] {
				t.Errorf("running on %q, placement %v", r.RunningOn, c.Placement())
			}
			t.Logf("%s: simulated %.2f s (measured %.1f s, %+.1f%%), Solo %.2f s, %d rounds, %.0f MiB sent, downtime %v, rate %.1f Mbit/s",
				tc.name, got.Seconds(), tc.measured.Seconds(), 100*(got.Seconds()/tc.measured.Seconds()-1),
				est.Total.Seconds(), r.Rounds, float64(r.Bytes)/(1<<20), r.Downtime, rate*8/1e6)
		})
	}
}

// TestJobInfoDuringSeedMigration follows the intra-fabric migration
// through its phases.
func TestJobInfoDuringSeedMigration(t *testing.T) {
	c := newCluster(t, seedIntra)
	var rec recorder
	j := start(t, c, req(c, "moodle", "node2"), &rec)
	e := c.Engine()
	type probe struct {
		at    time.Duration
		phase hypervisor.Phase
	}
	for _, p := range []probe{{time.Second, hypervisor.PhaseSetup}, {10 * time.Second, hypervisor.PhasePrecopy}} {
		e.RunUntil(p.at)
		info, err := j.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Phase != p.phase || info.Type != hypervisor.JobUnbounded {
			t.Errorf("at %v: phase %s type %s, want %s", p.at, info.Phase, info.Type, p.phase)
		}
		if info.Elapsed != p.at || info.MemTotal != 2<<30 || info.DataTotal != info.MemTotal {
			t.Errorf("at %v: %+v", p.at, info)
		}
		if p.phase == hypervisor.PhasePrecopy {
			wantDone := info.MemBytesPerSec * (p.at - precopy.Setup(200*time.Microsecond)).Seconds()
			if !within(float64(info.MemProcessed), wantDone, 1e-6) || info.MemIteration != 1 ||
				info.MemProcessed+info.MemRemaining != info.MemTotal || info.MemDirtyRate != 30<<20 {
				t.Errorf("at %v: processed %d (want %.0f), %+v", p.at, info.MemProcessed, wantDone, info)
			}
			doms, err := c.ListDomains(t.Context(), "node1")
			if err != nil || len(doms) != 1 || doms[0].State != hypervisor.StateRunning {
				t.Errorf("ListDomains during pre-copy: %v, %v", doms, err)
			}
		}
	}
	e.Run()
	r := rec.one(t)
	info, _ := j.Info()
	if info.Type != hypervisor.JobCompleted || info.Phase != hypervisor.PhaseDone || info.Downtime != r.Downtime ||
		info.DataProcessed != r.Bytes || info.MemIteration != r.Rounds+1 {
		t.Errorf("final info %+v, result %+v", info, r)
	}
}
