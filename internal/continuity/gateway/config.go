package gateway

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// Protocol says how a listener picks the service of a connection.
type Protocol string

// The listener protocols.
const (
	// TCP: one service per listener.
	TCP Protocol = "tcp"
	// TLS: by the server name (SNI) of the ClientHello; the TLS session
	// passes through untouched to the backend.
	TLS Protocol = "tls"
	// HTTP: by the Host of the connection's first request.
	HTTP Protocol = "http"
)

// Config is a gateway's configuration document (`refuge gateway --config`).
type Config struct {
	// Site names the site this gateway runs at (for logs and metrics).
	Site string `json:"site"`
	// Admin is the address of the admin endpoint: /metrics, /healthz and
	// the routes API the controller reports switchovers to.
	Admin string `json:"admin,omitempty"`
	// AdminTokenFile holds the bearer token the routes API requires for
	// changes (one line). Without it, changes are accepted only when the
	// admin address is a loopback address.
	AdminTokenFile string `json:"admin_token_file,omitempty"`
	// DrainTimeout bounds how long a connection to a service's previous
	// backend may last after a switchover (default 30s; "0s" waits forever).
	DrainTimeout *model.Duration `json:"drain_timeout,omitempty"`
	// DialTimeout bounds connecting to a backend (default 3s).
	DialTimeout model.Duration `json:"dial_timeout,omitempty"`
	// Health configures the backend health checks.
	Health HealthConfig `json:"health"`
	// Listeners are the public addresses.
	Listeners []ListenerConfig `json:"listeners"`
	// Services map names to the current address of their VM.
	Services []ServiceConfig `json:"services"`
}

// HealthConfig configures the TCP health checks of the backends.
type HealthConfig struct {
	// Interval between checks of each backend (default 2s).
	Interval model.Duration `json:"interval,omitempty"`
	// Timeout of one check (default 1s).
	Timeout model.Duration `json:"timeout,omitempty"`
}

// ListenerConfig is one public address.
type ListenerConfig struct {
	Name     string   `json:"name"`
	Listen   string   `json:"listen"`
	Protocol Protocol `json:"protocol"`
}

// ServiceConfig is one service reachable through a listener.
type ServiceConfig struct {
	Name string `json:"name"`
	// Listener names the listener the service is reached through.
	Listener string `json:"listener"`
	// Hosts are the names routed to the service on a tls or http listener
	// (a "*.example.org" entry matches one label). A service on a tcp
	// listener has none.
	Hosts []string `json:"hosts,omitempty"`
	// Default: on a tls or http listener, connections whose name matches
	// no service go to this one.
	Default bool `json:"default,omitempty"`
	// Backend is the host:port the service's VM answers on now.
	Backend string `json:"backend,omitempty"`
	// Backends, instead of Backend, are several host:port the service
	// answers on (several VMs, or addresses, at its site): each new
	// connection goes to the next healthy one in turn.
	Backends []string `json:"backends,omitempty"`
}

// backendList is the service's backends: Backends, or Backend alone.
func (s ServiceConfig) backendList() []string {
	if len(s.Backends) > 0 {
		return s.Backends
	}
	return []string{s.Backend}
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("gateway config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates a configuration document, reporting
// every problem with the path of its field.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := strictyaml.Decode(data, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// drain, dial, interval and timeout return the effective durations.
func (c *Config) drain() time.Duration {
	if c.DrainTimeout == nil {
		return 30 * time.Second
	}
	return c.DrainTimeout.D()
}

func orDefault(d model.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d.D()
}

// Validate checks the configuration; the error is a validate.List.
func (c *Config) Validate() error {
	var errs validate.Errors
	validate.Required(&errs, "site", c.Site)
	if c.Admin != "" {
		checkAddr(&errs, "admin", c.Admin)
	}
	if c.AdminTokenFile != "" && c.Admin == "" {
		errs.Addf("admin_token_file", "is set but admin (the address of the routes API) is not")
	}
	if c.DrainTimeout != nil && *c.DrainTimeout < 0 {
		errs.Addf("drain_timeout", "must not be negative")
	}
	for path, d := range map[string]model.Duration{"dial_timeout": c.DialTimeout, "health.interval": c.Health.Interval, "health.timeout": c.Health.Timeout} {
		if d < 0 {
			errs.Addf(path, "must not be negative")
		}
	}
	listeners := map[string]Protocol{}
	var names []string
	if len(c.Listeners) == 0 {
		errs.Addf("listeners", "at least one listener is required")
	}
	for i, l := range c.Listeners {
		p := validate.Index("listeners", i)
		if validate.Required(&errs, validate.Field(p, "name"), l.Name) {
			if _, dup := listeners[l.Name]; dup {
				errs.Addf(validate.Field(p, "name"), "listener %q is defined twice", l.Name)
			}
			listeners[l.Name] = l.Protocol
			names = append(names, l.Name)
		}
		if validate.Required(&errs, validate.Field(p, "listen"), l.Listen) {
			checkAddr(&errs, validate.Field(p, "listen"), l.Listen)
		}
		switch l.Protocol {
		case TCP, TLS, HTTP:
		default:
			errs.Addf(validate.Field(p, "protocol"), "must be tcp, tls or http, got %q", l.Protocol)
		}
	}
	services := map[string]bool{}
	type key struct{ listener, host string }
	hosts := map[key]string{}
	defaults := map[string]string{}
	used := map[string]string{} // tcp listener → service
	for i, s := range c.Services {
		p := validate.Index("services", i)
		if validate.Required(&errs, validate.Field(p, "name"), s.Name) {
			if services[s.Name] {
				errs.Addf(validate.Field(p, "name"), "service %q is defined twice", s.Name)
			}
			services[s.Name] = true
		}
		switch {
		case s.Backend != "" && len(s.Backends) > 0:
			errs.Addf(validate.Field(p, "backends"), "give backend (one address) or backends (several), not both")
		case len(s.Backends) > 0:
			seen := map[string]bool{}
			for j, b := range s.Backends {
				bp := validate.Index(validate.Field(p, "backends"), j)
				checkAddr(&errs, bp, b)
				if seen[b] {
					errs.Addf(bp, "backend %q is listed twice", b)
				}
				seen[b] = true
			}
		case validate.Required(&errs, validate.Field(p, "backend"), s.Backend):
			checkAddr(&errs, validate.Field(p, "backend"), s.Backend)
		}
		if !validate.Required(&errs, validate.Field(p, "listener"), s.Listener) {
			continue
		}
		proto, ok := listeners[s.Listener]
		if !ok {
			msg := fmt.Sprintf("no listener is named %q", s.Listener)
			if sug := validate.Suggest(s.Listener, names); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			errs.Addf(validate.Field(p, "listener"), "%s", msg)
			continue
		}
		if proto == TCP {
			if len(s.Hosts) > 0 || s.Default {
				errs.Addf(validate.Field(p, "hosts"), "a service on tcp listener %q is chosen by the port alone: remove hosts and default", s.Listener)
			}
			if other, dup := used[s.Listener]; dup {
				errs.Addf(validate.Field(p, "listener"), "tcp listener %q already serves %q (one service per tcp listener)", s.Listener, other)
			}
			used[s.Listener] = s.Name
			continue
		}
		if len(s.Hosts) == 0 && !s.Default {
			errs.Addf(validate.Field(p, "hosts"), "a service on %s listener %q needs hosts (or default: true)", proto, s.Listener)
		}
		if s.Default {
			if other, dup := defaults[s.Listener]; dup {
				errs.Addf(validate.Field(p, "default"), "listener %q already has default service %q", s.Listener, other)
			}
			defaults[s.Listener] = s.Name
		}
		for j, h := range s.Hosts {
			hp := validate.Index(validate.Field(p, "hosts"), j)
			norm, err := checkHost(strings.TrimPrefix(h, "*."))
			if err != nil {
				errs.Addf(hp, "%v", err)
				continue
			}
			if strings.HasPrefix(h, "*.") {
				norm = "*." + norm
			}
			k := key{s.Listener, norm}
			if other, dup := hosts[k]; dup {
				errs.Addf(hp, "host %q on listener %q is already routed to %q", h, s.Listener, other)
			}
			hosts[k] = s.Name
		}
	}
	return errs.Err()
}

func checkAddr(errs *validate.Errors, path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		errs.Addf(path, "must be host:port, got %q", addr)
		return
	}
	if port == "" || !validPort(":"+port) {
		errs.Addf(path, "port %q is not a number", port)
	}
	_ = host // any host (name, address or empty for all) is accepted
}

// serviceNames lists the configured services.
func (c *Config) serviceNames() []string {
	out := make([]string, len(c.Services))
	for i, s := range c.Services {
		out[i] = s.Name
	}
	slices.Sort(out)
	return out
}
