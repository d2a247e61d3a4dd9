package dns

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/continuity/dnstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSleep records the waits instead of sleeping.
type fakeSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (f *fakeSleep) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits = append(f.waits, d)
	return ctx.Err()
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, x := range s {
		out[i] = netip.MustParseAddr(x)
	}
	return out
}

// server starts kind with a service name "moodle" holding two addresses.
func server(t *testing.T, kind dnstest.Kind) *dnstest.Server {
	t.Helper()
	return dnstest.StartT(t, kind, dnstest.Options{
		Zone:         "example.test.",
		ReadOnlyZone: "frozen.test.",
		Records: []string{
			"moodle 300 IN A 192.0.2.10",
			"moodle 300 IN AAAA 2001:db8::10",
			"wiki 300 IN A 192.0.2.20",
		},
	})
}

func updater(t *testing.T, s *dnstest.Server, mod func(*Config)) (*Updater, *[]Change, *fakeSleep) {
	t.Helper()
	var mu sync.Mutex
	var changes []Change
	fs := &fakeSleep{}
	cfg := Config{
		Server: s.Addr, Zone: s.Zone, KeyName: s.KeyName, Secret: s.Secret,
		Timeout: time.Second, Attempts: 3, Sleep: fs.Sleep,
		Audit: func(c Change) { mu.Lock(); changes = append(changes, c); mu.Unlock() },
	}
	if mod != nil {
		mod(&cfg)
	}
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u, &changes, fs
}

func TestEvacuationSteps(t *testing.T) {
	for _, kind := range []dnstest.Kind{dnstest.Knot, dnstest.BIND} {
		t.Run(string(kind), func(t *testing.T) {
			s := server(t, kind)
			u, changes, _ := updater(t, s, nil)
			ctx := context.Background()

			old, err := u.LowerTTL(ctx, "moodle.example.test", 5)
			if err != nil {
				t.Fatal(err)
			}
			if old.TTL != 300 || !sameAddrs(old.Addrs, addrs("192.0.2.10", "2001:db8::10")) {
				t.Fatalf("before: %v", old)
			}
			// Lowering again is a no-op.
			if _, err := u.LowerTTL(ctx, "moodle.example.test", 5); err != nil {
				t.Fatal(err)
			}
			// Switch both families to the new site's gateway at once.
			to := addrs("198.51.100.1", "2001:db8:b::1")
			if err := u.Switch(ctx, "moodle.example.test.", old.Addrs, to, 0); err != nil {
				t.Fatal(err)
			}
			got, err := u.Lookup(ctx, "moodle.example.test")
			if err != nil {
				t.Fatal(err)
			}
			if got.TTL != 5 || !sameAddrs(got.Addrs, to) {
				t.Fatalf("after switch: %v", got)
			}
			// Repeating the switch is a no-op; the other name is untouched.
			if err := u.Switch(ctx, "moodle.example.test.", old.Addrs, to, 0); err != nil {
				t.Fatal(err)
			}
			if w, _ := u.Lookup(ctx, "wiki.example.test"); !sameAddrs(w.Addrs, addrs("192.0.2.20")) {
				t.Fatalf("wiki changed: %v", w)
			}
			// Restore the TTL.
			if _, err := u.SetTTL(ctx, "moodle.example.test", old.TTL); err != nil {
				t.Fatal(err)
			}
			got, _ = u.Lookup(ctx, "moodle.example.test")
			if got.TTL != 300 || !sameAddrs(got.Addrs, to) {
				t.Fatalf("after restore: %v", got)
			}
			var results []string
			for _, c := range *changes {
				results = append(results, c.Op+":"+c.Result)
			}
			want := "set-ttl:applied set-ttl:already-applied switch:applied switch:already-applied set-ttl:applied"
			if strings.Join(results, " ") != want {
				t.Fatalf("audit %v, want %s", results, want)
			}
		})
	}
}

func TestSwitchConflictChangesNothing(t *testing.T) {
	s := server(t, dnstest.Knot)
	u, _, _ := updater(t, s, nil)
	ctx := context.Background()
	// The caller believes the name holds an address it does not hold.
	err := u.Switch(ctx, "moodle.example.test", addrs("192.0.2.99"), addrs("198.51.100.1"), 0)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	got, _ := u.Lookup(ctx, "moodle.example.test")
	if !sameAddrs(got.Addrs, addrs("192.0.2.10", "2001:db8::10")) {
		t.Fatalf("records changed: %v", got)
	}
	// A prerequisite that fails on the server (the records changed between
	// the lookup and the update) is reported as a conflict, not applied.
	cur := Records{Name: "moodle.example.test.", TTL: 300, Addrs: addrs("192.0.2.10")}
	err = u.updateOnce(ctx, cur, Records{Name: cur.Name, TTL: 300, Addrs: addrs("198.51.100.1")})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale prerequisite: err = %v, want ErrConflict", err)
	}
	got, _ = u.Lookup(ctx, "moodle.example.test")
	if !sameAddrs(got.Addrs, addrs("192.0.2.10", "2001:db8::10")) {
		t.Fatalf("records changed by a failed prerequisite: %v", got)
	}
}

func TestPermanentErrors(t *testing.T) {
	wrongSecret := base64.StdEncoding.EncodeToString([]byte("not the secret shared with knot!"))
	cases := []struct {
		name string
		mod  func(*Config)
		fqdn string
		want map[dnstest.Kind]string // kind → error text
	}{
		{"wrong secret", func(c *Config) { c.Secret = wrongSecret }, "moodle.example.test",
			map[dnstest.Kind]string{dnstest.Knot: "BADSIG", dnstest.BIND: "BADSIG"}},
		{"unknown key", func(c *Config) { c.KeyName = "nobody." }, "moodle.example.test",
			map[dnstest.Kind]string{dnstest.Knot: "BADKEY", dnstest.BIND: "BADKEY"}},
		// Knot answers BADKEY when no ACL lets the key update the zone;
		// BIND answers REFUSED.
		{"zone without update rights", func(c *Config) { c.Zone = "frozen.test." }, "www.frozen.test",
			map[dnstest.Kind]string{dnstest.Knot: "BADKEY", dnstest.BIND: "REFUSED"}},
		{"zone not served", func(c *Config) { c.Zone = "elsewhere.test." }, "www.elsewhere.test",
			map[dnstest.Kind]string{dnstest.Knot: "not authoritative", dnstest.BIND: "not authoritative"}},
		{"name outside zone", nil, "www.elsewhere.test",
			map[dnstest.Kind]string{dnstest.Knot: "outside zone", dnstest.BIND: "outside zone"}},
	}
	for _, kind := range []dnstest.Kind{dnstest.Knot, dnstest.BIND} {
		t.Run(string(kind), func(t *testing.T) {
			s := server(t, kind)
			ctx := context.Background()
			for _, tc := range cases {
				u, changes, fs := updater(t, s, tc.mod)
				// Lookups are not signed, so they work; the update fails.
				cur, err := u.Lookup(ctx, tc.fqdn)
				if err == nil {
					err = u.Switch(ctx, tc.fqdn, cur.Addrs, addrs("198.51.100.1"), 0)
				}
				var want error = ErrTSIG
				switch tc.want[kind] {
				case "REFUSED":
					want = ErrRefused
				case "not authoritative", "outside zone":
					want = ErrNotZone
				}
				if !errors.Is(err, want) || !strings.Contains(err.Error(), tc.want[kind]) {
					t.Errorf("%s: err = %v, want %v mentioning %q", tc.name, err, want, tc.want[kind])
				}
				if len(fs.waits) != 0 {
					t.Errorf("%s: a permanent error was retried: waits %v", tc.name, fs.waits)
				}
				if want != ErrNotZone && (len(*changes) == 0 || (*changes)[len(*changes)-1].Result == "applied") {
					t.Errorf("%s: failure not audited: %+v", tc.name, *changes)
				}
			}
			u, _, _ := updater(t, s, nil)
			if got, _ := u.Lookup(ctx, "moodle.example.test"); !sameAddrs(got.Addrs, addrs("192.0.2.10", "2001:db8::10")) {
				t.Fatalf("records changed: %v", got)
			}
		})
	}
}

func TestUnreachableRetriesWithBackoff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	fs := &fakeSleep{}
	u, err := New(Config{Server: addr, Zone: "example.test", KeyName: "k", Secret: "c2VjcmV0", Attempts: 4, Sleep: fs.Sleep, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = u.Switch(context.Background(), "moodle.example.test", nil, addrs("198.51.100.1"), 0)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("err = %v", err)
	}
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	if len(fs.waits) != len(want) {
		t.Fatalf("waits %v, want %v", fs.waits, want)
	}
	for i := range want {
		if fs.waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", fs.waits, want)
		}
	}
}

// flaky is an in-process server that fails the first updates with SERVFAIL
// or by not answering, then applies them to an in-memory record set.
type flaky struct {
	mu       sync.Mutex
	failures int
	drop     bool // drop the reply of the first successful update
	updates  int
	records  []mdns.RR
}

func (f *flaky) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := new(mdns.Msg).SetReply(r)
	m.Authoritative = true
	if r.Opcode == mdns.OpcodeUpdate {
		f.updates++
		if f.failures > 0 {
			f.failures--
			m.Rcode = mdns.RcodeServerFailure
			_ = w.WriteMsg(m)
			return
		}
		// Check the prerequisite: the A set must equal the one in it.
		var pre []string
		for _, rr := range r.Answer {
			if rr.Header().Class == mdns.ClassINET {
				pre = append(pre, rr.(*mdns.A).A.String())
			}
		}
		var cur []string
		for _, rr := range f.records {
			cur = append(cur, rr.(*mdns.A).A.String())
		}
		if strings.Join(pre, ",") != strings.Join(cur, ",") {
			m.Rcode = mdns.RcodeNXRrset
		} else {
			f.records = nil
			for _, rr := range r.Ns {
				if rr.Header().Class == mdns.ClassINET {
					f.records = append(f.records, rr)
				}
			}
			if f.drop {
				f.drop = false
				return // the update landed, the answer is lost
			}
		}
		if t := r.IsTsig(); t != nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		_ = w.WriteMsg(m)
		return
	}
	if r.Question[0].Qtype == mdns.TypeA {
		m.Answer = append(m.Answer, f.records...)
	}
	_ = w.WriteMsg(m)
}

func startFlaky(t *testing.T, f *flaky) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{Listener: l, Handler: f, TsigSecret: map[string]string{"k.": "c2VjcmV0"},
		MsgAcceptFunc: func(mdns.Header) mdns.MsgAcceptAction { return mdns.MsgAccept }}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return l.Addr().String()
}

func TestTransientFailuresAreRetried(t *testing.T) {
	a, _ := mdns.NewRR("moodle.example.test. 300 IN A 192.0.2.10")
	f := &flaky{failures: 2, records: []mdns.RR{a}}
	addr := startFlaky(t, f)
	fs := &fakeSleep{}
	u, err := New(Config{Server: addr, Zone: "example.test", KeyName: "k", Secret: "c2VjcmV0", Attempts: 5, Sleep: fs.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Switch(context.Background(), "moodle.example.test", addrs("192.0.2.10"), addrs("198.51.100.1"), 0); err != nil {
		t.Fatal(err)
	}
	if f.updates != 3 || len(fs.waits) != 2 {
		t.Fatalf("updates %d, waits %v; want 3 updates after 2 SERVFAILs", f.updates, fs.waits)
	}
}

func TestLostAnswerCountsAsDone(t *testing.T) {
	a, _ := mdns.NewRR("moodle.example.test. 300 IN A 192.0.2.10")
	f := &flaky{drop: true, records: []mdns.RR{a}}
	addr := startFlaky(t, f)
	fs := &fakeSleep{}
	u, err := New(Config{Server: addr, Zone: "example.test", KeyName: "k", Secret: "c2VjcmV0", Attempts: 5, Sleep: fs.Sleep, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Switch(context.Background(), "moodle.example.test", addrs("192.0.2.10"), addrs("198.51.100.1"), 0); err != nil {
		t.Fatal(err)
	}
	// The second try's prerequisite fails (the first landed); the updater
	// sees the records already switched and reports success.
	if f.updates != 2 {
		t.Fatalf("updates %d, want 2", f.updates)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Server: "nohost", Zone: "z.", KeyName: "k", Secret: "s"},
		{Server: "127.0.0.1:53", KeyName: "k", Secret: "s"},
		{Server: "127.0.0.1:53", Zone: "z.", Secret: "s"},
		{Server: "127.0.0.1:53", Zone: "z.", KeyName: "k", Secret: "s", Net: "sctp"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := DefaultBackoff(i + 1); got != w {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}
