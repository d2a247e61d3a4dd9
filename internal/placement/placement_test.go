package placement

import (
	"errors"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// hosts returns n hosts of 4 cores and 8 GiB.
func hosts(n int) []Host {
	out := make([]Host, n)
	for i := range out {
		out[i] = Host{Name: "h" + string(rune('a'+i%26)), VCPU: 4, MemoryMiB: 8192}
	}
	return out
}

func mustState(t *testing.T, cfg Config, hs []Host, vms []VM) *State {
	t.Helper()
	s, err := NewState(cfg, hs, vms)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPolicy(t *testing.T, name string, o Options) Policy {
	t.Helper()
	p, err := New(name, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var small = Request{Name: "r", VCPU: 1, MemoryMiB: 1024, Load: 0.5}

func TestBaselines(t *testing.T) {
	// h0: 6 GiB used, load 3; h1: empty; h2: 2 GiB used, load 0.5; h3: 7 GiB, load 1.
	vms := []VM{
		{Name: "a", VCPU: 2, MemoryMiB: 6144, Load: 2, Host: 0}, {Name: "b", VCPU: 1, MemoryMiB: 1, Load: 1, Host: 0},
		{Name: "c", VCPU: 1, MemoryMiB: 2048, Load: 0.5, Host: 2},
		{Name: "d", VCPU: 1, MemoryMiB: 7168, Load: 1, Host: 3},
	}
	for _, tc := range []struct {
		policy string
		want   []int // hosts for four successive small requests
	}{
		{FirstFit, []int{0, 1, 1, 1}}, // h0 has 2047 MiB free: one fits, then h1
		{NextFit, []int{0, 1, 1, 1}},
		{BestFit, []int{3, 0, 2, 2}}, // least free memory first
		{LeastLoaded, []int{1, 1, 2, 1}},
	} {
		s := mustState(t, Config{VCPUOvercommit: 4}, hosts(4), vms)
		p := mustPolicy(t, tc.policy, Options{})
		var got []int
		for range tc.want {
			d, _, err := s.Place(p, small)
			if err != nil {
				t.Fatalf("%s: %v", tc.policy, err)
			}
			got = append(got, d.Host)
		}
		if !equal(got, tc.want) {
			t.Errorf("%s chose %v, want %v", tc.policy, got, tc.want)
		}
	}
}

func TestNextFitContinues(t *testing.T) {
	s := mustState(t, Config{}, hosts(3), nil)
	p := mustPolicy(t, NextFit, Options{})
	big := Request{VCPU: 1, MemoryMiB: 5000}
	var got []int
	for _, r := range []Request{big, big, small, big, small} {
		d, _, err := s.Place(p, r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Host)
	}
	// next-fit never goes back to h0 while a later host fits
	if want := []int{0, 1, 1, 2, 2}; !equal(got, want) {
		t.Fatalf("next-fit chose %v, want %v", got, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPowerOfTwoPicksLessUtilised(t *testing.T) {
	// Two hosts only: both candidates are always drawn; the emptier wins.
	vms := []VM{{Name: "a", VCPU: 2, MemoryMiB: 1024, Load: 2, Host: 0}}
	s := mustState(t, Config{VCPUOvercommit: 4, Headroom: 0.2}, hosts(2), vms)
	p := mustPolicy(t, PowerOfTwo, Options{Seed: 1})
	d, err := p.Place(s, small)
	if err != nil {
		t.Fatal(err)
	}
	// h1 (util 0) wins; h0's VM (load 2) fits on h1 with the request
	// (2.5 ≤ 0.8×4): consolidate and power h0 off.
	if d.Host != 1 || d.NilHost != 0 || !equal(d.Migrate, []int{0}) {
		t.Fatalf("decision %+v", d)
	}
	e, err := s.Apply(small, d)
	if err != nil {
		t.Fatal(err)
	}
	if e.PoweredOff != 0 || !s.Off(0) || s.Count(1) != 2 || s.Count(0) != 0 || s.Load(1) != 2.5 {
		t.Fatalf("effect %+v, state %+v", e, s.Stats())
	}
}

func TestPowerOfTwoHeadroomBlocksConsolidation(t *testing.T) {
	vms := []VM{{Name: "a", VCPU: 4, MemoryMiB: 1024, Load: 3, Host: 0}}
	s := mustState(t, Config{VCPUOvercommit: 4, Headroom: 0.2}, hosts(2), vms)
	p := mustPolicy(t, PowerOfTwo, Options{Seed: 1})
	d, err := p.Place(s, small) // 3 + 0.5 > 3.2: no consolidation
	if err != nil {
		t.Fatal(err)
	}
	if d.Host != 1 || d.NilHost != -1 {
		t.Fatalf("decision %+v", d)
	}
	// Without consolidation the nil host is never emptied.
	s2 := mustState(t, Config{VCPUOvercommit: 4}, hosts(2), []VM{{Name: "a", VCPU: 1, MemoryMiB: 1, Load: 0.1, Host: 0}})
	d, err = mustPolicy(t, PowerOfTwo, Options{Seed: 1, NoConsolidation: true}).Place(s2, small)
	if err != nil || d.NilHost != -1 {
		t.Fatalf("no-consolidation decision %+v %v", d, err)
	}
}

func TestPowerOfTwoRedrawsAndSingleCandidate(t *testing.T) {
	// Only h7 of 50 fits: the re-draw bound falls back to listing it.
	hs := hosts(50)
	for i := range hs {
		if i != 7 {
			hs[i].MemoryMiB = 512
		}
	}
	s := mustState(t, Config{}, hs, nil)
	d, err := mustPolicy(t, PowerOfTwo, Options{Seed: 3}).Place(s, small)
	if err != nil || d.Host != 7 || d.NilHost != -1 {
		t.Fatalf("decision %+v %v", d, err)
	}
}

func TestPowerOfTwoDeterministic(t *testing.T) {
	run := func(seed uint64) []int {
		s := mustState(t, Config{VCPUOvercommit: 4}, hosts(20), nil)
		p := mustPolicy(t, PowerOfTwo, Options{Seed: seed})
		var got []int
		for range 40 {
			d, _, err := s.Place(p, small)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, d.Host)
		}
		return got
	}
	a, b, c := run(1), run(1), run(2)
	if !equal(a, b) {
		t.Fatal("same seed, different choices")
	}
	if equal(a, c) {
		t.Fatal("different seeds, same 40 choices")
	}
}

func TestWakeAndNoFit(t *testing.T) {
	hs := hosts(3)
	hs[1].Off = true
	hs[2].Off = true
	vms := []VM{{Name: "a", VCPU: 1, MemoryMiB: 8000, Load: 1, Host: 0}}
	for _, name := range Names() {
		s := mustState(t, Config{}, hs, vms)
		p := mustPolicy(t, name, Options{})
		d, e, err := s.Place(p, small)
		if err != nil || d.Host != 1 || !d.Wake || !e.Woken || s.Off(1) {
			t.Errorf("%s: decision %+v effect %+v err %v, want waking h1", name, d, e, err)
		}
		_, err = p.Place(s, Request{Name: "huge", VCPU: 1, MemoryMiB: 9000})
		if !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "huge") || !strings.Contains(err.Error(), "the most free memory on any other is 8192 MiB") {
			t.Errorf("%s: %v", name, err)
		}
		empty := mustState(t, Config{}, nil, nil)
		if _, err := p.Place(empty, small); !errors.Is(err, ErrNoHosts) {
			t.Errorf("%s with no hosts: %v", name, err)
		}
		if _, err := p.Place(s, Request{VCPU: 0, MemoryMiB: 1}); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s bad request: %v", name, err)
		}
	}
}

func TestIneligibleNeverChosen(t *testing.T) {
	hs := hosts(4)
	hs[0].Ineligible, hs[1].Ineligible = true, true
	for _, name := range Names() {
		s := mustState(t, Config{VCPUOvercommit: 8}, hs, nil)
		p := mustPolicy(t, name, Options{Seed: 9})
		for range 12 {
			d, _, err := s.Place(p, small)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if d.Host < 2 {
				t.Fatalf("%s chose ineligible host %d", name, d.Host)
			}
		}
	}
}

func TestRequestAndStateChecks(t *testing.T) {
	for _, r := range []Request{{VCPU: 1}, {MemoryMiB: 1}, {VCPU: 1, MemoryMiB: 1, Load: -1}, {VCPU: 1, MemoryMiB: 1, Load: 2}} {
		if err := r.Check(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Check(%+v) = %v", r, err)
		}
	}
	if _, err := New("worst-fit", Options{}); !errors.Is(err, ErrBadPolicy) || !strings.Contains(err.Error(), "power-of-two") {
		t.Errorf("unknown policy: %v", err)
	}
	for _, cfg := range []Config{{VCPUOvercommit: -1}, {Headroom: 1}, {MaxVMsPerHost: -1}} {
		if _, err := NewState(cfg, hosts(1), nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := NewState(Config{}, []Host{{Name: "x"}}, nil); err == nil {
		t.Error("host without capacity accepted")
	}
	if _, err := NewState(Config{}, hosts(1), []VM{{Name: "v", VCPU: 1, MemoryMiB: 1, Host: 3}}); err == nil {
		t.Error("VM on unknown host accepted")
	}
	s := mustState(t, Config{}, hosts(2), nil)
	if _, err := s.Apply(small, Decision{Host: 5, NilHost: -1}); err == nil {
		t.Error("decision for unknown host applied")
	}
	s.SetOff(1, true)
	if _, err := s.Apply(small, Decision{Host: 1, NilHost: -1}); err == nil {
		t.Error("placing on an off host without waking applied")
	}
}

func TestMaxVMsPerHost(t *testing.T) {
	s := mustState(t, Config{VCPUOvercommit: 8, MaxVMsPerHost: 2}, hosts(2), nil)
	p := mustPolicy(t, FirstFit, Options{})
	for i := range 4 {
		d, _, err := s.Place(p, small)
		if err != nil || d.Host != i/2 {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
	}
	if _, err := p.Place(s, small); !errors.Is(err, ErrNoFit) {
		t.Fatalf("fifth request: %v", err)
	}
}

// TestPolicyProperties: whatever the state, a decision names a host that
// fits; a powered-off host only when no powered-on host fits; applying it
// never overcommits memory or vCPUs, and a consolidation never pushes the
// target beyond the headroom.
func TestPolicyProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 12).Draw(t, "hosts")
		hs := make([]Host, n)
		for i := range hs {
			hs[i] = Host{Name: "h", VCPU: rapid.IntRange(1, 8).Draw(t, "cores"), MemoryMiB: rapid.Int64Range(512, 8192).Draw(t, "mem"),
				Ineligible: rapid.IntRange(0, 5).Draw(t, "inel") == 0, Off: rapid.IntRange(0, 3).Draw(t, "off") == 0}
		}
		cfg := Config{VCPUOvercommit: rapid.Float64Range(1, 4).Draw(t, "oc"), Headroom: rapid.Float64Range(0, 0.5).Draw(t, "headroom"),
			MaxVMsPerHost: rapid.IntRange(0, 4).Draw(t, "maxvms")}
		s, err := NewState(cfg, hs, nil)
		if err != nil {
			t.Fatal(err)
		}
		name := rapid.SampledFrom(Names()).Draw(t, "policy")
		p, _ := New(name, Options{Seed: rapid.Uint64().Draw(t, "seed")})
		for range rapid.IntRange(1, 30).Draw(t, "requests") {
			vcpu := rapid.IntRange(1, 4).Draw(t, "vcpu")
			r := Request{VCPU: vcpu, MemoryMiB: rapid.Int64Range(128, 4096).Draw(t, "vmem"), Load: rapid.Float64Range(0, float64(vcpu)).Draw(t, "load")}
			anyOn := false
			for h := range n {
				anyOn = anyOn || (!s.Off(h) && s.Fits(h, r))
			}
			d, err := p.Place(s, r)
			if err != nil {
				if !errors.Is(err, ErrNoFit) {
					t.Fatalf("%s: %v", name, err)
				}
				for h := range n {
					if s.Fits(h, r) {
						t.Fatalf("%s: no fit reported, but host %d fits", name, h)
					}
				}
				continue
			}
			if !s.Fits(d.Host, r) || s.Hosts[d.Host].Ineligible {
				t.Fatalf("%s chose host %d that does not fit", name, d.Host)
			}
			if s.Off(d.Host) != d.Wake || (d.Wake && anyOn) {
				t.Fatalf("%s: wake %v for host off=%v while a powered-on host fits=%v", name, d.Wake, s.Off(d.Host), anyOn)
			}
			if _, err := s.Apply(r, d); err != nil {
				t.Fatal(err)
			}
			if d.NilHost >= 0 && s.Load(d.Host) > (1-cfg.Headroom)*float64(s.Hosts[d.Host].VCPU)+1e-6 {
				t.Fatalf("consolidation pushed host %d to load %g beyond headroom", d.Host, s.Load(d.Host))
			}
			for h := range n {
				if s.FreeMemMiB(h) < 0 || float64(s.usedVCPU[h]) > float64(s.Hosts[h].VCPU)*cfg.VCPUOvercommit+1e-9 {
					t.Fatalf("host %d overcommitted", h)
				}
				if s.Off(h) && s.Count(h) > 0 {
					t.Fatalf("host %d is off with %d VMs", h, s.Count(h))
				}
				if cfg.MaxVMsPerHost > 0 && s.Count(h) > cfg.MaxVMsPerHost {
					t.Fatalf("host %d has %d VMs", h, s.Count(h))
				}
			}
		}
	})
}
