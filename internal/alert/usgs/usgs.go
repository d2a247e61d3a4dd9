// Package usgs parses USGS earthquake GeoJSON — summary feeds
// (FeatureCollection, one alert per event) and event detail documents (one
// Feature) — into normalized alerts.
//
// GeoJSON writes positions as [longitude, latitude, depth km]; they are
// swapped here, once. The event id is the feature id; the alert is issued
// at the event's "updated" time (its version) and the origin time is
// "time". Events of type "earthquake" are earthquakes, others (quarry
// blast, volcanic eruption, …) are "other"; status "deleted" is a
// cancellation. USGS intensities (MMI, CDI) are not JMA intensities and
// are not converted. Field paths in errors are JSON paths
// ("features[3].geometry.coordinates[1]").
package usgs

import (
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/validate"
)

// FormatName is the name of the format.
const FormatName = "usgs"

func init() {
	alert.RegisterFormat(alert.Format{
		Name: FormatName,
		Sniff: func(p *alert.Probe) bool {
			return !p.JSONArray && (p.JSON["type"] == "FeatureCollection" || p.JSON["type"] == "Feature")
		},
		Parse: Parse,
	})
}

type document struct {
	Type     string     `json:"type"`
	Features []*feature `json:"features"` // FeatureCollection
	feature             // Feature
}

type feature struct {
	Type       string     `json:"type"`
	ID         string     `json:"id"`
	Properties properties `json:"properties"`
	Geometry   *geometry  `json:"geometry"`
}

type properties struct {
	Mag     *float64 `json:"mag"`
	MagType string   `json:"magType"`
	Place   string   `json:"place"`
	Time    *int64   `json:"time"`
	Updated *int64   `json:"updated"`
	Status  string   `json:"status"`
	Net     string   `json:"net"`
	Type    string   `json:"type"`
	Title   string   `json:"title"`
}

type geometry struct {
	Type        string     `json:"type"`
	Coordinates []*float64 `json:"coordinates"`
}

// Parse reads a feed (one alert per feature, in feed order) or an event
// detail document (one alert).
func Parse(data []byte) ([]*alert.Alert, error) {
	var doc document
	if err := alert.DecodeJSON(FormatName, data, &doc); err != nil {
		return nil, err
	}
	digest := alert.Digest(data)
	switch doc.Type {
	case "FeatureCollection":
		out := make([]*alert.Alert, 0, len(doc.Features))
		for i, f := range doc.Features {
			path := validate.Index("features", i)
			if f == nil {
				return nil, errAt(path, "is null")
			}
			a, err := readFeature(path+".", f, digest)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	case "Feature":
		doc.feature.Type = doc.Type // the shallower document.Type took the member
		a, err := readFeature("", &doc.feature, digest)
		if err != nil {
			return nil, err
		}
		return []*alert.Alert{a}, nil
	}
	return nil, errAt("type", "%q, want FeatureCollection or Feature", doc.Type)
}

func errAt(path, msg string, args ...any) error { return alert.Errorf(FormatName, path, msg, args...) }

func readFeature(prefix string, f *feature, digest string) (*alert.Alert, error) {
	if f.Type != "Feature" {
		return nil, errAt(prefix+"type", "%q, want Feature", f.Type)
	}
	if f.ID == "" {
		return nil, errAt(prefix+"id", "missing")
	}
	p := &f.Properties
	a := &alert.Alert{
		Format: FormatName, Digest: digest, EventID: f.ID, Product: p.Type,
		Issuer: "USGS", Status: alert.StatusActual, MsgType: alert.MsgAlert,
		Kind: alert.KindOther, Headline: p.Title,
	}
	if p.Net != "" {
		a.Issuer = "USGS/" + p.Net
	}
	if a.Headline == "" {
		a.Headline = p.Place
	}
	if strings.EqualFold(p.Type, "earthquake") {
		a.Kind = alert.KindEarthquake
	}
	switch strings.ToLower(p.Status) {
	case "automatic", "reviewed", "":
	case "deleted":
		a.MsgType = alert.MsgCancel
	default:
		return nil, errAt(prefix+"properties.status", "%q, want automatic, reviewed or deleted", p.Status)
	}
	var err error
	if p.Time == nil {
		return nil, errAt(prefix+"properties.time", "missing")
	}
	if a.OriginTime, err = millis(*p.Time); err != nil {
		return nil, errAt(prefix+"properties.time", "%v", err)
	}
	a.IssuedAt = a.OriginTime
	if p.Updated != nil {
		if a.IssuedAt, err = millis(*p.Updated); err != nil {
			return nil, errAt(prefix+"properties.updated", "%v", err)
		}
	}
	if p.Mag != nil {
		if !(*p.Mag >= alert.MinMagnitude && *p.Mag <= alert.MaxMagnitude) {
			return nil, errAt(prefix+"properties.mag", "%v out of range [%d, %d]", *p.Mag, alert.MinMagnitude, alert.MaxMagnitude)
		}
		a.Magnitude = &alert.Magnitude{Value: *p.Mag, Type: p.MagType}
	}
	if f.Geometry != nil {
		h, err := readPoint(prefix+"geometry", f.Geometry)
		if err != nil {
			return nil, err
		}
		h.Name = p.Place
		a.Hypocenter = h
	}
	return a, nil
}

// millis converts Unix milliseconds.
func millis(ms int64) (time.Time, error) {
	t := time.UnixMilli(ms).UTC()
	return t, alert.CheckTime(t)
}

// readPoint converts a GeoJSON Point [lon, lat, depth km].
func readPoint(path string, g *geometry) (*alert.Hypocenter, error) {
	if g.Type != "Point" {
		return nil, errAt(path+".type", "%q, want Point", g.Type)
	}
	c := g.Coordinates
	if len(c) < 2 || len(c) > 3 {
		return nil, errAt(path+".coordinates", "has %d numbers, want [longitude, latitude, depth]", len(c))
	}
	for i, v := range c {
		if v == nil && i < 2 {
			return nil, errAt(validate.Index(path+".coordinates", i), "is null")
		}
	}
	pos, err := alert.NewLatLon(*c[1], *c[0])
	if err != nil {
		return nil, errAt(path+".coordinates", "%v", err)
	}
	h := &alert.Hypocenter{Lat: pos.Lat(), Lon: pos.Lon()}
	if len(c) == 3 && c[2] != nil {
		if err := alert.CheckDepth(*c[2]); err != nil {
			return nil, errAt(path+".coordinates[2]", "%v", err)
		}
		h.DepthKm = c[2]
	}
	return h, nil
}
