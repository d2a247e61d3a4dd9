package simhv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/sim"
)

// genFederation draws a small valid federation: 1–3 sites of 1–3 hosts,
// a chain of links (some missing), and VMs packed onto hosts.
func genFederation(t *rapid.T) *model.Federation {
	f := &model.Federation{Name: "gen"}
	nsites := rapid.IntRange(1, 3).Draw(t, "sites")
	type slot struct {
		name string
		free int64
	}
	var hosts []*slot
	for s := range nsites {
		site := model.Site{Name: fmt.Sprintf("s%d", s), Fabrics: []model.Fabric{{Name: fmt.Sprintf("f%d", s)}}}
		for h := range rapid.IntRange(1, 3).Draw(t, "hosts") {
			mem := int64(rapid.IntRange(2, 8).Draw(t, "host GiB")) * 1024
			name := fmt.Sprintf("s%dh%d", s, h)
			site.Fabrics[0].Hosts = append(site.Fabrics[0].Hosts, model.Host{
				Name: name, VCPU: 16, MemoryMiB: mem, DiskGiB: 1000,
				NICMbps: rapid.SampledFrom([]float64{1000, 10000}).Draw(t, "nic"),
			})
			hosts = append(hosts, &slot{name, mem})
		}
		f.Sites = append(f.Sites, site)
		if s > 0 && rapid.IntRange(0, 4).Draw(t, "link?") > 0 {
			f.Links = append(f.Links, model.Link{
				Name: fmt.Sprintf("l%d", s), A: f.Sites[s-1].Name, B: site.Name,
				BandwidthMbps: rapid.SampledFrom([]float64{100, 1000}).Draw(t, "link mbps"),
				RTTMs:         rapid.Float64Range(0, 20).Draw(t, "rtt"), Mode: model.LinkDedicated,
				TunnelOverheadBytes: rapid.SampledFrom([]int{0, 82}).Draw(t, "overhead"),
			})
		}
	}
	for v := range rapid.IntRange(1, 12).Draw(t, "vms") {
		mem := int64(rapid.IntRange(1, 4).Draw(t, "vm 512MiB")) * 512
		h := hosts[rapid.IntRange(0, len(hosts)-1).Draw(t, "vm host")]
		if h.free < mem {
			continue
		}
		h.free -= mem
		vm := model.VM{
			Name: fmt.Sprintf("vm%d", v), Host: h.name, VCPU: 1, MemoryMiB: mem, Storage: model.StorageShared,
			DirtyRateMiBps: rapid.SampledFrom([]float64{0, 10, 50, 300}).Draw(t, "dirty"),
		}
		if rapid.IntRange(0, 3).Draw(t, "local?") == 0 {
			vm.Storage, vm.DiskGiB = model.StorageLocal, int64(rapid.IntRange(1, 4).Draw(t, "disk"))
		}
		f.VMs = append(f.VMs, vm)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("generated an invalid federation: %v", err)
	}
	return f
}

type trackedJob struct {
	vm       int
	src, dst int
	job      hypervisor.Job
	calls    int
	result   hypervisor.Result
}

// TestInvariantsUnderRandomFaults drives random migrations, aborts, speed
// changes, pauses, switches to post-copy, host failures and recoveries and
// link changes, and checks after every event that each VM runs on exactly
// one up host or is lost because its host failed or its post-copy
// migration did — never both, never neither — that memory is never
// overcommitted, that every observer is called exactly once with a
// consistent result, and that the bytes migrations report are the bytes
// their NICs carried.
func TestInvariantsUnderRandomFaults(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ix := model.NewIndex(genFederation(t))
		e := sim.NewEngine(epoch)
		c, err := New(e, ix)
		if err != nil {
			t.Fatal(err)
		}
		nh, nv, nl := len(ix.Hosts), len(ix.Fed.VMs), len(ix.Fed.Links)
		var jobs []*trackedJob
		known := []error{
			hypervisor.ErrHostDown, hypervisor.ErrDomainLost, hypervisor.ErrJobAlreadyActive,
			hypervisor.ErrDestinationFull, hypervisor.ErrLinkDown, ErrSameHost, ErrUnsafe,
		}
		for range rapid.IntRange(1, 40).Draw(t, "actions") {
			at := time.Duration(rapid.IntRange(0, 240).Draw(t, "at")) * time.Second
			switch rapid.IntRange(0, 11).Draw(t, "kind") {
			case 0, 1, 2, 3, 4:
				v := rapid.IntRange(0, nv-1).Draw(t, "vm")
				dst := rapid.IntRange(0, nh-1).Draw(t, "dst")
				p := hypervisor.MigrateParams{
					Live:         rapid.IntRange(0, 4).Draw(t, "live") > 0,
					AutoConverge: rapid.Bool().Draw(t, "ac"),
					PostCopy:     rapid.Bool().Draw(t, "pc"),
					CopyStorage:  rapid.SampledFrom([]hypervisor.CopyStorage{hypervisor.CopyStorageNone, hypervisor.CopyStorageAll}).Draw(t, "copy"),
				}
				e.Schedule(at, func() {
					src := c.Placement()[v]
					srcName := "nowhere"
					if src >= 0 {
						srcName = ix.Host(src).Name
					}
					tj := &trackedJob{vm: v, src: src, dst: dst}
					r := hypervisor.MigrateRequest{Domain: ix.Fed.VMs[v].Name, SourceHost: srcName, DestHost: ix.Host(dst).Name, Params: p}
					j, err := c.Migrate(context.Background(), r, obsFunc(func(res hypervisor.Result) {
						tj.calls++
						tj.result = res
					}))
					if err != nil {
						if src >= 0 && !isAny(err, known) {
							t.Fatalf("Migrate %+v: unexpected error %v", r, err)
						}
						return
					}
					tj.job = j
					jobs = append(jobs, tj)
				})
			case 5:
				k := rapid.IntRange(0, 39).Draw(t, "job")
				e.Schedule(at, func() {
					if k < len(jobs) {
						if err := jobs[k].job.Abort(); err != nil && !isAny(err, notNow) {
							t.Fatalf("Abort: %v", err)
						}
					}
				})
			case 6:
				k := rapid.IntRange(0, 39).Draw(t, "job")
				bps := rapid.SampledFrom([]float64{0, 1e6, 50e6}).Draw(t, "bps")
				e.Schedule(at, func() {
					if k < len(jobs) {
						if err := jobs[k].job.SetMaxSpeed(bps); err != nil && !errors.Is(err, ErrJobNotActive) {
							t.Fatalf("SetMaxSpeed: %v", err)
						}
					}
				})
			case 10, 11:
				k := rapid.IntRange(0, 39).Draw(t, "job")
				pause := rapid.Bool().Draw(t, "pause")
				e.Schedule(at, func() {
					if k >= len(jobs) {
						return
					}
					switchMode := jobs[k].job.StartPostCopy
					if pause {
						switchMode = jobs[k].job.Pause
					}
					if err := switchMode(); err != nil && !isAny(err, notNow) {
						t.Fatalf("Pause or StartPostCopy: %v", err)
					}
				})
			case 7:
				h := rapid.IntRange(0, nh-1).Draw(t, "fail host")
				fault := c.FailHost
				if rapid.IntRange(0, 2).Draw(t, "recover?") == 0 {
					fault = c.RecoverHost
				}
				e.Schedule(at, func() {
					if err := fault(h); err != nil {
						t.Fatal(err)
					}
				})
			default:
				if nl == 0 {
					continue
				}
				l := rapid.IntRange(0, nl-1).Draw(t, "link")
				mbps := rapid.SampledFrom([]float64{0, 10, 1000}).Draw(t, "mbps")
				e.Schedule(at, func() {
					if err := c.SetLinkMbps(l, mbps); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
		// Restore links eventually so that stalled migrations resolve
		// either way.
		for l := range nl {
			e.Schedule(300*time.Second, func() { _ = c.SetLinkMbps(l, 1000) })
		}
		prev := c.Placement()
		for e.Step() {
			if err := c.Check(); err != nil {
				t.Fatalf("at %v: %v", e.Elapsed(), err)
			}
			cur := c.Placement()
			for v := range nv {
				if cur[v] == prev[v] {
					continue
				}
				switch {
				case prev[v] < 0:
					t.Fatalf("at %v: lost VM %d came back on host %d", e.Elapsed(), v, cur[v])
				case cur[v] < 0:
					if c.HostUp(prev[v]) && !lostInPostCopy(jobs, v) {
						t.Fatalf("at %v: VM %d lost while its host %d is up", e.Elapsed(), v, prev[v])
					}
				default:
					if !movedBy(jobs, v, prev[v], cur[v]) {
						t.Fatalf("at %v: VM %d moved from %d to %d without a completed migration", e.Elapsed(), v, prev[v], cur[v])
					}
				}
			}
			prev = cur
		}
		if c.Running() != 0 {
			t.Fatalf("%d migrations still running after the last event", c.Running())
		}
		sentFrom := make([]float64, nh)
		for _, j := range jobs {
			if j.calls != 1 {
				t.Fatalf("observer of VM %d's migration called %d times", j.vm, j.calls)
			}
			r := j.result
			switch {
			case r.Err == nil:
				if r.RunningOn != r.Dest {
					t.Fatalf("successful migration running on %q, dest %q", r.RunningOn, r.Dest)
				}
			case errors.Is(r.Err, hypervisor.ErrDomainLost):
				if r.RunningOn != "" {
					t.Fatalf("lost domain running on %q", r.RunningOn)
				}
			default:
				if r.RunningOn != r.Source {
					t.Fatalf("failed migration (%v) running on %q, source %q", r.Err, r.RunningOn, r.Source)
				}
			}
			if r.Finished.Before(r.Started) {
				t.Fatalf("finished before it started: %+v", r)
			}
			sentFrom[j.src] += float64(r.Bytes)
		}
		for h := range nh {
			carried := c.Carried(netpath.Resource{Kind: netpath.HostOut, ID: h})
			if math.Abs(carried-sentFrom[h]) > 1e-9*carried+float64(len(jobs)) {
				t.Fatalf("host %d NIC carried %.0f bytes, its migrations report %.0f", h, carried, sentFrom[h])
			}
		}
	})
}

// notNow are the errors of job methods called in the wrong state.
var notNow = []error{ErrJobNotActive, hypervisor.ErrNotAllowed}

// lostInPostCopy reports whether VM v was lost by a migration in post-copy.
func lostInPostCopy(jobs []*trackedJob, v int) bool {
	for _, j := range jobs {
		if info, _ := j.job.Info(); j.vm == v && info.PostCopy && info.Type == hypervisor.JobFailed {
			return true
		}
	}
	return false
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// movedBy reports whether a completed migration took VM v from src to dst.
func movedBy(jobs []*trackedJob, v, src, dst int) bool {
	for _, j := range jobs {
		if j.vm != v || j.src != src || j.dst != dst {
			continue
		}
		if info, _ := j.job.Info(); info.Type == hypervisor.JobCompleted {
			return true
		}
	}
	return false
}
