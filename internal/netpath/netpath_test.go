package netpath

import (
	"math"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/precopy"
)

func index(t *testing.T) *model.Index {
	t.Helper()
	f, err := model.ParseFederation([]byte(`name: t
sites:
  - {name: a, lat: 0, lon: 0, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 8192, nic_mbps: 10000}]}]}
  - {name: b, lat: 0, lon: 1, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 8192, nic_mbps: 25000}]}]}
  - {name: c, lat: 0, lon: 2, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 8, memory_mib: 8192, nic_mbps: 10000}]}]}
  - {name: d, lat: 0, lon: 3, fabrics: [{name: fd, hosts: [{name: d1, vcpu: 8, memory_mib: 8192, nic_mbps: 10000}]}]}
links:
  - {name: ab, a: a, b: b, bandwidth_mbps: 10000, rtt_ms: 5}
  - {name: cb, a: c, b: b, bandwidth_mbps: 1000, rtt_ms: 7, mode: shared, background_mbps: 400}
  - {name: ac, a: a, b: c, bandwidth_mbps: 2000, rtt_ms: 30, tunnel_overhead_bytes: 82}
vms: []
`))
	if err != nil {
		t.Fatal(err)
	}
	return model.NewIndex(f)
}

func TestBetweenFollowsTheRouteAndItsDirections(t *testing.T) {
	ix := index(t)
	a1, b1, c1, d1 := ix.HostByName["a1"], ix.HostByName["b1"], ix.HostByName["c1"], ix.HostByName["d1"]
	p, ok := Between(ix, b1, c1) // b → c over link cb, against its a→b orientation
	if !ok {
		t.Fatal("b1 → c1 unreachable")
	}
	want := []Resource{{HostOut, b1, 0}, {Link, ix.LinkByName["cb"], 1}, {HostIn, c1, 0}}
	if len(p.Resources) != len(want) {
		t.Fatalf("resources %v, want %v", p.Resources, want)
	}
	for i := range want {
		if p.Resources[i] != want[i] {
			t.Errorf("resource %d: %+v, want %+v", i, p.Resources[i], want[i])
		}
	}
	if p.RTT != LANRTT+7*time.Millisecond {
		t.Errorf("RTT %s, want LAN + 7ms", p.RTT)
	}
	if p, _ := Between(ix, a1, a1); len(p.Links) != 0 || p.RTT != LANRTT {
		t.Errorf("same-site path %+v", p)
	}
	if _, ok := Between(ix, a1, d1); ok {
		t.Error("site d has no link but was reachable")
	}
}

func TestCapacity(t *testing.T) {
	ix := index(t)
	cb := Resource{Kind: Link, ID: ix.LinkByName["cb"]}
	// A shared link gives migrations what its background traffic leaves.
	if got, want := Capacity(ix, cb, nil), precopy.Goodput(model.MbpsToBytes(600), 0); got != want {
		t.Errorf("shared link capacity %.0f, want %.0f", got, want)
	}
	ac := Resource{Kind: Link, ID: ix.LinkByName["ac"]}
	if got, want := Capacity(ix, ac, nil), precopy.Goodput(model.MbpsToBytes(2000), 82); got != want {
		t.Errorf("tunnelled link capacity %.0f, want %.0f", got, want)
	}
	override := []float64{10000, 300, 0}
	if got := Capacity(ix, cb, override); got != 0 {
		t.Errorf("link degraded below its background traffic has capacity %.0f, want 0", got)
	}
	if got := Capacity(ix, ac, override); got != 0 {
		t.Errorf("cut link has capacity %.0f", got)
	}
	nic := Resource{Kind: HostIn, ID: ix.HostByName["b1"]}
	if got, want := Capacity(ix, nic, nil), precopy.Goodput(model.MbpsToBytes(25000), 0); got != want {
		t.Errorf("NIC capacity %.0f, want %.0f", got, want)
	}
}

func TestFlowCap(t *testing.T) {
	if c := FlowCap(0, 0, 1); !math.IsInf(c, 1) {
		t.Errorf("no cap and no RTT: %v, want +Inf", c)
	}
	if c := FlowCap(100, 0, 1); c != 100 {
		t.Errorf("explicit cap: %v", c)
	}
	// 4 MiB window over 10 ms: 400 MiB/s per connection.
	if c, want := FlowCap(0, 10*time.Millisecond, 1), float64(TCPWindowBytes)/0.01; c != want {
		t.Errorf("window-limited: %v, want %v", c, want)
	}
	if c, want := FlowCap(0, 10*time.Millisecond, 4), 4*float64(TCPWindowBytes)/0.01; c != want {
		t.Errorf("4 connections: %v, want %v", c, want)
	}
}

func TestNames(t *testing.T) {
	ix := index(t)
	for r, want := range map[Resource]string{
		{Kind: HostOut, ID: ix.HostByName["a1"]}:      "nic-out:a1",
		{Kind: HostIn, ID: ix.HostByName["c1"]}:       "nic-in:c1",
		{Kind: Link, ID: ix.LinkByName["cb"], Dir: 0}: "link:cb(c→b)",
		{Kind: Link, ID: ix.LinkByName["cb"], Dir: 1}: "link:cb(b→c)",
	} {
		if got := Name(ix, r); got != want {
			t.Errorf("Name(%+v) = %q, want %q", r, got, want)
		}
	}
}
