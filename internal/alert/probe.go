package alert

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
)

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
