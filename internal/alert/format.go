package alert

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Format is an alert document format, registered by its parser package
// with RegisterFormat (as image formats are with image.RegisterFormat).
type Format struct {
	// Name is the format's name, as it appears in Alert.Format.
	Name string
	// Sniff reports whether a document is in this format, from a Probe of
	// its first bytes. Sniff may accept a document the parser then
	// refuses with a precise error (a JMA Report root element in the
	// wrong namespace, a P2PQuake code it does not support).
	Sniff func(p *Probe) bool
	// Parse converts a whole document into its alerts, setting Format and
	// Digest. Parse and ParseAll validate what it returns.
	Parse func(data []byte) ([]*Alert, error)
}

// One adapts the parser of a format whose documents hold one alert each
// to Format.Parse.
func One(parse func([]byte) (*Alert, error)) func([]byte) ([]*Alert, error) {
	return func(data []byte) ([]*Alert, error) {
		a, err := parse(data)
		if err != nil {
			return nil, err
		}
		return []*Alert{a}, nil
	}
}

var (
	registryMu sync.RWMutex
	registry   []Format
)

// RegisterFormat makes a format known to Parse, ParseAll and ParseFormat.
// Formats are sniffed in the order registered. Registering two formats of
// one name, or an incomplete Format, is a programming error and panics.
func RegisterFormat(f Format) {
	if f.Name == "" || f.Sniff == nil || f.Parse == nil {
		panic("alert: RegisterFormat with an incomplete Format")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if slices.ContainsFunc(registry, func(g Format) bool { return g.Name == f.Name }) {
		panic("alert: format " + f.Name + " registered twice")
	}
	registry = append(registry, f)
}

// Formats returns the names of the registered formats, sorted.
func Formats() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, len(registry))
	for i, f := range registry {
		names[i] = f.Name
	}
	slices.Sort(names)
	return names
}

func lookupFormat(name string) (Format, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	i := slices.IndexFunc(registry, func(f Format) bool { return f.Name == name })
	if i < 0 {
		return Format{}, false
	}
	return registry[i], true
}

// Sniff returns the name of the format of a document, or an error wrapping
// ErrUnknownFormat that says what the document looks like.
func Sniff(data []byte) (string, error) {
	f, err := sniff(data)
	return f.Name, err
}

func sniff(data []byte) (Format, error) {
	if err := checkSize(data); err != nil {
		return Format{}, err
	}
	p, err := NewProbe(data)
	if err != nil {
		return Format{}, fmt.Errorf("%w: %v", ErrUnknownFormat, err)
	}
	registryMu.RLock()
	defer registryMu.RUnlock()
	for _, f := range registry {
		if f.Sniff(p) {
			return f, nil
		}
	}
	if len(registry) == 0 {
		return Format{}, fmt.Errorf("%w: no formats are registered (import internal/alert/formats)", ErrUnknownFormat)
	}
	return Format{}, fmt.Errorf("%w: %s", ErrUnknownFormat, p)
}

// Parse reads a document holding exactly one alert, in any registered
// format: it sniffs the format, parses and validates. A feed holding several
// alerts is refused with ErrMultipleAlerts, an empty one with ErrNoAlert.
func Parse(data []byte) (*Alert, error) {
	alerts, err := ParseAll(data)
	return single(alerts, err)
}

// ParseAll reads a document in any registered format and returns all its
// alerts (one for most formats, one per event for a USGS feed or a
// P2PQuake history array), each validated.
func ParseAll(data []byte) ([]*Alert, error) {
	f, err := sniff(data)
	if err != nil {
		return nil, err
	}
	return parseWith(f, data)
}

// ParseFormat is Parse for a document whose format is known.
func ParseFormat(format string, data []byte) (*Alert, error) {
	return single(ParseAllFormat(format, data))
}

// ParseAllFormat is ParseAll for a document whose format is known.
func ParseAllFormat(format string, data []byte) ([]*Alert, error) {
	f, ok := lookupFormat(format)
	if !ok {
		return nil, fmt.Errorf("%w: unknown format %q (known: %s)", ErrUnknownFormat, format, strings.Join(Formats(), ", "))
	}
	if err := checkSize(data); err != nil {
		return nil, WrapError(format, "", err)
	}
	return parseWith(f, data)
}

func parseWith(f Format, data []byte) ([]*Alert, error) {
	alerts, err := f.Parse(data)
	if err != nil {
		return nil, WrapError(f.Name, "", err)
	}
	for i, a := range alerts {
		if err := a.Validate(); err != nil {
			return nil, Errorf(f.Name, "", "alert %d of %d does not validate: %w", i+1, len(alerts), err)
		}
	}
	return alerts, nil
}

func single(alerts []*Alert, err error) (*Alert, error) {
	switch {
	case err != nil:
		return nil, err
	case len(alerts) == 0:
		return nil, ErrNoAlert
	case len(alerts) > 1:
		return nil, fmt.Errorf("%w (%d); use ParseAll", ErrMultipleAlerts, len(alerts))
	}
	return alerts[0], nil
}
