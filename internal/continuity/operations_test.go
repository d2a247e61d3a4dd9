package continuity

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/api"
	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/continuity/dnstest"
	"github.com/refuge-project/refuge/internal/model"
)

func TestServicesAt(t *testing.T) {
	fed, err := model.ParseFederation([]byte(`name: f
sites:
  - {name: a, lat: 34, lon: 134, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 8192, nic_mbps: 1000}]}]}
  - {name: b, lat: 35, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 8192, nic_mbps: 1000}]}]}
links:
  - {name: ab, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
services:
  - {name: web}
  - {name: db}
vms:
  - {name: w1, host: a1, vcpu: 1, memory_mib: 512, service: web}
  - {name: w2, host: a1, vcpu: 1, memory_mib: 512, service: web}
  - {name: d1, host: b1, vcpu: 1, memory_mib: 512, service: db}
  - {name: x, host: a1, vcpu: 1, memory_mib: 512}
`))
	if err != nil {
		t.Fatal(err)
	}
	ix := model.NewIndex(fed)
	a1, b1 := ix.HostByName["a1"], ix.HostByName["b1"]
	for _, tc := range []struct {
		placement []int
		sites     []string
		want      string
	}{
		{[]int{a1, a1, b1, a1}, []string{"a"}, "[web]"},
		{[]int{a1, a1, b1, a1}, []string{"a", "b", "nowhere"}, "[db web]"},
		{[]int{b1, -1, b1, a1}, []string{"a"}, "[]"},
		{[]int{b1, -1, b1, a1}, []string{"b"}, "[db web]"},
	} {
		if got := fmt.Sprint(ServicesAt(ix, tc.placement, tc.sites)); got != tc.want {
			t.Errorf("ServicesAt(%v, %v) = %s, want %s", tc.placement, tc.sites, got, tc.want)
		}
	}
}

// TestFollowOperationsAgainstKnot: the controller's operations, as its
// store's watch reports them, lower and restore the TTL of their sites'
// services on a real Knot: two overlapping evacuations share a name,
// which is restored only when the last one ends; a drill is ignored; what
// is still lowered when Follow stops is restored. Every change is checked
// by a query of the test's own and is in the audit.
func TestFollowOperationsAgainstKnot(t *testing.T) {
	srv := dnstest.StartT(t, dnstest.Knot, dnstest.Options{
		Zone: "example.test.", Records: []string{"moodle 300 IN A 192.0.2.1", "db 600 IN A 192.0.2.9"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var audit []string
	up, err := dns.New(dns.Config{Server: srv.Addr, Zone: srv.Zone, KeyName: srv.KeyName, Secret: srv.Secret,
		Audit: Auditor(slog.New(slog.DiscardHandler), func(_ context.Context, e api.AuditEntry) error {
			mu.Lock()
			defer mu.Unlock()
			audit = append(audit, fmt.Sprintf("%d %s", e.Status, e.Detail))
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	c := &Coordinator{DNS: up, Services: map[string]Service{
		"moodle": {FQDN: "moodle.example.test."}, "db": {FQDN: "db.example.test."}}}
	at := map[string][]string{"a": {"db", "moodle"}, "b": {"moodle"}}
	changes := make(chan api.Change) // unbuffered: a send returns once Follow has handled the previous change
	stop := c.Background(ctx, func(context.Context) <-chan api.Change { return changes }, FollowOptions{TTL: 5,
		Services: func(sites []string) []string {
			var out []string
			for _, s := range sites {
				out = append(out, at[s]...)
			}
			return out
		}})
	send := func(id, kind, status string, sites ...string) {
		op := &api.Operation{ID: id, Kind: kind, Status: status}
		for _, s := range sites {
			op.Sites = append(op.Sites, api.SiteDeadline{Site: s})
		}
		changes <- api.Change{Operation: op, OperationID: id}
		changes <- api.Change{Step: &api.VMStep{VM: "x"}, OperationID: id} // handled once the operation is
	}
	ttls := func() string {
		var out []string
		for _, n := range []string{"moodle", "db"} {
			r, err := up.Lookup(ctx, n+".example.test.")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %d", n, r.TTL))
		}
		return strings.Join(out, ", ")
	}
	for _, step := range []struct {
		id, kind, status string
		sites            []string
		want             string
	}{
		{"op1", api.KindEvacuation, api.OpRunning, []string{"a"}, "moodle 5, db 5"},
		{"op1", api.KindEvacuation, api.OpRunning, []string{"a"}, "moodle 5, db 5"}, // a progress update
		{"op2", api.KindEvacuation, api.OpPending, []string{"b"}, "moodle 5, db 5"},
		{"drill", api.KindDrill, api.OpRunning, []string{"a"}, "moodle 5, db 5"},
		{"op1", api.KindEvacuation, api.OpSucceeded, []string{"a"}, "moodle 5, db 600"}, // moodle: op2 still holds it
		{"op2", api.KindEvacuation, api.OpCancelled, []string{"b"}, "moodle 300, db 600"},
		{"op3", api.KindEvacuation, api.OpRunning, []string{"b"}, "moodle 5, db 600"},
	} {
		send(step.id, step.kind, step.status, step.sites...)
		if got := ttls(); got != step.want {
			t.Fatalf("after %s %s: %s, want %s", step.id, step.status, got, step.want)
		}
	}
	stop() // the controller shuts down with op3 live: its TTL goes back
	if got := ttls(); got != "moodle 300, db 600" {
		t.Errorf("after Follow stopped: %s, want the TTLs restored", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"200 set-ttl db.example.test. in zone example.test. on " + srv.Addr + ": [192.0.2.9] TTL 600 → [192.0.2.9] TTL 5: applied (attempt 1)",
		"200 set-ttl moodle.example.test. in zone example.test. on " + srv.Addr + ": [192.0.2.1] TTL 300 → [192.0.2.1] TTL 5: applied (attempt 1)",
		"200 set-ttl db.example.test. in zone example.test. on " + srv.Addr + ": [192.0.2.9] TTL 5 → [192.0.2.9] TTL 600: applied (attempt 1)",
		"200 set-ttl moodle.example.test. in zone example.test. on " + srv.Addr + ": [192.0.2.1] TTL 5 → [192.0.2.1] TTL 300: applied (attempt 1)",
		"200 set-ttl moodle.example.test. in zone example.test. on " + srv.Addr + ": [192.0.2.1] TTL 300 → [192.0.2.1] TTL 5: applied (attempt 1)",
		"200 set-ttl moodle.example.test. in zone example.test. on " + srv.Addr + ": [192.0.2.1] TTL 5 → [192.0.2.1] TTL 300: applied (attempt 1)",
	}
	if strings.Join(audit, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(audit, "\n"), strings.Join(want, "\n"))
	}
}
