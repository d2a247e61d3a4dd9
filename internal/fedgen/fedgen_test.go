package fedgen

import (
	"reflect"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/model"
)

func TestGenerateValid(t *testing.T) {
	cases := []Options{
		{},
		{Hosts: 1, VMs: 5},
		{Hosts: 2, VMs: 0, Seed: 3},
		{Sites: 3, Hosts: 30, VMs: 600, Seed: 1},
		{Sites: 40, Hosts: 100, VMs: 2000, Seed: 2, LocalStorage: -1, SharedLinks: -1, InServices: -1},
		{Hosts: 300, VMs: 10000, Seed: 4, LocalStorage: 1, SharedLinks: 1, InServices: 1},
		{Hosts: 4, VMs: 5000, Seed: 5}, // more VMs than fit at 1 GiB
	}
	for _, o := range cases {
		f := mustGenerate(t, o)
		if err := f.Validate(); err != nil {
			t.Fatalf("Generate(%+v) is invalid: %v", o, err)
		}
		d, _ := o.withDefaults()
		if o.Hosts != 4 && len(f.VMs) != d.VMs {
			t.Errorf("Generate(%+v): %d VMs, want %d", o, len(f.VMs), d.VMs)
		}
		if len(f.Sites) != d.Sites {
			t.Errorf("Generate(%+v): %d sites, want %d", o, len(f.Sites), d.Sites)
		}
		ix := model.NewIndex(f)
		if len(ix.Hosts) != d.Hosts {
			t.Errorf("Generate(%+v): %d hosts, want %d", o, len(ix.Hosts), d.Hosts)
		}
		for a := range f.Sites {
			for b := range f.Sites {
				if _, ok := ix.Route(a, b); !ok {
					t.Errorf("Generate(%+v): site %d cannot reach site %d", o, a, b)
				}
			}
		}
	}
}

func mustGenerate(t testing.TB, o Options) *model.Federation {
	t.Helper()
	f, err := Generate(o)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", o, err)
	}
	return f
}

func TestGenerateRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{Hosts: -1}, {VMs: -2}, {Sites: -3}, {MemoryFill: 1.5}, {MemoryFill: -0.1}} {
		if _, err := Generate(o); err == nil {
			t.Errorf("Generate(%+v) did not fail", o)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	o := Options{Hosts: 50, VMs: 800, Seed: 42}
	a, b := mustGenerate(t, o), mustGenerate(t, o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("equal options gave different federations")
	}
	o.Seed++
	if reflect.DeepEqual(a, mustGenerate(t, o)) {
		t.Fatal("different seeds gave equal federations")
	}
}

func TestGenerateRanges(t *testing.T) {
	f := mustGenerate(t, Options{Hosts: 200, VMs: 4000, Seed: 7})
	fabricsPerSite := 0
	var hostMem, vmMem float64
	for _, s := range f.Sites {
		fabricsPerSite = max(fabricsPerSite, len(s.Fabrics))
		for _, fb := range s.Fabrics {
			for _, h := range fb.Hosts {
				hostMem += float64(h.MemoryMiB)
				if h.VCPU < 32 || h.VCPU > 128 || h.MemoryMiB < 128*1024 || h.MemoryMiB > 1024*1024 ||
					(h.NICMbps != 10000 && h.NICMbps != 25000) {
					t.Errorf("host %+v out of range", h)
				}
			}
		}
	}
	if fabricsPerSite < 2 {
		t.Error("no site has several fabrics")
	}
	shared := 0
	for _, l := range f.Links {
		if l.BandwidthMbps < 1000 || l.BandwidthMbps > 100000 || l.RTTMs < 2 || l.RTTMs > 40 {
			t.Errorf("link %+v out of range", l)
		}
		if l.Mode == model.LinkShared {
			shared++
		}
	}
	if shared == 0 || len(f.Links) < len(f.Sites) {
		t.Errorf("%d links (%d shared) for %d sites", len(f.Links), shared, len(f.Sites))
	}
	var local, inSvc, aa, deps3 int
	for _, v := range f.VMs {
		if v.VCPU < 1 || v.VCPU > 16 || v.MemoryMiB < 1024 || v.MemoryMiB > 64*1024 || v.DirtyRateMiBps > 200 {
			t.Errorf("VM %+v out of range", v)
		}
		vmMem += float64(v.MemoryMiB)
		if v.CopiesDisk() {
			local++
		}
		if v.Service != "" {
			inSvc++
		}
		if v.AntiAffinity != "" {
			aa++
		}
	}
	if fill := vmMem / hostMem; fill < 0.3 || fill > 0.6 {
		t.Errorf("VMs use %.2f of the hosts' memory, want about 0.5", fill)
	}
	for _, s := range f.Services {
		if len(s.DependsOn) > 0 {
			deps3++
		}
	}
	if local == 0 || inSvc == 0 || aa == 0 || deps3 == 0 {
		t.Errorf("missing variety: %d local, %d in services, %d anti-affine, %d services with dependencies", local, inSvc, aa, deps3)
	}
}

func TestThreaten(t *testing.T) {
	f := mustGenerate(t, Options{Hosts: 120, Sites: 9, Seed: 1})
	sc := Threaten(f, ThreatOptions{Seed: 2})
	if err := sc.Validate(f); err != nil {
		t.Fatal(err)
	}
	if len(sc.Threats) != 3 {
		t.Errorf("%d threats, want 3", len(sc.Threats))
	}
	for _, th := range sc.Threats {
		if th.Deadline.D() < 10*time.Minute || th.Deadline.D() > 30*time.Minute {
			t.Errorf("deadline %v out of range", th.Deadline.D())
		}
	}
	if !reflect.DeepEqual(sc, Threaten(f, ThreatOptions{Seed: 2})) {
		t.Error("not deterministic")
	}
	one := mustGenerate(t, Options{Hosts: 1})
	if sc := Threaten(one, ThreatOptions{Fraction: 1}); len(sc.Threats) != 1 {
		t.Errorf("single site: %d threats, want 1", len(sc.Threats))
	}
	two := mustGenerate(t, Options{Hosts: 10, Sites: 2})
	if sc := Threaten(two, ThreatOptions{Fraction: 1}); len(sc.Threats) != 1 {
		t.Errorf("two sites, fraction 1: %d threats, want 1 (one site is always spared)", len(sc.Threats))
	}
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		mustGenerate(b, Options{Hosts: 1000, VMs: 100000, Seed: 1})
	}
}
