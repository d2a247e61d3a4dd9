package planner

import (
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/model"
)

// fedBuilder assembles small federations for tests.
type fedBuilder struct {
	f model.Federation
}

func newFed() *fedBuilder { return &fedBuilder{f: model.Federation{Name: "test"}} }

// host returns a host with 64 vCPU, 256 GiB, 1000 GiB of disk and a
// 10 Gbit/s NIC, changed by opts.
func host(name string, opts ...func(*model.Host)) model.Host {
	h := model.Host{Name: name, VCPU: 64, MemoryMiB: 256 * 1024, DiskGiB: 1000, NICMbps: 10000}
	for _, o := range opts {
		o(&h)
	}
	return h
}

func memGiB(g int64) func(*model.Host) { return func(h *model.Host) { h.MemoryMiB = g * 1024 } }
func vcpus(n int) func(*model.Host)    { return func(h *model.Host) { h.VCPU = n } }
func diskGiB(g int64) func(*model.Host) {
	return func(h *model.Host) { h.DiskGiB = g }
}

// site adds a site with one fabric holding hosts.
func (b *fedBuilder) site(name string, hosts ...model.Host) *fedBuilder {
	b.f.Sites = append(b.f.Sites, model.Site{Name: name, Fabrics: []model.Fabric{{Name: name + "-f1", Hosts: hosts}}})
	return b
}

// link joins two sites (dedicated, 10 ms RTT).
func (b *fedBuilder) link(a, c string, mbps float64) *fedBuilder {
	b.f.Links = append(b.f.Links, model.Link{Name: a + "-" + c, A: a, B: c, BandwidthMbps: mbps, RTTMs: 10, Mode: model.LinkDedicated})
	return b
}

func (b *fedBuilder) service(name string, deps ...string) *fedBuilder {
	b.f.Services = append(b.f.Services, model.Service{Name: name, DependsOn: deps})
	return b
}

// vm adds a quiet 2 vCPU VM with shared storage, changed by opts.
func (b *fedBuilder) vm(name, on string, gib int64, opts ...func(*model.VM)) *fedBuilder {
	v := model.VM{Name: name, Host: on, VCPU: 2, MemoryMiB: gib * 1024, DiskGiB: 20, Storage: model.StorageShared, DirtyRateMiBps: 1}
	for _, o := range opts {
		o(&v)
	}
	b.f.VMs = append(b.f.VMs, v)
	return b
}

func prio(p int) func(*model.VM)      { return func(v *model.VM) { v.Priority = p } }
func svc(s string) func(*model.VM)    { return func(v *model.VM) { v.Service = s } }
func aa(g string) func(*model.VM)     { return func(v *model.VM) { v.AntiAffinity = g } }
func vmCPU(n int) func(*model.VM)     { return func(v *model.VM) { v.VCPU = n } }
func dirty(d float64) func(*model.VM) { return func(v *model.VM) { v.DirtyRateMiBps = d } }
func localDisk(g int64) func(*model.VM) {
	return func(v *model.VM) { v.Storage, v.DiskGiB = model.StorageLocal, g }
}

// index validates the federation and indexes it.
func (b *fedBuilder) index(t testing.TB) *model.Index {
	t.Helper()
	f := b.f
	if err := f.Validate(); err != nil {
		t.Fatalf("test federation is invalid: %v", err)
	}
	return model.NewIndex(&f)
}

// threaten returns deadlines for the named sites.
func threaten(t testing.TB, ix *model.Index, d time.Duration, sites ...string) map[int]time.Duration {
	t.Helper()
	out := map[int]time.Duration{}
	for _, s := range sites {
		si, ok := ix.SiteByName[s]
		if !ok {
			t.Fatalf("no site %q", s)
		}
		out[si] = d
	}
	return out
}

// compute runs Compute and fails the test on error.
func compute(t testing.TB, in Input) *Plan {
	t.Helper()
	p, err := Compute(in)
	if err != nil {
		t.Fatalf("Compute: %v", err)
	}
	return p
}

// moved returns the names of the moved VMs in plan order.
func moved(p *Plan) []string {
	var out []string
	for _, m := range p.Moves {
		out = append(out, m.Name)
	}
	return out
}

// unsavedCode returns the code of the named unsaved VM, or "".
func unsavedCode(p *Plan, name string) string {
	for _, u := range p.Unsaved {
		if u.Name == name {
			return u.Code
		}
	}
	return ""
}

// moveOf returns the move of the named VM, or nil.
func moveOf(p *Plan, name string) *Move {
	for i := range p.Moves {
		if p.Moves[i].Name == name {
			return &p.Moves[i]
		}
	}
	return nil
}
