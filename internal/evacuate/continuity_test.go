package evacuate

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/continuity"
	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
)

// continuityFederation is testFederation with a gateway per site and two
// services: moodle (a DNS name; v1 at threatened site a, v3 at c) and db
// (no name; v2 at a).
func continuityFederation(t *testing.T) *model.Federation {
	t.Helper()
	doc := testFederation
	for _, s := range []string{"a", "b", "c"} {
		n := map[string]string{"a": "1", "b": "2", "c": "3"}[s]
		doc = strings.Replace(doc, "{name: "+s+", lat:", "{name: "+s+", gateway: [192.0.2."+n+"], lat:", 1)
	}
	doc = strings.Replace(doc, "vms:\n", "services:\n  - {name: moodle, fqdn: moodle.example.test, port: 80}\n  - {name: db}\nvms:\n", 1)
	doc = strings.Replace(doc, "{name: v1, host: a1,", "{name: v1, host: a1, service: moodle,", 1)
	doc = strings.Replace(doc, "{name: v2, host: a1,", "{name: v2, host: a1, service: db,", 1)
	doc = strings.Replace(doc, "{name: v3, host: c1,", "{name: v3, host: c1, service: moodle,", 1)
	fed, err := model.ParseFederation([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return fed
}

// fakeDNS records what the Coordinator asks of the DNS server.
type fakeDNS struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeDNS) add(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeDNS) Switch(_ context.Context, name string, from, to []netip.Addr, _ uint32) error {
	f.add(fmt.Sprintf("switch %s %v→%v", name, from, to))
	return nil
}

func (f *fakeDNS) LowerTTL(_ context.Context, name string, ttl uint32) (dns.Records, error) {
	f.add(fmt.Sprintf("lower %s %d", name, ttl))
	return dns.Records{Name: name, TTL: 300}, nil
}

func (f *fakeDNS) SetTTL(_ context.Context, name string, ttl uint32) (dns.Records, error) {
	f.add(fmt.Sprintf("set-ttl %s %d", name, ttl))
	return dns.Records{Name: name, TTL: 5}, nil
}

type fakeRoutes struct {
	site string
	dns  *fakeDNS
}

func (r fakeRoutes) SetBackends(_ context.Context, service string, backends []string) error {
	r.dns.add(fmt.Sprintf("gateway %s: %s→%s", r.site, service, strings.Join(backends, ",")))
	return nil
}

// TestDrillCallsCoordinatorPerMigratedVM: the simulated evacuation of
// site a calls the Coordinator once per migrated VM of a service — for
// moodle's v1 every gateway gets its backend at the destination and the
// name moves from a's gateway to the destination's, between lowering and
// restoring the TTL; db (no name, no gateway route) changes nothing.
func TestDrillCallsCoordinatorPerMigratedVM(t *testing.T) {
	fed := continuityFederation(t)
	fd := &fakeDNS{}
	c := &continuity.Coordinator{DNS: fd, Sites: map[string]continuity.Site{}, Services: map[string]continuity.Service{
		"moodle": {FQDN: "moodle.example.test.", Route: "moodle", Backends: map[string][]string{"a": {"10.0.0.1:80"}, "b": {"10.0.0.2:80"}, "c": {"10.0.0.3:80"}}},
		"db":     {},
	}}
	for i, s := range []string{"a", "b", "c"} {
		c.Sites[s] = continuity.Site{Gateway: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}, Routes: fakeRoutes{s, fd}}
	}
	sc := &model.Scenario{Name: "drill", Threats: []model.Threat{{Site: "a", Deadline: model.Duration(10 * time.Minute)}}}
	rep, err := Drill(context.Background(), DrillOptions{Federation: fed, Scenario: sc, Policy: model.RefugePolicy(), Continuity: c})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.VMsEvacuated != 2 || len(rep.ContinuityErrors) != 0 {
		t.Fatalf("evacuated %d, continuity errors %v", rep.Summary.VMsEvacuated, rep.ContinuityErrors)
	}
	if !slices.Equal(rep.Services, []string{"db", "moodle"}) {
		t.Errorf("services at risk %v", rep.Services)
	}
	byVM := map[string]Switchover{}
	for _, s := range rep.Switchovers {
		byVM[s.VM] = s
	}
	v1, v2 := byVM["v1"], byVM["v2"]
	if len(rep.Switchovers) != 2 || v1.Service != "moodle" || v1.From != "a" || v2.Service != "db" || v2.From != "a" || v1.To == "a" || v2.To == "a" {
		t.Fatalf("switchovers %+v, want v1 (moodle) and v2 (db) from a", rep.Switchovers)
	}
	dest := map[string]string{"b": "2", "c": "3"}[v1.To]
	want := []string{"lower moodle.example.test. 5"}
	for _, s := range []string{"a", "b", "c"} {
		want = append(want, fmt.Sprintf("gateway %s: moodle→10.0.0.%s:80", s, dest))
	}
	want = append(want, fmt.Sprintf("switch moodle.example.test. [192.0.2.1]→[192.0.2.%s]", dest), "set-ttl moodle.example.test. 300")
	got := append([]string(nil), fd.calls...)
	slices.Sort(got[1:4]) // the gateways are told in map order
	if !slices.Equal(got, want) {
		t.Errorf("calls\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// recContinuity records the calls of a real evacuation.
type recContinuity struct {
	mu    sync.Mutex
	calls []string
	fail  error
	// hold, if not nil, holds LowerTTL until it is closed.
	hold chan struct{}
}

func (r *recContinuity) add(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return r.fail
}

func (r *recContinuity) Switchover(_ context.Context, vm, service, from, to string) error {
	return r.add(fmt.Sprintf("switch %s/%s %s→%s", service, vm, from, to))
}

func (r *recContinuity) LowerTTL(_ context.Context, services []string, ttl uint32) error {
	if r.hold != nil {
		<-r.hold
	}
	return r.add(fmt.Sprintf("lower %v %d", services, ttl))
}

func (r *recContinuity) RestoreTTL(_ context.Context, services []string) error {
	return r.add(fmt.Sprintf("restore %v", services))
}

// TestRunContinuity: a real evacuation (fake libvirt) lowers the TTL of
// the services at risk, has the executor switch each migrated VM's
// service, restores the TTL, and reports continuity failures without
// failing.
func TestRunContinuity(t *testing.T) {
	_, o := setup(t, 10*time.Minute, time.Second, nil)
	o.Federation = continuityFederation(t)
	rc := &recContinuity{fail: fmt.Errorf("server unreachable")}
	o.Continuity, o.LoweredTTL = rc, 7
	rep, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.VMsEvacuated != 2 {
		t.Fatalf("evacuated %d", rep.VMsEvacuated)
	}
	if !slices.Equal(rep.ContinuityServices, []string{"db", "moodle"}) {
		t.Errorf("services %v", rep.ContinuityServices)
	}
	rc.mu.Lock()
	calls := append([]string(nil), rc.calls...)
	rc.mu.Unlock()
	// The TTL is lowered before the evacuation starts (it answers within
	// overlapWait) and restored at the end.
	if len(calls) != 4 || calls[0] != "lower [db moodle] 7" || calls[3] != "restore [db moodle]" {
		t.Fatalf("calls %v", calls)
	}
	var switches []string
	for _, c := range calls[:3] {
		if strings.HasPrefix(c, "switch ") {
			switches = append(switches, c)
		}
	}
	slices.Sort(switches)
	if len(switches) != 2 || !strings.HasPrefix(switches[0], "switch db/v2 a→") || !strings.HasPrefix(switches[1], "switch moodle/v1 a→") {
		t.Errorf("switches %v", switches)
	}
	if len(rep.ContinuityErrors) != 4 || len(rep.Switchovers) != 2 || rep.Switchovers[0].Error == "" {
		t.Errorf("continuity errors %v, switchovers %+v", rep.ContinuityErrors, rep.Switchovers)
	}
	var ev int
	for _, e := range rep.Timeline {
		if e.Kind == executor.EvContinuity {
			ev++
		}
	}
	if ev != 2 {
		t.Errorf("%d continuity events in the timeline, want 2", ev)
	}
}

// TestRunContinuitySlowDNS: a TTL lowering that outlasts overlapWait
// does not hold the evacuation: the VMs move (and switch) meanwhile, and
// the lowering, once done, is reported before the restore.
func TestRunContinuitySlowDNS(t *testing.T) {
	defer func(w time.Duration) { overlapWait = w }(overlapWait)
	overlapWait = 20 * time.Millisecond
	_, o := setup(t, 10*time.Minute, time.Second, nil)
	o.Federation = continuityFederation(t)
	rc := &recContinuity{hold: make(chan struct{})}
	o.Continuity = rc
	// Release the lowering once both VMs have switched (or after 10 s,
	// and the order below fails).
	go func() {
		defer close(rc.hold)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			rc.mu.Lock()
			n := len(rc.calls)
			rc.mu.Unlock()
			if n == 2 {
				return
			}
			runtime.Gosched()
		}
	}()
	rep, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.VMsEvacuated != 2 {
		t.Fatalf("evacuated %d", rep.VMsEvacuated)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.calls) != 4 || !strings.HasPrefix(rc.calls[0], "switch ") || !strings.HasPrefix(rc.calls[1], "switch ") ||
		!strings.HasPrefix(rc.calls[2], "lower ") || !strings.HasPrefix(rc.calls[3], "restore ") {
		t.Errorf("calls %v: want both switches, then the late lowering, then the restore", rc.calls)
	}
}
