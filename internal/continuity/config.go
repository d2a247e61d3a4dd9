package continuity

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// Environment variables holding secrets when the configuration names no
// file for them (secrets never come from the command line).
const (
	// EnvTSIGSecret holds the TSIG key's base64 secret.
	EnvTSIGSecret = "REFUGE_TSIG_SECRET"
	// EnvGatewayToken holds the bearer token of every gateway without a
	// token_file.
	EnvGatewayToken = "REFUGE_GATEWAY_TOKEN"
)

// DefaultLoweredTTL is the TTL (seconds) of the services' records during an
// evacuation unless the configuration says otherwise.
const DefaultLoweredTTL = 5

// Config is a continuity configuration document (`refuge evacuate
// --continuity FILE`): where the zone's server and key are, how to reach
// each site's gateway, and where each service answers at each site. The
// federation says the rest: sites' gateway addresses (sites[i].gateway) and
// services' names and ports (services[i].fqdn, services[i].port).
type Config struct {
	// DNS is the zone's authoritative server (nil: gateways only).
	DNS *DNSConfig `json:"dns,omitempty"`
	// Gateways are the sites' gateways' admin endpoints, by site name.
	Gateways map[string]GatewayConfig `json:"gateways,omitempty"`
	// Services are the services the gateways carry, by service name.
	Services map[string]ServiceConfig `json:"services,omitempty"`
	// LoweredTTL is the TTL, in seconds, of the services' records from the
	// start of an evacuation to its end (default DefaultLoweredTTL).
	LoweredTTL uint32 `json:"lowered_ttl,omitempty"`
}

// DNSConfig names the zone's server and the TSIG key.
type DNSConfig struct {
	// Server is the authoritative server's host:port.
	Server string `json:"server"`
	// Zone holds the services' names, e.g. "example.ac.jp.".
	Zone string `json:"zone"`
	// KeyName is the TSIG key's name (hmac-sha256).
	KeyName string `json:"key_name"`
	// SecretFile holds the key's base64 secret (relative to the
	// configuration file); without it, EnvTSIGSecret.
	SecretFile string `json:"secret_file,omitempty"`
	// Net is "tcp" (default) or "udp".
	Net string `json:"net,omitempty"`
	// Timeout bounds each exchange with the server (default 2s).
	Timeout model.Duration `json:"timeout,omitempty"`
	// DrillZone is the zone a drill updates instead of Zone, on the same
	// server with the same key: a service "moodle.example.ac.jp." is
	// drilled as "moodle.drill.example.ac.jp.". A drill never touches
	// Zone nor any gateway.
	DrillZone string `json:"drill_zone,omitempty"`
}

// GatewayConfig reaches one site's gateway (`refuge gateway`).
type GatewayConfig struct {
	// AdminURL is the gateway's admin endpoint, e.g. "http://10.0.1.1:9180".
	AdminURL string `json:"admin_url"`
	// TokenFile holds the gateway's admin token (its admin_token_file,
	// relative to this configuration file); without it, EnvGatewayToken.
	TokenFile string `json:"token_file,omitempty"`
}

// ServiceConfig says where a service's VM answers at each site.
type ServiceConfig struct {
	// Route is the service's name in the gateways' configuration
	// (default: the service's name).
	Route string `json:"route,omitempty"`
	// Backend is the VM's address at every site (ip or ip:port; the
	// port defaults to the service's port): with an L2 extension the VM
	// keeps its address wherever it runs. Several addresses, separated
	// by commas, are several backends: the gateways spread new
	// connections over those that pass their health checks.
	Backend Addrs `json:"backend,omitempty"`
	// Backends override Backend per site (each one or more addresses).
	Backends map[string]Addrs `json:"backends,omitempty"`
}

// Addrs is one address or several separated by commas
// ("10.2.0.20:443, 10.2.0.21:443").
type Addrs []string

// UnmarshalText splits s at commas; an empty item is an error.
func (a *Addrs) UnmarshalText(s []byte) error {
	var out Addrs
	for item := range strings.SplitSeq(string(s), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return fmt.Errorf("%q: an empty address (give ip[:port], several separated by commas)", s)
		}
		out = append(out, item)
	}
	*a = out
	return nil
}

// MarshalText joins the addresses with commas.
func (a Addrs) MarshalText() ([]byte, error) { return []byte(strings.Join(a, ", ")), nil }

// LoadConfig reads and checks a continuity configuration; relative file
// names in it are taken from the file's directory.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("continuity config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("continuity config %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if c.DNS != nil {
		rel(&c.DNS.SecretFile)
	}
	for site, g := range c.Gateways {
		rel(&g.TokenFile)
		c.Gateways[site] = g
	}
	return c, nil
}

// ParseConfig decodes a configuration document strictly and checks what
// can be checked without the federation, every problem with its path.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	err := strictyaml.Decode(data, &c)
	if _, fields := err.(validate.List); err != nil && !fields {
		return nil, err
	}
	if err := validate.Join(err, c.Validate()); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the document on its own (Build checks it against the
// federation).
func (c *Config) Validate() error {
	var errs validate.Errors
	if d := c.DNS; d != nil {
		if _, _, err := net.SplitHostPort(d.Server); err != nil {
			errs.Addf("dns.server", "%q must be host:port of the zone's authoritative server", d.Server)
		}
		checkZone(&errs, "dns.zone", d.Zone, true)
		validate.Required(&errs, "dns.key_name", d.KeyName)
		if d.Net != "" && d.Net != "tcp" && d.Net != "udp" {
			errs.Addf("dns.net", "%q must be tcp or udp", d.Net)
		}
		validate.AtLeast(&errs, "dns.timeout", d.Timeout.D(), 0)
		if checkZone(&errs, "dns.drill_zone", d.DrillZone, false) && mdns.CanonicalName(d.DrillZone) == mdns.CanonicalName(d.Zone) {
			errs.Addf("dns.drill_zone", "must differ from dns.zone: a drill must not update the production zone")
		}
	}
	for _, site := range slices.Sorted(maps.Keys(c.Gateways)) {
		p := validate.Field("gateways", site)
		u, err := url.Parse(c.Gateways[site].AdminURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.Addf(validate.Field(p, "admin_url"), "%q must be the gateway's admin URL, e.g. http://10.0.1.1:9180", c.Gateways[site].AdminURL)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		p := validate.Field("services", name)
		if len(s.Backend) == 0 && len(s.Backends) == 0 {
			errs.Addf(p, "needs backend (the VM's address at every site) or backends (per site)")
		}
		checkBackends(&errs, validate.Field(p, "backend"), s.Backend)
		for _, site := range slices.Sorted(maps.Keys(s.Backends)) {
			checkBackends(&errs, validate.Field(validate.Field(p, "backends"), site), s.Backends[site])
		}
	}
	return errs.Err()
}

// checkZone records a problem unless zone is a domain name (or empty and
// not required), and reports whether it is a set, valid name.
func checkZone(errs *validate.Errors, path, zone string, required bool) bool {
	if zone == "" {
		if required {
			validate.Required(errs, path, zone)
		}
		return false
	}
	if _, ok := mdns.IsDomainName(zone); !ok || strings.Contains(zone, "..") {
		errs.Addf(path, "%q is not a domain name", zone)
		return false
	}
	return true
}

// checkBackends records a problem for each address of bs that is not an
// IP address, optionally with a port, and for one listed twice.
func checkBackends(errs *validate.Errors, path string, bs Addrs) {
	for i, b := range bs {
		if slices.Contains(bs[:i], b) {
			errs.Addf(path, "%q is listed twice", b)
		}
		if _, err := netip.ParseAddr(b); err == nil {
			continue
		}
		if _, err := netip.ParseAddrPort(b); err != nil {
			errs.Addf(path, "%q must be ip or ip:port (IPv6 with a port: [addr]:port)", b)
		}
	}
}

// BuildOptions adjust Build.
type BuildOptions struct {
	// Drill builds a Coordinator for a drill: DNS updates go to
	// dns.drill_zone only (required), and no gateway is told anything.
	Drill bool
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Report receives every continuity step (Coordinator.Report).
	Report func(Event)
	// Audit receives every DNS change (dns.Config.Audit).
	Audit func(dns.Change)
	// DNS adjusts the updater's configuration before it is created
	// (tests: back-off and sleep).
	DNS func(*dns.Config)
}

// Build checks cfg against the federation and returns the Coordinator for
// it, with every problem reported at once with its path: "continuity …"
// for the configuration's fields, "federation …" for the federation's.
func Build(fed *model.Federation, cfg *Config, o BuildOptions) (*Coordinator, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	var cerrs, ferrs validate.Errors
	sites := make([]string, len(fed.Sites))
	for i, s := range fed.Sites {
		sites[i] = s.Name
	}
	svcNames := make([]string, len(fed.Services))
	for i, s := range fed.Services {
		svcNames[i] = s.Name
	}
	for _, site := range slices.Sorted(maps.Keys(cfg.Gateways)) {
		known(&cerrs, validate.Field("gateways", site), "site", site, sites)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		p := validate.Field("services", name)
		known(&cerrs, p, "service", name, svcNames)
		for _, site := range slices.Sorted(maps.Keys(cfg.Services[name].Backends)) {
			known(&cerrs, validate.Field(validate.Field(p, "backends"), site), "site", site, sites)
		}
	}
	c := &Coordinator{Sites: map[string]Site{}, Services: map[string]Service{}, Report: o.Report}
	if d := cfg.DNS; o.Drill && (d == nil || d.DrillZone == "") {
		cerrs.Addf("dns.drill_zone", "a drill needs a zone of its own on the DNS server (e.g. drill.example.ac.jp.); it never updates dns.zone")
	}
	for i, s := range fed.Sites {
		site := Site{}
		for j, a := range s.Gateway {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				ferrs.Addf(validate.Index(validate.Field(validate.Index("sites", i), "gateway"), j), "%q is not an IP address", a)
				continue
			}
			site.Gateway = append(site.Gateway, ip)
		}
		if g, ok := cfg.Gateways[s.Name]; ok && !o.Drill {
			token, err := secret(g.TokenFile, EnvGatewayToken, o.Getenv)
			if err != nil {
				cerrs.Addf(validate.Field(validate.Field("gateways", s.Name), "token_file"), "%v", err)
			}
			site.Routes = &GatewayClient{URL: strings.TrimRight(g.AdminURL, "/"), Token: token}
		}
		c.Sites[s.Name] = site
	}
	for i, s := range fed.Services {
		svc, err := service(fed, i, cfg, o.Drill)
		if err != nil {
			ferrs.Addf(validate.Field(validate.Index("services", i), "fqdn"), "%v", err)
		}
		if sc, ok := cfg.Services[s.Name]; ok {
			svc.Route = sc.Route
			if svc.Route == "" {
				svc.Route = s.Name
			}
			svc.Backends = map[string][]string{}
			for _, site := range sites {
				p, bs := validate.Field(validate.Field(validate.Field("services", s.Name), "backends"), site), sc.Backends[site]
				if len(bs) == 0 {
					p, bs = validate.Field(validate.Field("services", s.Name), "backend"), sc.Backend
				}
				for _, b := range bs {
					b, err := withPort(b, s.Port)
					if err != nil {
						cerrs.Addf(p, "%v: give ip:port, or the service a port (federation services[%d].port)", err, i)
						continue
					}
					svc.Backends[site] = append(svc.Backends[site], b)
				}
			}
		}
		c.Services[s.Name] = svc
	}
	if d := cfg.DNS; d != nil {
		sec, err := secret(d.SecretFile, EnvTSIGSecret, o.Getenv)
		switch {
		case err != nil:
			cerrs.Addf("dns.secret_file", "TSIG secret: %v", err)
		case sec == "":
			cerrs.Addf("dns.secret_file", "no TSIG secret: name a file holding it, or set $%s", EnvTSIGSecret)
		default:
			up, err := updater(d, sec, o)
			if err != nil {
				cerrs.Addf("dns", "%v", err)
			}
			c.DNS = up
		}
	}
	if err := prefixed("continuity", cerrs.Err(), "federation", ferrs.Err()); err != nil {
		return nil, fmt.Errorf("continuity: %w", err)
	}
	return c, nil
}

// service is the Coordinator's entry for fed.Services[i] (name only; the
// caller adds the gateways' route): its name checked against the zone, or
// in a drill moved into the drill zone.
func service(fed *model.Federation, i int, cfg *Config, drill bool) (Service, error) {
	fqdn := fed.Services[i].FQDN
	if fqdn == "" || cfg.DNS == nil {
		return Service{FQDN: fqdn}, nil
	}
	fqdn = mdns.CanonicalName(fqdn)
	zone := mdns.CanonicalName(cfg.DNS.Zone)
	if !mdns.IsSubDomain(zone, fqdn) {
		return Service{}, fmt.Errorf("%s is outside the zone refuge updates (continuity dns.zone %s)", fqdn, zone)
	}
	if drill {
		rel := strings.TrimSuffix(strings.TrimSuffix(fqdn, zone), ".")
		if rel == "" {
			return Service{}, fmt.Errorf("%s is the zone's apex; a drill needs a name inside it", fqdn)
		}
		fqdn = rel + "." + mdns.CanonicalName(cfg.DNS.DrillZone)
	}
	return Service{FQDN: fqdn}, nil
}

// updater makes the DNS updater for a configuration (in a drill, for its
// drill zone).
func updater(d *DNSConfig, sec string, o BuildOptions) (*dns.Updater, error) {
	dc := dns.Config{Server: d.Server, Zone: d.Zone, KeyName: d.KeyName, Secret: sec, Net: d.Net, Timeout: d.Timeout.D(), Audit: o.Audit}
	if o.Drill {
		dc.Zone = d.DrillZone
	}
	if o.DNS != nil {
		o.DNS(&dc)
	}
	return dns.New(dc)
}

// secret reads a secret from file, or else from the environment variable.
func secret(file, env string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s is empty", file)
		}
		return s, nil
	}
	return strings.TrimSpace(getenv(env)), nil
}

// withPort adds port to an address without one.
func withPort(b string, port int) (string, error) {
	if _, err := netip.ParseAddrPort(b); err == nil {
		return b, nil
	}
	if port == 0 {
		return "", fmt.Errorf("backend %q has no port and the service has none", b)
	}
	return net.JoinHostPort(b, strconv.Itoa(port)), nil
}

// known records a problem unless name is one of names.
func known(errs *validate.Errors, path, what, name string, names []string) {
	if slices.Contains(names, name) {
		return
	}
	if s := validate.Suggest(name, names); s != "" {
		errs.Addf(path, "unknown %s %q (did you mean %q?)", what, name, s)
		return
	}
	errs.Addf(path, "unknown %s %q (the federation has: %s)", what, name, strings.Join(names, ", "))
}

// prefixed joins two field-error lists, each path prefixed with what it
// refers to.
func prefixed(a string, errA error, b string, errB error) error {
	var out validate.List
	for _, e := range []struct {
		prefix string
		err    error
	}{{a, errA}, {b, errB}} {
		l, _ := e.err.(validate.List)
		for _, fe := range l {
			fe.Path = e.prefix + " " + fe.Path
			out = append(out, fe)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ServiceNames lists the services with a DNS name (what LowerTTL and
// RestoreTTL act on), sorted.
func (c *Coordinator) ServiceNames() []string {
	var out []string
	for name, s := range c.Services {
		if s.FQDN != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
