// Package dns keeps a service's name pointing at the right place while its
// VMs move between sites: it sends dynamic updates (RFC 2136) signed with a
// TSIG key (hmac-sha256, RFC 8945) to the zone's authoritative server.
//
// The steps of an evacuation are
//
//   - LowerTTL before the move, so resolvers forget the old address quickly
//     (it only helps once the old, longer TTL has run out);
//   - Switch at the service's switchover: every A and AAAA record of the name
//     is replaced in ONE update message whose prerequisite is that the old
//     record set is still exactly there, so either all records switch or none
//     do, and two controllers cannot fight over the name;
//   - SetTTL afterwards, to restore the usual TTL.
//
// Every step is idempotent (a step whose result is already in place is a
// no-op), is retried with back-off on transient failures (timeouts, refused
// connections, SERVFAIL), fails at once with a clear error on permanent ones
// (ErrTSIG, ErrRefused, ErrNotZone, ErrConflict), verifies its result by
// querying the server, and reports each change to an audit function.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Errors a caller can tell apart with errors.Is.
var (
	// ErrTSIG: the server rejected the request's signature (BADKEY: the
	// key name is unknown to it; BADSIG: the secret differs; BADTIME: the
	// clocks differ by more than the fudge), or the response's signature
	// did not verify.
	ErrTSIG = errors.New("TSIG authentication failed")
	// ErrRefused: the server refused the update (no update ACL for this
	// key and zone, or updates disabled).
	ErrRefused = errors.New("update refused by the server")
	// ErrNotZone: the name is not inside the zone, or the server is not
	// authoritative for the zone (NOTZONE/NOTAUTH).
	ErrNotZone = errors.New("name not in a zone served by this server")
	// ErrConflict: the records are not what the caller expected (someone
	// else changed them); nothing was changed.
	ErrConflict = errors.New("records changed by someone else")
	// ErrUnreachable: the server did not answer within all attempts.
	ErrUnreachable = errors.New("DNS server unreachable")
	// ErrVerify: the server accepted the update but a query afterwards
	// returned something else.
	ErrVerify = errors.New("verification query disagrees")
)

// Config says which server and key to use and how to retry.
type Config struct {
	// Server is the authoritative server's host:port.
	Server string
	// Zone is the zone to update, e.g. "example.ac.jp.".
	Zone string
	// KeyName and Secret (base64) are the TSIG key; the algorithm is
	// hmac-sha256.
	KeyName, Secret string
	// Net is "tcp" (default) or "udp".
	Net string
	// Timeout bounds each exchange with the server (default 2 s).
	Timeout time.Duration
	// Attempts bounds the tries of each step on transient errors (default 5).
	Attempts int
	// Backoff gives the wait before retry n (1, 2, …); default
	// DefaultBackoff.
	Backoff func(retry int) time.Duration
	// Sleep waits d or until ctx ends (default: a timer); tests inject one
	// that does not sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for TSIG time stamps (default time.Now).
	Now func() time.Time
	// Audit, when set, is told about every change sent and its outcome.
	Audit func(Change)
}

// DefaultBackoff doubles from 200 ms up to 5 s.
func DefaultBackoff(retry int) time.Duration {
	d := 200 * time.Millisecond
	for i := 1; i < retry && d < 5*time.Second; i++ {
		d *= 2
	}
	return min(d, 5*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Records is the address record set of one name.
type Records struct {
	// Name is fully qualified.
	Name string `json:"name"`
	// TTL is the record set's TTL in seconds (0 when there are no records).
	TTL uint32 `json:"ttl"`
	// Addrs are the A and AAAA addresses, sorted.
	Addrs []netip.Addr `json:"addrs"`
}

func (r Records) String() string {
	s := make([]string, len(r.Addrs))
	for i, a := range r.Addrs {
		s[i] = a.String()
	}
	return fmt.Sprintf("%s ttl %d [%s]", r.Name, r.TTL, strings.Join(s, " "))
}

// sameAddrs reports whether a and b hold the same addresses (any order).
func sameAddrs(a, b []netip.Addr) bool {
	return slices.Equal(sortedAddrs(a), sortedAddrs(b))
}

func sortedAddrs(a []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(a))
	for i, x := range a {
		out[i] = x.Unmap()
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return slices.Compact(out)
}

// Change is one audited update.
type Change struct {
	Op     string  `json:"op"` // "set-ttl" or "switch"
	Zone   string  `json:"zone"`
	Server string  `json:"server"`
	From   Records `json:"from"`
	To     Records `json:"to"`
	// Result is "applied", "already-applied" or the error.
	Result  string    `json:"result"`
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
}

// Updater sends signed updates to one zone on one server. It is safe for
// concurrent use.
type Updater struct {
	cfg Config
}

// New checks cfg and returns an Updater.
func New(cfg Config) (*Updater, error) {
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		return nil, fmt.Errorf("dns: server %q must be host:port: %w", cfg.Server, err)
	}
	if cfg.Zone == "" {
		return nil, errors.New("dns: zone is required")
	}
	if _, ok := mdns.IsDomainName(cfg.Zone); !ok {
		return nil, fmt.Errorf("dns: zone %q is not a domain name", cfg.Zone)
	}
	if cfg.KeyName == "" || cfg.Secret == "" {
		return nil, errors.New("dns: TSIG key name and secret are required (see `refuge gateway --help` for generating one)")
	}
	cfg.Zone = mdns.CanonicalName(cfg.Zone)
	cfg.KeyName = mdns.CanonicalName(cfg.KeyName)
	if cfg.Net == "" {
		cfg.Net = "tcp"
	}
	if cfg.Net != "tcp" && cfg.Net != "udp" {
		return nil, fmt.Errorf("dns: net %q must be tcp or udp", cfg.Net)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Updater{cfg: cfg}, nil
}

// fqdn checks that name lies inside the zone and returns it canonical.
func (u *Updater) fqdn(name string) (string, error) {
	name = mdns.CanonicalName(name)
	if _, ok := mdns.IsDomainName(name); !ok {
		return "", fmt.Errorf("dns: %q is not a domain name", name)
	}
	if !mdns.IsSubDomain(u.cfg.Zone, name) {
		return "", fmt.Errorf("dns: %s is outside zone %s: %w", name, u.cfg.Zone, ErrNotZone)
	}
	return name, nil
}

// Lookup asks the server for name's A and AAAA records.
func (u *Updater) Lookup(ctx context.Context, name string) (Records, error) {
	name, err := u.fqdn(name)
	if err != nil {
		return Records{}, err
	}
	var out Records
	err = u.retry(ctx, "lookup "+name, func(ctx context.Context) error {
		out, err = u.lookupOnce(ctx, name)
		return err
	})
	return out, err
}

func (u *Updater) lookupOnce(ctx context.Context, name string) (Records, error) {
	out := Records{Name: name}
	for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
		m := new(mdns.Msg).SetQuestion(name, qt)
		m.RecursionDesired = false
		r, err := u.exchange(ctx, m, false)
		if err != nil {
			return Records{}, err
		}
		if r.Rcode == mdns.RcodeRefused || r.Rcode == mdns.RcodeNotAuth || (r.Rcode == mdns.RcodeSuccess && !r.Authoritative) {
			return Records{}, permanent(fmt.Errorf("%w: %s is not authoritative for %s (answer %s)", ErrNotZone, u.cfg.Server, u.cfg.Zone, mdns.RcodeToString[r.Rcode]))
		}
		if r.Rcode != mdns.RcodeSuccess && r.Rcode != mdns.RcodeNameError {
			return Records{}, rcodeError(r)
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *mdns.A:
				out.Addrs = append(out.Addrs, netip.AddrFrom4([4]byte(rr.A.To4())))
				out.TTL = rr.Hdr.Ttl
			case *mdns.AAAA:
				out.Addrs = append(out.Addrs, netip.AddrFrom16([16]byte(rr.AAAA.To16())))
				out.TTL = rr.Hdr.Ttl
			}
		}
	}
	out.Addrs = sortedAddrs(out.Addrs)
	return out, nil
}

// existing looks name up and requires address records.
func (u *Updater) existing(ctx context.Context, name string) (Records, error) {
	cur, err := u.Lookup(ctx, name)
	if err != nil {
		return Records{}, err
	}
	if len(cur.Addrs) == 0 {
		return cur, fmt.Errorf("dns: set TTL of %s: the name has no A/AAAA records in zone %s", cur.Name, u.cfg.Zone)
	}
	return cur, nil
}

// SetTTL sets the TTL of name's address records, keeping the addresses,
// and returns the records as they were. A name with no address records is
// an error; a name whose TTL is already ttl is left alone.
func (u *Updater) SetTTL(ctx context.Context, name string, ttl uint32) (Records, error) {
	cur, err := u.existing(ctx, name)
	if err != nil {
		return cur, err
	}
	want := Records{Name: cur.Name, TTL: ttl, Addrs: cur.Addrs}
	return cur, u.apply(ctx, "set-ttl", cur, want)
}

// LowerTTL lowers the TTL of name's address records to at most ttl and
// returns the records as they were (keep their TTL to restore it with
// SetTTL after the move).
func (u *Updater) LowerTTL(ctx context.Context, name string, ttl uint32) (Records, error) {
	cur, err := u.existing(ctx, name)
	if err != nil {
		return cur, err
	}
	if cur.TTL <= ttl {
		u.audit("set-ttl", cur, cur, "already-applied", 0)
		return cur, nil
	}
	return cur, u.apply(ctx, "set-ttl", cur, Records{Name: cur.Name, TTL: ttl, Addrs: cur.Addrs})
}

// Switch replaces name's A/AAAA records, which must be exactly from, by to
// (TTL ttl; 0 keeps the current TTL) in one update. If the records already
// are to, it does nothing; if they are neither from nor to, it returns
// ErrConflict and changes nothing.
func (u *Updater) Switch(ctx context.Context, name string, from, to []netip.Addr, ttl uint32) error {
	if len(to) == 0 {
		return fmt.Errorf("dns: switch %s: no new address given", name)
	}
	for _, a := range to {
		if !a.IsValid() {
			return fmt.Errorf("dns: switch %s: invalid new address", name)
		}
	}
	cur, err := u.Lookup(ctx, name)
	if err != nil {
		return err
	}
	if ttl == 0 {
		ttl = cur.TTL
	}
	want := Records{Name: cur.Name, TTL: ttl, Addrs: sortedAddrs(to)}
	if !sameAddrs(cur.Addrs, from) && !sameAddrs(cur.Addrs, to) {
		err := fmt.Errorf("dns: switch %s: the server holds %v, expected %v (or already %v): %w", cur.Name, cur.Addrs, sortedAddrs(from), want.Addrs, ErrConflict)
		u.audit("switch", cur, want, err.Error(), 0)
		return err
	}
	return u.apply(ctx, "switch", cur, want)
}

// apply moves the records from cur to want in one update message with cur
// as prerequisite, retrying transient failures; a failed prerequisite is
// re-checked, so an update that landed but whose answer was lost counts as
// done.
func (u *Updater) apply(ctx context.Context, op string, cur, want Records) error {
	if sameAddrs(cur.Addrs, want.Addrs) && (cur.TTL == want.TTL || len(want.Addrs) == 0) {
		u.audit(op, cur, want, "already-applied", 0)
		return nil
	}
	attempt := 0
	err := u.retry(ctx, op+" "+cur.Name, func(ctx context.Context) error {
		attempt++
		err := u.updateOnce(ctx, cur, want)
		if errors.Is(err, ErrConflict) {
			now, lerr := u.lookupOnce(ctx, cur.Name)
			if lerr != nil {
				return lerr
			}
			if sameAddrs(now.Addrs, want.Addrs) && now.TTL == want.TTL {
				return nil
			}
			return fmt.Errorf("%w: the server now holds %v", err, now)
		}
		return err
	})
	if err != nil {
		u.audit(op, cur, want, err.Error(), attempt)
		return fmt.Errorf("dns: %s %s on %s (zone %s): %w", op, cur.Name, u.cfg.Server, u.cfg.Zone, err)
	}
	if err := u.verify(ctx, want); err != nil {
		u.audit(op, cur, want, err.Error(), attempt)
		return err
	}
	u.audit(op, cur, want, "applied", attempt)
	return nil
}

// verify queries the server and compares with want.
func (u *Updater) verify(ctx context.Context, want Records) error {
	got, err := u.Lookup(ctx, want.Name)
	if err != nil {
		return fmt.Errorf("dns: verifying %s: %w", want.Name, err)
	}
	if !sameAddrs(got.Addrs, want.Addrs) || got.TTL != want.TTL {
		return fmt.Errorf("dns: verifying %s: server answers %v, want %v: %w", want.Name, got, want, ErrVerify)
	}
	return nil
}

// rrs builds the A/AAAA records of r, one slice per type.
func rrs(r Records, ttl uint32) (a, aaaa []mdns.RR) {
	for _, ad := range r.Addrs {
		if ad.Is4() {
			a = append(a, &mdns.A{Hdr: mdns.RR_Header{Name: r.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl}, A: ad.AsSlice()})
		} else {
			aaaa = append(aaaa, &mdns.AAAA{Hdr: mdns.RR_Header{Name: r.Name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: ttl}, AAAA: ad.AsSlice()})
		}
	}
	return a, aaaa
}

// updateMsg builds the one update message moving cur to want.
func (u *Updater) updateMsg(cur, want Records) *mdns.Msg {
	m := new(mdns.Msg).SetUpdate(u.cfg.Zone)
	// Prerequisites: each type's record set is exactly cur's (value
	// dependent, RFC 2136 §2.4.2), or absent (§2.4.3).
	preA, preAAAA := rrs(cur, 0)
	for _, set := range []struct {
		rrs []mdns.RR
		t   uint16
	}{{preA, mdns.TypeA}, {preAAAA, mdns.TypeAAAA}} {
		if len(set.rrs) > 0 {
			m.Used(set.rrs)
		} else {
			m.RRsetNotUsed([]mdns.RR{&mdns.ANY{Hdr: mdns.RR_Header{Name: cur.Name, Rrtype: set.t}}})
		}
	}
	// Updates: delete both record sets, add the new records.
	m.RemoveRRset([]mdns.RR{
		&mdns.ANY{Hdr: mdns.RR_Header{Name: cur.Name, Rrtype: mdns.TypeA}},
		&mdns.ANY{Hdr: mdns.RR_Header{Name: cur.Name, Rrtype: mdns.TypeAAAA}},
	})
	newA, newAAAA := rrs(want, want.TTL)
	m.Insert(append(newA, newAAAA...))
	m.SetTsig(u.cfg.KeyName, mdns.HmacSHA256, 300, u.cfg.Now().Unix())
	return m
}

func (u *Updater) updateOnce(ctx context.Context, cur, want Records) error {
	r, err := u.exchange(ctx, u.updateMsg(cur, want), true)
	if err != nil {
		return err
	}
	if r.Rcode != mdns.RcodeSuccess {
		return rcodeError(r)
	}
	return nil
}

// exchange sends m once, with the per-exchange timeout.
func (u *Updater) exchange(ctx context.Context, m *mdns.Msg, signed bool) (*mdns.Msg, error) {
	c := &mdns.Client{Net: u.cfg.Net, Timeout: u.cfg.Timeout}
	if signed {
		c.TsigSecret = map[string]string{u.cfg.KeyName: u.cfg.Secret}
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, u.cfg.Server)
	if r != nil {
		if t := r.IsTsig(); t != nil && t.Error != mdns.RcodeSuccess {
			return r, permanent(fmt.Errorf("%w: server says %s for key %s (%s)", ErrTSIG, mdns.RcodeToString[int(t.Error)], u.cfg.KeyName, tsigHint(t.Error)))
		}
		if r.Rcode == mdns.RcodeNotAuth && signed {
			return r, permanent(fmt.Errorf("%w: server answers NOTAUTH to key %s", ErrTSIG, u.cfg.KeyName))
		}
	}
	if err != nil {
		if errors.Is(err, mdns.ErrSig) || errors.Is(err, mdns.ErrSecret) || errors.Is(err, mdns.ErrTime) {
			return r, permanent(fmt.Errorf("%w: the response's signature: %v", ErrTSIG, err))
		}
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, permanent(err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, u.cfg.Server, err)
	}
	return r, nil
}

// tsigHint says what to check for a TSIG error code.
func tsigHint(code uint16) string {
	switch code {
	case mdns.RcodeBadSig:
		return "the secret differs from the server's: copy it again"
	case mdns.RcodeBadKey:
		return "the server does not know a key by this name, or has no update rule for it on this zone"
	case mdns.RcodeBadTime:
		return "the clocks of this host and the server differ by more than 5 minutes"
	}
	return "check the key name, algorithm hmac-sha256 and secret"
}

// rcodeError turns an unsuccessful answer into an error; permanent ones
// are marked so that they are not retried.
func rcodeError(r *mdns.Msg) error {
	name := mdns.RcodeToString[r.Rcode]
	switch r.Rcode {
	case mdns.RcodeRefused:
		return permanent(fmt.Errorf("%w (REFUSED): the server's update policy for the zone does not allow this key", ErrRefused))
	case mdns.RcodeNotZone, mdns.RcodeNotAuth:
		return permanent(fmt.Errorf("%w (%s)", ErrNotZone, name))
	case mdns.RcodeNXRrset, mdns.RcodeYXRrset, mdns.RcodeYXDomain, mdns.RcodeNameError:
		return permanent(fmt.Errorf("%w (prerequisite failed: %s)", ErrConflict, name))
	case mdns.RcodeServerFailure:
		return fmt.Errorf("server failure (SERVFAIL)")
	default:
		return permanent(fmt.Errorf("server answered %s", name))
	}
}

// permanentError marks an error not worth retrying.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func permanent(err error) error { return permanentError{err} }

// retry runs f up to Attempts times, waiting Backoff between tries, until
// it succeeds or fails permanently.
func (u *Updater) retry(ctx context.Context, what string, f func(context.Context) error) error {
	var err error
	for try := 1; ; try++ {
		err = f(ctx)
		var p permanentError
		if err == nil {
			return nil
		}
		if errors.As(err, &p) {
			return p.err
		}
		if try >= u.cfg.Attempts {
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, try, err)
		}
		if serr := u.cfg.Sleep(ctx, u.cfg.Backoff(try)); serr != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, serr, err)
		}
	}
}

func (u *Updater) audit(op string, from, to Records, result string, attempt int) {
	if u.cfg.Audit == nil {
		return
	}
	u.cfg.Audit(Change{Op: op, Zone: u.cfg.Zone, Server: u.cfg.Server, From: from, To: to, Result: result, Attempt: attempt, At: u.cfg.Now()})
}
