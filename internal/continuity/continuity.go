// Package continuity keeps a service reachable while its VMs move between
// sites. The executor calls a Switcher at each VM's switchover (after the
// destination runs, before the source is destroyed); the Coordinator, the
// Switcher refuge uses, tells every site gateway where the VM now answers
// and points the service's DNS name at the new site's gateway (package
// dns), so that clients holding the old record still arrive, through the
// old site's gateway, at the new place.
//
// Continuity failures are reported, never fatal: a VM that moved is better
// than a VM left in harm's way because a DNS server was unreachable.
package continuity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/continuity/gateway"
)

// Switcher is what the executor calls when a VM has switched over to its
// destination: after the destination runs, before the source is
// destroyed. An error means continuity is degraded (report it), not that
// the migration failed.
type Switcher interface {
	Switchover(ctx context.Context, vm, service, fromSite, toSite string) error
}

// Routes is a site gateway's routing API: *gateway.Gateway in process, or
// GatewayClient over HTTP.
type Routes interface {
	SetBackends(ctx context.Context, service string, backends []string) error
}

// DNS is the part of dns.Updater the Coordinator uses.
type DNS interface {
	Switch(ctx context.Context, name string, from, to []netip.Addr, ttl uint32) error
	LowerTTL(ctx context.Context, name string, ttl uint32) (dns.Records, error)
	SetTTL(ctx context.Context, name string, ttl uint32) (dns.Records, error)
}

// Site is one site's gateway.
type Site struct {
	// Gateway is the public address(es) of the site's gateway, the DNS
	// answer while the service runs there. Empty: the site has no gateway
	// and DNS points at the VM's own address.
	Gateway []netip.Addr
	// Routes reaches the site's gateway (nil without gateway).
	Routes Routes
}

// Service is one service reachable under a DNS name.
type Service struct {
	// FQDN is the service's DNS name.
	FQDN string
	// Route is the service's name in the gateways' configuration; empty:
	// the gateways do not carry the service.
	Route string
	// Backends are the host:port the service answers on at each site (one
	// VM, or several: the gateways spread connections over the healthy
	// ones).
	Backends map[string][]string
}

// Event is one continuity step, for the audit log.
type Event struct {
	Service string        `json:"service"`
	VM      string        `json:"vm"`
	Step    string        `json:"step"` // "gateway:<site>", "dns", "lower-ttl", "restore-ttl"
	Err     string        `json:"error,omitempty"`
	Took    time.Duration `json:"took_ns"`
}

// Coordinator is the Switcher: gateways first (so that no client is ever
// sent to a place that does not know the new route), then DNS.
type Coordinator struct {
	DNS      DNS // nil: gateways only
	Sites    map[string]Site
	Services map[string]Service
	// Report receives every step (optional).
	Report func(Event)

	mu        sync.Mutex
	savedTTLs map[string]uint32 // FQDN → TTL before LowerTTL
	// holders: service → the operations Prepare lowered its TTL for.
	holders map[string]map[string]bool
}

var _ Switcher = (*Coordinator)(nil)

// Switchover routes every gateway's entry for service to its backend at
// toSite, then switches the DNS name from fromSite's answer to toSite's.
// All steps are tried; the error joins the failures.
func (c *Coordinator) Switchover(ctx context.Context, vm, service, fromSite, toSite string) error {
	svc, ok := c.Services[service]
	if !ok {
		return fmt.Errorf("continuity: unknown service %q", service)
	}
	var errs []error
	for name, site := range c.Sites {
		if site.Routes == nil || svc.Route == "" {
			continue
		}
		backends := svc.Backends[toSite]
		if len(backends) == 0 {
			return fmt.Errorf("continuity: service %s has no backend at site %s", service, toSite)
		}
		start := time.Now()
		err := site.Routes.SetBackends(ctx, svc.Route, backends)
		c.report(Event{Service: service, VM: vm, Step: "gateway:" + name, Took: time.Since(start)}, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway at %s: %w", name, err))
		}
	}
	if c.DNS != nil && svc.FQDN != "" {
		from, err1 := c.answer(svc, fromSite)
		to, err2 := c.answer(svc, toSite)
		err := errors.Join(err1, err2)
		start := time.Now()
		if err == nil {
			err = c.DNS.Switch(ctx, svc.FQDN, from, to, 0)
		}
		c.report(Event{Service: service, VM: vm, Step: "dns", Took: time.Since(start)}, err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("continuity: switchover of %s (vm %s, %s → %s): %w", service, vm, fromSite, toSite, err)
	}
	return nil
}

// answer is the DNS answer for svc while it runs at site: the site's
// gateway, else the addresses of its backends there.
func (c *Coordinator) answer(svc Service, site string) ([]netip.Addr, error) {
	if s, ok := c.Sites[site]; ok && len(s.Gateway) > 0 {
		return s.Gateway, nil
	}
	bs := svc.Backends[site]
	if len(bs) == 0 {
		return nil, fmt.Errorf("no gateway and no backend at site %s", site)
	}
	var out []netip.Addr
	for _, b := range bs {
		ap, err := netip.ParseAddrPort(b)
		if err != nil {
			return nil, fmt.Errorf("backend %q at %s is not ip:port: %w", b, site, err)
		}
		if !slices.Contains(out, ap.Addr()) {
			out = append(out, ap.Addr())
		}
	}
	return out, nil
}

// LowerTTL lowers the TTL of the services' names before an evacuation and
// remembers their TTLs for RestoreTTL. A name whose TTL is ttl or lower
// already (another controller lowered it, or it was low) is left alone,
// and RestoreTTL leaves it alone too.
func (c *Coordinator) LowerTTL(ctx context.Context, services []string, ttl uint32) error {
	return c.eachName(services, "lower-ttl", func(fqdn string) error {
		old, err := c.DNS.LowerTTL(ctx, fqdn, ttl)
		if err == nil && old.TTL > ttl {
			c.mu.Lock()
			if c.savedTTLs == nil {
				c.savedTTLs = map[string]uint32{}
			}
			if _, seen := c.savedTTLs[fqdn]; !seen {
				c.savedTTLs[fqdn] = old.TTL
			}
			c.mu.Unlock()
		}
		return err
	})
}

// RestoreTTL puts back the TTLs LowerTTL saved.
func (c *Coordinator) RestoreTTL(ctx context.Context, services []string) error {
	return c.eachName(services, "restore-ttl", func(fqdn string) error {
		c.mu.Lock()
		ttl, ok := c.savedTTLs[fqdn]
		c.mu.Unlock()
		if !ok {
			return nil
		}
		_, err := c.DNS.SetTTL(ctx, fqdn, ttl)
		if err == nil {
			c.mu.Lock()
			delete(c.savedTTLs, fqdn)
			c.mu.Unlock()
		}
		return err
	})
}

func (c *Coordinator) eachName(services []string, step string, f func(fqdn string) error) error {
	if c.DNS == nil {
		return nil
	}
	var errs []error
	for _, s := range services {
		svc, ok := c.Services[s]
		if !ok || svc.FQDN == "" {
			continue
		}
		start := time.Now()
		err := f(svc.FQDN)
		c.report(Event{Service: s, Step: step, Took: time.Since(start)}, err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Coordinator) report(e Event, err error) {
	if err != nil {
		e.Err = err.Error()
	}
	if c.Report != nil {
		c.Report(e)
	}
}

// GatewayClient reaches a gateway's routes API over HTTP.
type GatewayClient struct {
	// URL of the gateway's admin endpoint, e.g. "http://10.0.0.1:9180".
	URL string
	// Token is the bearer token (admin_token_file on the gateway).
	Token string
	// HTTP is the client to use (default: one with a 10 s timeout).
	HTTP *http.Client
}

// SetBackends reports a switchover to the gateway.
func (g *GatewayClient) SetBackends(ctx context.Context, service string, backends []string) error {
	for _, b := range backends {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("gateway %s: backend %q: %w", g.URL, b, err)
		}
	}
	body, _ := json.Marshal(map[string][]string{"backends": backends})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, g.URL+"/v1/routes/"+service, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("gateway %s: %w", g.URL, err)
	}
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	hc := g.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("gateway %s: %w", g.URL, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gateway %s: route %s → %v: %s: %s", g.URL, service, backends, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Local adapts an in-process gateway to Routes.
func Local(g *gateway.Gateway) Routes { return localRoutes{g} }

type localRoutes struct{ g *gateway.Gateway }

func (l localRoutes) SetBackends(_ context.Context, service string, backends []string) error {
	_, err := l.g.SetBackends(service, backends)
	return err
}
