// Package cap parses OASIS Common Alerting Protocol 1.2 messages into
// normalized alerts.
//
// All <info> blocks are read: the first gives the headline and product
// (its <event>), and the areas of all of them are merged, dropping exact
// duplicates (the same area repeated for another language). Polygons
// ("lat,lon" pairs) become closed rings, circles ("lat,lon radius") discs
// with the radius in km, geocodes area codes whose scheme is the
// <valueName>. An Update or Cancel keeps the event id of the first message
// of its thread (the earliest of its <references>), so that versions of
// one event share an EventID. The kind is inferred from the event, event
// codes and headline (tsunami, earthquake early warning, earthquake, or
// other); a "Magnitude" parameter ("3.4 Ml"), if present and readable, gives
// the magnitude.
//
// Element paths in errors are XPath-like and 1-based ("info[1]/area[2]/polygon[1]").
package cap

import (
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/refuge-project/refuge/internal/alert"
)

// FormatName is the name of the format.
const FormatName = "cap"

// Namespace is the CAP 1.2 namespace; documents in any other are refused.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

func init() {
	alert.RegisterFormat(alert.Format{
		Name:  FormatName,
		Sniff: func(p *alert.Probe) bool { return p.XMLRoot.Local == "alert" },
		Parse: alert.One(Parse),
	})
}

type message struct {
	XMLName    xml.Name
	Identifier string `xml:"identifier"`
	Sender     string `xml:"sender"`
	Sent       string `xml:"sent"`
	Status     string `xml:"status"`
	MsgType    string `xml:"msgType"`
	Scope      string `xml:"scope"`
	References string `xml:"references"`
	Infos      []info `xml:"info"`
}

type info struct {
	Event      string      `xml:"event"`
	Headline   string      `xml:"headline"`
	EventCodes []valuePair `xml:"eventCode"`
	Parameters []valuePair `xml:"parameter"`
	Areas      []area      `xml:"area"`
}

type area struct {
	AreaDesc string      `xml:"areaDesc"`
	Polygons []string    `xml:"polygon"`
	Circles  []string    `xml:"circle"`
	Geocodes []valuePair `xml:"geocode"`
}

type valuePair struct {
	ValueName string `xml:"valueName"`
	Value     string `xml:"value"`
}

var statuses = map[string]alert.Status{
	"Actual":   alert.StatusActual,
	"Exercise": alert.StatusExercise,
	"System":   alert.StatusTest,
	"Test":     alert.StatusTest,
	"Draft":    alert.StatusDraft,
}

var msgTypes = map[string]alert.MsgType{
	"Alert":  alert.MsgAlert,
	"Update": alert.MsgUpdate,
	"Cancel": alert.MsgCancel,
}

// Parse reads one CAP 1.2 message.
func Parse(data []byte) (*alert.Alert, error) {
	var m message
	if err := alert.DecodeXML(FormatName, data, &m); err != nil {
		return nil, err
	}
	if m.XMLName.Local != "alert" || m.XMLName.Space != Namespace {
		return nil, errAt("alert", "root element <%s> in namespace %q, want <alert> in %q", m.XMLName.Local, m.XMLName.Space, Namespace)
	}
	a := &alert.Alert{Format: FormatName, Digest: alert.Digest(data)}
	if err := readHeader(&m, a); err != nil {
		return nil, err
	}
	for i := range m.Infos {
		if err := readInfo(alert.Nth("info", i), &m.Infos[i], a); err != nil {
			return nil, err
		}
	}
	a.Kind = kindOf(m.Infos)
	if a.Kind == alert.KindEarthquake || a.Kind == alert.KindEEW {
		a.Magnitude = magnitudeOf(m.Infos)
	}
	return a, nil
}

func errAt(path, msg string, args ...any) error { return alert.Errorf(FormatName, path, msg, args...) }

func readHeader(m *message, a *alert.Alert) error {
	for _, req := range []struct{ name, v string }{
		{"identifier", m.Identifier}, {"sender", m.Sender}, {"sent", m.Sent},
		{"status", m.Status}, {"msgType", m.MsgType}, {"scope", m.Scope},
	} {
		if strings.TrimSpace(req.v) == "" {
			return errAt("alert/"+req.name, "missing (required by CAP 1.2)")
		}
	}
	a.EventID, a.Issuer = strings.TrimSpace(m.Identifier), strings.TrimSpace(m.Sender)
	t, err := alert.ParseTime(m.Sent)
	if err != nil {
		return errAt("alert/sent", "%v", err)
	}
	a.IssuedAt = t
	var ok bool
	if a.Status, ok = statuses[strings.TrimSpace(m.Status)]; !ok {
		return errAt("alert/status", "%q, want Actual, Exercise, System, Test or Draft", m.Status)
	}
	if a.MsgType, ok = msgTypes[strings.TrimSpace(m.MsgType)]; !ok {
		return errAt("alert/msgType", "%q: refuge takes Alert, Update and Cancel (Ack and Error carry no alert)", m.MsgType)
	}
	if a.References, err = parseReferences(m.References); err != nil {
		return errAt("alert/references", "%v", err)
	}
	if a.MsgType != alert.MsgAlert && len(a.References) > 0 {
		first := slices.MinFunc(a.References, func(x, y alert.Reference) int { return x.Sent.Compare(y.Sent) })
		a.EventID = first.ID
	}
	return nil
}

// parseReferences reads "sender,identifier,sent" triples separated by white
// space.
func parseReferences(s string) ([]alert.Reference, error) {
	var refs []alert.Reference
	for i, f := range strings.Fields(s) {
		parts := strings.Split(f, ",")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("reference %d: %q is not sender,identifier,sent", i+1, f)
		}
		t, err := alert.ParseTime(parts[2])
		if err != nil {
			return nil, fmt.Errorf("reference %d: %v", i+1, err)
		}
		refs = append(refs, alert.Reference{Sender: parts[0], ID: parts[1], Sent: t})
	}
	return refs, nil
}

func readInfo(path string, in *info, a *alert.Alert) error {
	if a.Headline == "" {
		a.Headline = strings.TrimSpace(in.Headline)
	}
	if a.Product == "" {
		a.Product = strings.TrimSpace(in.Event)
	}
	for i := range in.Areas {
		ar, err := readArea(alert.Nth(path+"/area", i), &in.Areas[i])
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(a.Areas, func(b alert.Area) bool { return sameArea(&ar, &b) }) {
			a.Areas = append(a.Areas, ar)
		}
	}
	return nil
}

func readArea(path string, ar *area) (alert.Area, error) {
	out := alert.Area{Name: strings.TrimSpace(ar.AreaDesc)}
	if out.Name == "" {
		return out, errAt(path+"/areaDesc", "missing (required by CAP 1.2)")
	}
	for i, s := range ar.Polygons {
		if strings.TrimSpace(s) == "" {
			continue // real messages (Israel's) carry empty <polygon/> elements
		}
		poly, err := alert.ParsePolygon(s)
		if err != nil {
			return out, errAt(alert.Nth(path+"/polygon", i), "%v", err)
		}
		out.Polygons = append(out.Polygons, poly)
	}
	for i, s := range ar.Circles {
		c, err := parseCircle(s)
		if err != nil {
			return out, errAt(alert.Nth(path+"/circle", i), "%v", err)
		}
		out.Circles = append(out.Circles, c)
	}
	for i, g := range ar.Geocodes {
		name, value := strings.TrimSpace(g.ValueName), strings.TrimSpace(g.Value)
		if name == "" || value == "" {
			return out, errAt(alert.Nth(path+"/geocode", i), "needs a valueName and a value")
		}
		out.Codes = append(out.Codes, alert.AreaCode{Scheme: name, Value: value})
	}
	return out, nil
}

// parseCircle reads "lat,lon radius" (radius in km).
func parseCircle(s string) (alert.Circle, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return alert.Circle{}, fmt.Errorf("%q is not \"lat,lon radius\"", s)
	}
	center, err := alert.ParseLatLon(f[0])
	if err != nil {
		return alert.Circle{}, err
	}
	r, err := strconv.ParseFloat(f[1], 64)
	if err != nil || !(r >= 0 && r <= 20038) || math.IsInf(r, 0) {
		return alert.Circle{}, fmt.Errorf("radius %q is not a distance in km within [0, 20038]", f[1])
	}
	return alert.Circle{Center: center, RadiusKm: r}, nil
}

func sameArea(a, b *alert.Area) bool {
	return a.Name == b.Name && slices.Equal(a.Codes, b.Codes) && slices.Equal(a.Circles, b.Circles) &&
		slices.EqualFunc(a.Polygons, b.Polygons, func(p, q alert.Polygon) bool { return slices.Equal(p, q) })
}

// kindOf infers the kind from the words of the events, event codes and
// headlines of all info blocks.
func kindOf(infos []info) alert.Kind {
	var words []string
	for _, in := range infos {
		words = append(words, in.Event, in.Headline)
		for _, c := range in.EventCodes {
			words = append(words, c.Value)
		}
	}
	text := strings.ToLower(strings.Join(words, " "))
	has := func(subs ...string) bool {
		return slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(text, s) })
	}
	switch {
	case has("tsunami", "津波"):
		return alert.KindTsunami
	case has("early warning", "緊急地震速報", "alertes précoces"):
		if has("earthquake", "quake", "séisme", "tremblement", "地震") {
			return alert.KindEEW
		}
	case has("earthquake", "quake", "séisme", "tremblement", "地震"):
		return alert.KindEarthquake
	}
	return alert.KindOther
}

// magnitudeOf reads the first "Magnitude" parameter ("3.4 Ml"); it is not
// part of CAP, so an unreadable one is ignored.
func magnitudeOf(infos []info) *alert.Magnitude {
	for _, in := range infos {
		for _, p := range in.Parameters {
			if !strings.EqualFold(strings.TrimSpace(p.ValueName), "magnitude") {
				continue
			}
			f := strings.Fields(p.Value)
			if len(f) == 0 {
				continue
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil || !(v >= alert.MinMagnitude && v <= alert.MaxMagnitude) {
				continue
			}
			m := &alert.Magnitude{Value: v}
			if len(f) > 1 {
				m.Type = f[1]
			}
			return m
		}
	}
	return nil
}
