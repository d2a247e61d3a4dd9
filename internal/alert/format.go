package alert

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
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

// Probe is what format sniffers see of a document: its XML root element,
// or the top-level members of its JSON object (of the first element when
// the document is a JSON array).
type Probe struct {
	// XMLRoot is the root element's name, for an XML document.
	XMLRoot xml.Name
	// JSON maps each top-level member of a JSON object document to its
	// value: the text of a string, the literal of a number, boolean or
	// null, or "" for an object or array. Nil for other documents.
	JSON map[string]string
	// JSONArray is set when the document is a JSON array.
	JSONArray bool
}

// Has reports whether the JSON object has a member named key.
func (p *Probe) Has(key string) bool {
	_, ok := p.JSON[key]
	return ok
}

// String describes the probe for error messages.
func (p *Probe) String() string {
	switch {
	case p.XMLRoot.Local != "":
		if p.XMLRoot.Space == "" {
			return fmt.Sprintf("XML root element <%s>", p.XMLRoot.Local)
		}
		return fmt.Sprintf("XML root element <%s> in namespace %q", p.XMLRoot.Local, p.XMLRoot.Space)
	case p.JSON != nil:
		keys := make([]string, 0, len(p.JSON))
		for k := range p.JSON {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) > 8 {
			keys = append(keys[:8], "…")
		}
		what := "JSON object"
		if p.JSONArray {
			what = "JSON array of objects"
		}
		return fmt.Sprintf("%s with members %s", what, strings.Join(keys, ", "))
	case p.JSONArray:
		return "empty JSON array or array of non-objects"
	}
	return "empty document"
}

// NewProbe looks at the start of a document. It reads only as far as it
// needs (the root element, or the top-level members of a JSON object) and
// tolerates a document that is truncated after that, so that the format's
// parser, not the sniffer, reports what is wrong with the rest.
func NewProbe(data []byte) (*Probe, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\uFEFF")), " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("empty document")
	}
	switch trimmed[0] {
	case '<':
		return probeXML(trimmed)
	case '{', '[':
		return probeJSON(trimmed)
	}
	return nil, fmt.Errorf("neither XML nor JSON (starts with %q)", firstRunes(trimmed, 16))
}

func probeXML(data []byte) (*Probe, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed XML before the root element: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return &Probe{XMLRoot: se.Name}, nil
		}
	}
}

func probeJSON(data []byte) (*Probe, error) {
	if err := checkJSONNesting(data); err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	p := &Probe{}
	tok, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if tok == json.Delim('[') {
		p.JSONArray = true
		if !d.More() {
			return p, nil
		}
		if tok, err = d.Token(); err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
	}
	if tok != json.Delim('{') {
		return p, nil
	}
	p.JSON = map[string]string{}
	for d.More() {
		key, err := d.Token()
		if err != nil {
			return p, nil // truncated: the parser will say so
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			p.JSON[fmt.Sprint(key)] = ""
			return p, nil
		}
		p.JSON[fmt.Sprint(key)] = scalarText(raw)
	}
	return p, nil
}

// scalarText is the text of a JSON string, the literal of another scalar,
// or "" for an object or array.
func scalarText(raw json.RawMessage) string {
	switch {
	case len(raw) == 0 || raw[0] == '{' || raw[0] == '[':
		return ""
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	return string(raw)
}

func firstRunes(b []byte, n int) string {
	s := []rune(string(b[:min(len(b), 4*n)]))
	return string(s[:min(len(s), n)])
}
