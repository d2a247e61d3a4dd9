package alertsource

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert/webhook"
)

// SpecKinds are the kinds of source a spec may name, in help order.
var SpecKinds = []string{"file", "webhook", "jma-atom", "atom", "usgs", "p2pquake"}

// SpecOptions are the settings a source made from a spec takes besides its
// address.
type SpecOptions struct {
	Common
	Client *http.Client
	// Interval of pollers and of the file source's directory checks.
	Interval time.Duration
	// Pace of the file source (see File.Pace).
	Pace float64
	// Secret returns relay secrets for the webhook receiver.
	Secret func(relayID string) ([]byte, bool)
	// MaxAge of the Atom pollers' entries (see Atom.MaxAge).
	MaxAge time.Duration
	// Seed of the back-off jitter.
	Seed uint64
}

// FromSpec makes a source from "KIND:ADDRESS": file:PATH, webhook:ADDR,
// jma-atom:URL (an Atom feed of JMA telegrams; only the telegram types
// refuge reads are fetched), atom:URL (any Atom feed of alert documents),
// usgs:URL and p2pquake:URL (p2pquake: alone uses P2PQuake's public
// stream). It checks what it can without the network: a feed's URL must be
// http or https, a stream's ws or wss (or http, https), a listen address
// host:port; File.Check and Webhook.Check check more before a run.
func FromSpec(spec string, o SpecOptions) (Source, error) {
	kind, addr, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("source %q: want KIND:ADDRESS with KIND one of %s", spec, strings.Join(SpecKinds, ", "))
	}
	needAddr := func() error {
		if addr == "" {
			return fmt.Errorf("source %q: %s needs an address after the colon", spec, kind)
		}
		return nil
	}
	needURL := func(schemes []string) error {
		if err := needAddr(); err != nil {
			return err
		}
		if err := checkURL(addr, schemes); err != nil {
			return fmt.Errorf("source %q: %w", spec, err)
		}
		return nil
	}
	backoff := NewBackoff(0, 0, o.Seed)
	switch kind {
	case "file":
		if err := needAddr(); err != nil {
			return nil, err
		}
		return &File{Common: o.Common, Path: addr, Interval: o.Interval, Pace: o.Pace}, nil
	case "webhook":
		if err := needAddr(); err != nil {
			return nil, err
		}
		if err := checkListenAddr(addr); err != nil {
			return nil, fmt.Errorf("source %q: %w", spec, err)
		}
		if o.Secret == nil {
			return nil, fmt.Errorf("source %q: the webhook receiver needs relay secrets", spec)
		}
		return &Webhook{Common: o.Common, Addr: addr, Config: webhook.Config{Secret: o.Secret}}, nil
	case "jma-atom", "atom":
		if err := needURL(feedSchemes); err != nil {
			return nil, err
		}
		a := &Atom{Common: o.Common, URL: addr, Client: o.Client, Interval: o.Interval, Backoff: backoff, MaxAge: o.MaxAge}
		if kind == "jma-atom" {
			a.Titles = JMATitles
		}
		return a, nil
	case "usgs":
		if err := needURL(feedSchemes); err != nil {
			return nil, err
		}
		return &USGS{Common: o.Common, URL: addr, Client: o.Client, Interval: o.Interval, Backoff: backoff}, nil
	case "p2pquake":
		if addr != "" {
			if err := needURL(streamSchemes); err != nil {
				return nil, err
			}
		}
		return &P2PQuake{Common: o.Common, URL: addr, Client: o.Client, Backoff: backoff}, nil
	}
	return nil, fmt.Errorf("source %q: unknown kind %q (want one of %s)", spec, kind, strings.Join(SpecKinds, ", "))
}

// The URL schemes of feeds and of streams.
var (
	feedSchemes   = []string{"http", "https"}
	streamSchemes = []string{"ws", "wss", "http", "https"}
)

// checkURL checks that addr is an absolute URL with a host and one of the
// schemes: the clients refuse any other, and no retry would help.
func checkURL(addr string, schemes []string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return err
	}
	if !slices.Contains(schemes, strings.ToLower(u.Scheme)) {
		return fmt.Errorf("URL scheme %q is not supported here (want one of %s)", u.Scheme, strings.Join(schemes, ", "))
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", addr)
	}
	return nil
}

// checkListenAddr checks that addr is host:port with a valid port.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address: %w", err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	return nil
}
