package model

import (
	"fmt"
	"strings"
	"testing"
)

// bigFederation returns a valid federation document with the given number of
// sites (in a chain of links), hosts per site and VMs per host.
func bigFederation(sites, hostsPerSite, vmsPerHost int) []byte {
	var b strings.Builder
	b.WriteString("name: big\nservices: [{name: db}, {name: web, depends_on: [db]}]\nsites:\n")
	for s := range sites {
		fmt.Fprintf(&b, "  - name: s%d\n    fabrics:\n      - name: s%d-f\n        hosts:\n", s, s)
		for h := range hostsPerSite {
			fmt.Fprintf(&b, "          - {name: s%d-h%d, vcpu: 32, memory_mib: 262144, disk_gib: 2000, nic_mbps: 10000}\n", s, h)
		}
	}
	b.WriteString("links:\n")
	for s := 1; s < sites; s++ {
		fmt.Fprintf(&b, "  - {name: l%d, a: s%d, b: s%d, bandwidth_mbps: 1000, rtt_ms: 5}\n", s, s-1, s)
	}
	b.WriteString("vms:\n")
	for s := range sites {
		for h := range hostsPerSite {
			for v := range vmsPerHost {
				fmt.Fprintf(&b, "  - {name: s%d-h%d-v%d, host: s%d-h%d, vcpu: 2, memory_mib: 4096, disk_gib: 20, service: web, fqdn: v%d.s%d.example.org}\n", s, h, v, s, h, v, s)
			}
		}
	}
	return []byte(b.String())
}

func TestBigFederation(t *testing.T) {
	f, err := ParseFederation(bigFederation(4, 50, 10))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.VMs) != 2000 {
		t.Fatalf("%d VMs", len(f.VMs))
	}
	// Every VM names a host that does not exist: the report stays bounded
	// and cheap.
	for i := range f.VMs {
		f.VMs[i].Host = fmt.Sprintf("gone-%d", i)
	}
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "2000 problems") {
		t.Fatalf("got %.200v", err)
	}
}

// BenchmarkParseFederation parses a 10 000-VM federation (about 1.3 MB).
func BenchmarkParseFederation(b *testing.B) {
	data := bigFederation(10, 100, 10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseFederation(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate validates a decoded 10 000-VM federation.
func BenchmarkValidate(b *testing.B) {
	f, err := ParseFederation(bigFederation(10, 100, 10))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := f.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateUnknownHosts validates a federation whose every VM names
// a missing host, the worst case for did-you-mean suggestions.
func BenchmarkValidateUnknownHosts(b *testing.B) {
	f, err := ParseFederation(bigFederation(10, 100, 10))
	if err != nil {
		b.Fatal(err)
	}
	for i := range f.VMs {
		f.VMs[i].Host = fmt.Sprintf("s%d-h%d", i, i)
	}
	for b.Loop() {
		if err := f.Validate(); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkNewIndex(b *testing.B) {
	f, err := ParseFederation(bigFederation(50, 2, 1))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		NewIndex(f)
	}
}
