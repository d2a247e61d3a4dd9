package alertsource

import (
	"fmt"
	"net/http"
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
// stream).
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
		if o.Secret == nil {
			return nil, fmt.Errorf("source %q: the webhook receiver needs relay secrets", spec)
		}
		return &Webhook{Common: o.Common, Addr: addr, Config: webhook.Config{Secret: o.Secret}}, nil
	case "jma-atom", "atom":
		if err := needAddr(); err != nil {
			return nil, err
		}
		a := &Atom{Common: o.Common, URL: addr, Client: o.Client, Interval: o.Interval, Backoff: backoff, MaxAge: o.MaxAge}
		if kind == "jma-atom" {
			a.Titles = JMATitles
		}
		return a, nil
	case "usgs":
		if err := needAddr(); err != nil {
			return nil, err
		}
		return &USGS{Common: o.Common, URL: addr, Client: o.Client, Interval: o.Interval, Backoff: backoff}, nil
	case "p2pquake":
		return &P2PQuake{Common: o.Common, URL: addr, Client: o.Client, Backoff: backoff}, nil
	}
	return nil, fmt.Errorf("source %q: unknown kind %q (want one of %s)", spec, kind, strings.Join(SpecKinds, ", "))
}
