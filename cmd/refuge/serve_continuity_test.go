package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/continuity/dnstest"
	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/store"
)

const continuityFederation = `
name: two
sites:
  - {name: a, gateway: [192.0.2.1], lat: 33, lon: 135, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 4096, nic_mbps: 10000}]}]}
  - {name: b, gateway: [192.0.2.2], lat: 34, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 4096, nic_mbps: 10000}]}]}
links:
  - {name: a-b, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
services:
  - {name: moodle, fqdn: moodle.example.test, port: 80}
vms:
  - {name: v1, host: a1, vcpu: 1, memory_mib: 128, storage: shared, service: moodle}
`

// TestServeContinuityAgainstKnot: refuge serve --continuity on a
// simulated federation, against a real Knot serving the drill zone. An
// evacuation of site a started through the API lowers the TTL of moodle's
// record, moves it to site b's gateway at the switch-over and restores the
// TTL when it ends; each DNS change is in the controller's audit log.
// The simulation runs 300× faster than real time: serve lowers the TTL
// before the executor starts (controller.Config.Prepare, waited for up to
// 2 s), so the lowering comes before the switch-over however fast the
// migration is.
func TestServeContinuityAgainstKnot(t *testing.T) {
	srv := dnstest.StartT(t, dnstest.Knot, dnstest.Options{
		Zone: "drill.example.test.", Records: []string{"moodle 300 IN A 192.0.2.1"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	dnsConf, err := srv.ContinuityDNS(dir, "example.test.")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"federation.yaml": continuityFederation,
		"continuity.yaml": dnsConf,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := startServe(t, "--simulate", filepath.Join(dir, "federation.yaml"), "--speed", "300", "--continuity", filepath.Join(dir, "continuity.yaml"))

	var accepted struct {
		OperationID string `json:"operation_id"`
	}
	var code int
	var b []byte
	// /readyz says a leader is elected; this controller may take a moment
	// to know it leads (503 meanwhile).
	if !controllertest.Poll(20*time.Second, func() bool {
		req, _ := http.NewRequest("POST", s.url+"/v1/evacuations", strings.NewReader(`{"site":"a","deadline":"10m"}`))
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ = io.ReadAll(resp.Body)
		code = resp.StatusCode
		return code == 202 && json.Unmarshal(b, &accepted) == nil
	}) {
		t.Fatalf("evacuate: %d %s", code, b)
	}
	var acc store.Operation
	if !controllertest.Poll(30*time.Second, func() bool {
		code, body := s.get("GET", "/v1/operations/"+accepted.OperationID, "")
		return code == 200 && json.Unmarshal(body, &acc) == nil && !store.Live(acc.Status)
	}) {
		t.Fatalf("evacuation %s did not end: %+v", accepted.OperationID, acc)
	}
	up, err := dns.New(dns.Config{Server: srv.Addr, Zone: srv.Zone, KeyName: srv.KeyName, Secret: srv.Secret})
	if err != nil {
		t.Fatal(err)
	}
	var audit []store.AuditEntry
	var got dns.Records
	// The TTL is restored when serve sees the operation end: poll.
	if !controllertest.Poll(10*time.Second, func() bool {
		got, err = up.Lookup(ctx, "moodle.drill.example.test.")
		return err == nil && got.TTL == 300
	}) {
		t.Errorf("moodle after the evacuation: %v %v, want TTL 300 restored", got, err)
	}
	if len(got.Addrs) != 1 || got.Addrs[0] != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("moodle after the evacuation: %v, want site b's gateway 192.0.2.2", got)
	}
	// The audit entry of a change is written after the change itself:
	// poll until the restore's is there.
	var changes []string
	controllertest.Poll(10*time.Second, func() bool {
		code, body := s.get("GET", "/v1/audit", "")
		if code != 200 || json.Unmarshal(body, &audit) != nil {
			t.Fatalf("audit: %d %.300s", code, body)
		}
		changes = changes[:0]
		for _, e := range audit {
			if e.Name == "continuity" {
				changes = append(changes, e.Detail)
			}
		}
		return len(changes) >= 3
	})
	want := []string{"set-ttl moodle.drill.example.test.", "TTL 300 → [192.0.2.1] TTL 5: applied",
		"switch moodle.drill.example.test.", "[192.0.2.1] TTL 5 → [192.0.2.2] TTL 5: applied",
		"set-ttl moodle.drill.example.test.", "[192.0.2.2] TTL 5 → [192.0.2.2] TTL 300: applied"}
	joined := strings.Join(changes, "\n")
	at := 0
	for _, w := range want {
		i := strings.Index(joined[at:], w)
		if i < 0 {
			t.Fatalf("audit's continuity entries:\n%s\nwant, in order: %q", joined, want)
		}
		at += i + len(w)
	}
}
