package evacsim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
)

// seed003Federation: one WAN link between a threatened site and a refuge;
// 10 Gbit/s, 20 ms RTT, so one migration (TCP window 4 MiB / 20 ms) gets
// about 200 MiB/s and about six saturate the link.
func seed003Federation(t *testing.T) (*model.Federation, *model.Scenario) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`name: seed003
sites:
  - name: dc
    lat: 33.5
    lon: 133.5
    fabrics: [{name: dc-f, hosts: [`)
	for i := range 8 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{name: dc-h%d, vcpu: 64, memory_mib: 262144, nic_mbps: 25000}", i)
	}
	b.WriteString(`]}]
  - name: refuge
    lat: 35.7
    lon: 139.7
    fabrics: [{name: rf-f, hosts: [`)
	for i := range 8 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{name: rf-h%d, vcpu: 64, memory_mib: 262144, nic_mbps: 25000}", i)
	}
	b.WriteString(`]}]
links:
  - {name: wan, a: dc, b: refuge, bandwidth_mbps: 10000, rtt_ms: 20}
vms:
`)
	for i := range 48 {
		mem := []int{4096, 8192, 16384}[i%3]
		dirty := 10 + float64(i%6)*10
		fmt.Fprintf(&b, "  - {name: vm%02d, host: dc-h%d, vcpu: 2, memory_mib: %d, dirty_rate_mibps: %g, working_set_mib: %d, priority: 100}\n",
			i, i%8, mem, dirty, mem/4)
	}
	f, err := model.ParseFederation([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	sc := &model.Scenario{Name: "seed003", Threats: []model.Threat{{Site: "dc", Deadline: model.Duration(2 * time.Hour)}}}
	return f, sc
}

// TestSeed003AdaptiveConcurrency reproduces seed 003's finding in the
// simulator: many simultaneous WAN migrations make each one slow, one at a
// time wastes the link, and a feedback controller finds an operating point
// with a short total time and short individual times.
func TestSeed003AdaptiveConcurrency(t *testing.T) {
	f, sc := seed003Federation(t)
	type row struct {
		name                  string
		makespan, mean, bytes float64
	}
	var rows []row
	run := func(name string, p model.Policy) row {
		r, err := Run(Options{Federation: f, Scenario: sc, Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary.VMsEvacuated != 48 {
			t.Fatalf("%s evacuated %d of 48", name, r.Summary.VMsEvacuated)
		}
		var bytes float64
		for _, v := range r.Report.VMs {
			if v.Status == executor.StatusMigrated {
				bytes += float64(v.Bytes)
			}
		}
		rw := row{name, r.Summary.MakespanS, r.Summary.MeanMigrationS, bytes / model.GiB}
		rows = append(rows, rw)
		return rw
	}
	fixed := func(n int) model.Policy {
		p := model.RefugePolicy()
		p.Concurrency = model.ConcurrencyPolicy{Global: n}
		return p
	}
	one := run("1 at a time", fixed(1))
	two := run("2 at a time", fixed(2))
	six := run("6 at a time", fixed(6))
	all := run("all at once", fixed(0))
	ad := run("adaptive (refuge)", model.RefugePolicy())
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| schedule | total time s | mean migration s | GiB sent |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&tbl, "| %s | %.1f | %.1f | %.1f |\n", r.name, r.makespan, r.mean, r.bytes)
	}
	t.Log(tbl.String())
	if !(one.makespan > two.makespan && two.makespan > six.makespan) {
		t.Errorf("more concurrency below saturation should shorten the total: %v", rows)
	}
	if all.mean < 5*six.mean {
		t.Errorf("all at once: mean migration %.1f s, want much longer than with 6 at a time (%.1f s)", all.mean, six.mean)
	}
	if ad.makespan > 1.10*min(six.makespan, all.makespan) {
		t.Errorf("adaptive total %.1f s, more than 10%% above the best fixed schedule", ad.makespan)
	}
	if ad.mean > 2*six.mean || ad.mean*5 > all.mean {
		t.Errorf("adaptive mean migration %.1f s: want near the saturating fixed schedule (%.1f s) and far below all at once (%.1f s)", ad.mean, six.mean, all.mean)
	}
}
