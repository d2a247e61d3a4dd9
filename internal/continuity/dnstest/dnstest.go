// Package dnstest starts real authoritative DNS servers — Knot DNS (knotd)
// and BIND (named) — for tests: each on a loopback high port, in its own
// directory, with a generated zone and a generated TSIG (hmac-sha256) key
// allowed to send dynamic updates (RFC 2136) to that zone.
//
// Require decides whether a missing server binary skips the test or, when
// REFUGE_INTEGRATION=1 (set by .ci/run), fails it.
package dnstest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Kind names a server implementation.
type Kind string

// The servers this package can start.
const (
	Knot Kind = "knot"
	BIND Kind = "bind"
)

// binary is the executable each kind needs and the Debian package with it.
func (k Kind) binary() (path, pkg string) {
	if k == BIND {
		return "/usr/sbin/named", "bind9"
	}
	return "/usr/sbin/knotd", "knot"
}

// Options describe the zone to serve.
type Options struct {
	// Zone is the zone's apex, e.g. "example.test." (default).
	Zone string
	// Records are zone-file lines added after the SOA and NS records,
	// with names relative to the zone, e.g. "www 300 IN A 192.0.2.1".
	Records []string
	// KeyName is the TSIG key's name (default "refuge-update.").
	KeyName string
	// ReadOnlyZone, when set, is a second zone served without any update
	// permission (to test refused updates).
	ReadOnlyZone string
}

// Server is a running authoritative server.
type Server struct {
	Kind Kind
	// Addr is the server's host:port on 127.0.0.1 (UDP and TCP).
	Addr string
	// Zone is the served zone, fully qualified.
	Zone string
	// KeyName and Secret (base64) are the TSIG key allowed to update Zone.
	KeyName, Secret string
	// Dir holds the configuration, zone file, journal and log.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// Require returns the path of kind's binary, or skips t when it is not
// installed — unless REFUGE_INTEGRATION=1, where a missing server fails t.
func Require(t testing.TB, kind Kind) string {
	t.Helper()
	path, pkg := kind.binary()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("%s not installed (%s): apt-get install -y %s", path, err, pkg)
		if os.Getenv("REFUGE_INTEGRATION") == "1" {
			t.Fatal("REFUGE_INTEGRATION=1 but " + msg)
		}
		t.Skip("integration test skipped: " + msg)
	}
	return path
}

// Start starts a server of the given kind in a fresh directory under dir
// and waits until it answers for the zone. The caller must Close it.
func Start(ctx context.Context, kind Kind, dir string, opts Options) (*Server, error) {
	if opts.Zone == "" {
		opts.Zone = "example.test."
	}
	if opts.KeyName == "" {
		opts.KeyName = "refuge-update."
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("dnstest: generating the TSIG secret: %w", err)
	}
	s := &Server{
		Kind:    kind,
		Zone:    dns.Fqdn(opts.Zone),
		KeyName: dns.Fqdn(opts.KeyName),
		Secret:  base64.StdEncoding.EncodeToString(secret),
		Dir:     dir,
		done:    make(chan struct{}),
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(ctx, opts, port); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *Server) start(ctx context.Context, opts Options, port int) error {
	s.done = make(chan struct{})
	s.once = sync.Once{}
	zoneFile := filepath.Join(s.Dir, strings.TrimSuffix(s.Zone, ".")+".zone")
	if err := os.WriteFile(zoneFile, []byte(zoneText(s.Zone, opts.Records)), 0o644); err != nil {
		return fmt.Errorf("dnstest: writing the zone file: %w", err)
	}
	roZone, roFile := "", ""
	if opts.ReadOnlyZone != "" {
		roZone = dns.Fqdn(opts.ReadOnlyZone)
		roFile = filepath.Join(s.Dir, strings.TrimSuffix(roZone, ".")+".zone")
		if err := os.WriteFile(roFile, []byte(zoneText(roZone, []string{"www 300 IN A 192.0.2.99"})), 0o644); err != nil {
			return fmt.Errorf("dnstest: writing the zone file: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "db"), 0o755); err != nil {
		return fmt.Errorf("dnstest: creating the database directory: %w", err)
	}
	conf := filepath.Join(s.Dir, string(s.Kind)+".conf")
	var text string
	var args []string
	path, _ := s.Kind.binary()
	switch s.Kind {
	case Knot:
		text = knotConf(s, zoneFile, port)
		if roZone != "" {
			text += fmt.Sprintf("  - domain: %s\n    file: %q\n", roZone, roFile)
		}
		args = []string{"-c", conf}
	case BIND:
		text = bindConf(s, zoneFile, port)
		if roZone != "" {
			text += fmt.Sprintf("zone %q {\n    type primary;\n    file %q;\n};\n", roZone, roFile)
		}
		args = []string{"-g", "-n", "1", "-4", "-c", conf}
	default:
		return fmt.Errorf("dnstest: unknown server kind %q", s.Kind)
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return fmt.Errorf("dnstest: writing %s: %w", conf, err)
	}
	logf, err := os.Create(filepath.Join(s.Dir, string(s.Kind)+".log"))
	if err != nil {
		return fmt.Errorf("dnstest: creating the server log: %w", err)
	}
	s.cmd = exec.Command(path, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("dnstest: starting %s: %w", path, err)
	}
	go func() {
		_ = s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx, 15*time.Second); err != nil {
		_ = s.Close()
		return fmt.Errorf("dnstest: %s on %s: %w\n%s", s.Kind, s.Addr, err, s.Log())
	}
	return nil
}

// waitReady polls the zone's SOA until the server answers authoritatively.
func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
	m := new(dns.Msg).SetQuestion(s.Zone, dns.TypeSOA)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r, _, err := c.ExchangeContext(ctx, m, s.Addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering for %s after %s (last: %v)", s.Zone, limit, err)
		}
		select {
		case <-s.done:
			return errors.New("server exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// StartT is Start for a test: it skips or fails t as Require does, starts
// the server in a directory of t's, fails t when it does not start within
// 30 s, and closes it when t ends (logging the server's log if t failed).
func StartT(t testing.TB, kind Kind, opts Options) *Server {
	t.Helper()
	Require(t, kind)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, kind, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		if t.Failed() {
			t.Logf("%s log:\n%s", kind, s.Log())
		}
	})
	return s
}

// ContinuityDNS returns the dns section of a continuity file
// (continuity.LoadConfig) that sends refuge's updates for zone to s, as a
// drill (s's zone as the drill zone), and writes the TSIG secret it names
// to the file tsig.secret in dir, where the continuity file must be.
func (s *Server) ContinuityDNS(dir, zone string) (string, error) {
	if err := os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte(s.Secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dnstest: writing the TSIG secret: %w", err)
	}
	return fmt.Sprintf("dns:\n  server: %q\n  zone: %s\n  drill_zone: %s\n  key_name: %s\n  secret_file: tsig.secret\n",
		s.Addr, dns.Fqdn(zone), s.Zone, s.KeyName), nil
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, string(s.Kind)+".log"))
	return string(b)
}

// Close stops the server and waits for it to exit.
func (s *Server) Close() error {
	s.once.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			Stop(s.cmd.Process, s.done, os.Interrupt, 5*time.Second)
		}
	})
	return nil
}

// Stop sends sig to p and waits until done is closed (by whoever waits
// for p), killing p if it has not exited within grace.
func Stop(p *os.Process, done <-chan struct{}, sig os.Signal, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	_ = p.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = p.Kill()
		<-done
	}
}

// freePort finds a port free for both TCP and UDP on 127.0.0.1.
func freePort() (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("dnstest: finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("dnstest: no port free for both TCP and UDP")
}

func zoneText(zone string, records []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 300\n", zone)
	fmt.Fprintf(&b, "@ 300 IN SOA ns1 hostmaster 1 3600 600 86400 60\n")
	fmt.Fprintf(&b, "@ 300 IN NS ns1\nns1 300 IN A 127.0.0.1\n")
	for _, r := range records {
		b.WriteString(r + "\n")
	}
	return b.String()
}

func knotConf(s *Server, zoneFile string, port int) string {
	return fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
    background-workers: 1
    udp-workers: 1
    tcp-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s/db"
key:
  - id: %[3]s
    algorithm: hmac-sha256
    secret: %[4]s
acl:
  - id: refuge-update
    key: %[3]s
    action: update
template:
  - id: default
    storage: "%[1]s"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: %[5]s
    file: "%[6]s"
    acl: refuge-update
`, s.Dir, port, s.KeyName, s.Secret, s.Zone, zoneFile)
}

func bindConf(s *Server, zoneFile string, port int) string {
	return fmt.Sprintf(`options {
    directory "%[1]s";
    pid-file "%[1]s/named.pid";
    session-keyfile "%[1]s/session.key";
    managed-keys-directory "%[1]s";
    listen-on port %[2]d { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    allow-query { any; };
};
controls { };
key "%[3]s" {
    algorithm hmac-sha256;
    secret "%[4]s";
};
zone "%[5]s" {
    type primary;
    file "%[6]s";
    allow-update { key "%[3]s"; };
};
`, s.Dir, port, s.KeyName, s.Secret, s.Zone, zoneFile)
}
