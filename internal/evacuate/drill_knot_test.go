package evacuate

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/continuity"
	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/continuity/dnstest"
	"github.com/refuge-project/refuge/internal/model"
)

// TestDrillAgainstKnot: a drill of a small federation, configured the way
// an operator would (a continuity file naming the server, the zone, a
// drill zone and a secret file), against a real Knot DNS serving the drill
// zone only: moodle's A record moves from site a's gateway to the gateway
// of the site its VM was evacuated to, with the TTL lowered to 5 s around
// the switch and restored to 300 s; the production zone is never touched
// (the server does not even serve it). A second service whose record is
// missing from the zone gets clear continuity errors while the
// evacuation goes on.
func TestDrillAgainstKnot(t *testing.T) {
	srv := dnstest.StartT(t, dnstest.Knot, dnstest.Options{
		Zone: "drill.example.test.", Records: []string{"moodle 300 IN A 192.0.2.1"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	doc, err := srv.ContinuityDNS(dir, "example.test.")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "continuity.yaml")
	doc += "gateways:\n  a: {admin_url: \"http://192.0.2.1:9180\"}\n"
	if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := continuity.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	fed := continuityFederation(t)
	fed.Services[1].FQDN = "db.example.test" // no record in the drill zone
	var mu sync.Mutex
	var audit []string
	c, err := continuity.Build(fed, cfg, continuity.BuildOptions{Drill: true,
		DNS: func(d *dns.Config) { d.Sleep = func(context.Context, time.Duration) error { return nil } },
		Audit: func(ch dns.Change) {
			if !strings.HasPrefix(ch.To.Name, "moodle.") {
				return
			}
			mu.Lock()
			audit = append(audit, fmt.Sprintf("%s %s ttl %d→%d %v→%v %s", ch.Op, ch.To.Name, ch.From.TTL, ch.To.TTL, ch.From.Addrs, ch.To.Addrs, ch.Result))
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	sc := &model.Scenario{Name: "drill", Threats: []model.Threat{{Site: "a", Deadline: model.Duration(10 * time.Minute)}}}
	rep, err := Drill(ctx, DrillOptions{Federation: fed, Scenario: sc, Policy: model.RefugePolicy(), Continuity: c})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.VMsEvacuated != 2 {
		t.Fatalf("evacuated %d of 2", rep.Summary.VMsEvacuated)
	}
	var to string
	for _, s := range rep.Switchovers {
		if s.VM == "v1" {
			to = s.To
		}
	}
	want := netip.MustParseAddr(map[string]string{"b": "192.0.2.2", "c": "192.0.2.3"}[to])

	up, err := dns.New(dns.Config{Server: srv.Addr, Zone: srv.Zone, KeyName: srv.KeyName, Secret: srv.Secret})
	if err != nil {
		t.Fatal(err)
	}
	got, err := up.Lookup(ctx, "moodle.drill.example.test.")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Addrs) != 1 || got.Addrs[0] != want || got.TTL != 300 {
		t.Errorf("moodle after the drill: %v, want %s with TTL 300 restored (audit:\n%s)", got, want, strings.Join(audit, "\n"))
	}
	wantAudit := []string{
		"set-ttl moodle.drill.example.test. ttl 300→5 [192.0.2.1]→[192.0.2.1] applied",
		fmt.Sprintf("switch moodle.drill.example.test. ttl 5→5 [192.0.2.1]→[%s] applied", want),
		fmt.Sprintf("set-ttl moodle.drill.example.test. ttl 5→300 [%s]→[%s] applied", want, want),
	}
	if strings.Join(audit, "\n") != strings.Join(wantAudit, "\n") {
		t.Errorf("audit\n%s\nwant\n%s", strings.Join(audit, "\n"), strings.Join(wantAudit, "\n"))
	}
	// db's name is not in the zone: its lowering and its switchover fail
	// with errors naming it, and nothing else is affected.
	errs := strings.Join(rep.ContinuityErrors, "\n")
	if len(rep.ContinuityErrors) != 2 || !strings.Contains(errs, "lower TTL:") || !strings.Contains(errs, "db.drill.example.test.") ||
		!strings.Contains(errs, "switchover of db (vm v2, a → ") {
		t.Errorf("continuity errors:\n%s", errs)
	}
}
