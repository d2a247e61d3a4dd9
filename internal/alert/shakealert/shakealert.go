// Package shakealert parses USGS ShakeAlert event messages (<event_message>
// from the decision module "dm" and the contour producer "eqinfo2gm") into
// normalized earthquake-early-warning alerts.
//
// The message's category "live" is an actual alert and "test" a test;
// message_type new, update and delete are alert, update and cancel; version
// is the serial. Predicted-intensity contours (gm_info/gmcontour_pred)
// become areas named by their Modified Mercalli level, each with its
// polygon; MMI is not converted to the JMA scale. Element paths in errors
// are XPath-like and 1-based.
package shakealert

import (
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/refuge-project/refuge/internal/alert"
)

// FormatName is the name of the format.
const FormatName = "shakealert"

func init() {
	alert.RegisterFormat(alert.Format{
		Name:  FormatName,
		Sniff: func(p *alert.Probe) bool { return p.XMLRoot.Local == "event_message" },
		Parse: alert.One(Parse),
	})
}

type message struct {
	XMLName     xml.Name
	Category    string `xml:"category,attr"`
	MessageType string `xml:"message_type,attr"`
	OrigSys     string `xml:"orig_sys,attr"`
	Timestamp   string `xml:"timestamp,attr"`
	Version     string `xml:"version,attr"`
	Core        *struct {
		ID       string   `xml:"id,attr"`
		Mag      quantity `xml:"mag"`
		Lat      quantity `xml:"lat"`
		Lon      quantity `xml:"lon"`
		Depth    quantity `xml:"depth"`
		OrigTime string   `xml:"orig_time"`
	} `xml:"core_info"`
	Contours []struct {
		MMI     string `xml:"MMI"`
		Polygon string `xml:"polygon"`
	} `xml:"gm_info>gmcontour_pred>contour"`
}

// quantity is a number with a units attribute.
type quantity struct {
	Value string `xml:",chardata"`
	Units string `xml:"units,attr"`
}

var statuses = map[string]alert.Status{"live": alert.StatusActual, "test": alert.StatusTest}

var msgTypes = map[string]alert.MsgType{"new": alert.MsgAlert, "update": alert.MsgUpdate, "delete": alert.MsgCancel}

// Parse reads one ShakeAlert event message.
func Parse(data []byte) (*alert.Alert, error) {
	var m message
	if err := alert.DecodeXML(FormatName, data, &m); err != nil {
		return nil, err
	}
	if m.XMLName.Local != "event_message" || m.XMLName.Space != "" {
		return nil, errAt("", "root element <%s> in namespace %q, want <event_message> in none", m.XMLName.Local, m.XMLName.Space)
	}
	a := &alert.Alert{Format: FormatName, Digest: alert.Digest(data), Kind: alert.KindEEW, Product: m.OrigSys, Issuer: "ShakeAlert"}
	if m.OrigSys != "" {
		a.Issuer += "/" + m.OrigSys
	}
	var ok bool
	if a.Status, ok = statuses[m.Category]; !ok {
		return nil, errAt("event_message/@category", "%q, want live or test", m.Category)
	}
	if a.MsgType, ok = msgTypes[m.MessageType]; !ok {
		return nil, errAt("event_message/@message_type", "%q, want new, update or delete", m.MessageType)
	}
	var err error
	if a.Serial, err = strconv.Atoi(m.Version); err != nil || a.Serial < 0 {
		return nil, errAt("event_message/@version", "%q is not a non-negative integer", m.Version)
	}
	if a.IssuedAt, err = alert.ParseTime(m.Timestamp); err != nil {
		return nil, errAt("event_message/@timestamp", "%v", err)
	}
	if err := readCore(&m, a); err != nil {
		return nil, err
	}
	for i, c := range m.Contours {
		ar, err := readContour(c.MMI, c.Polygon)
		if err != nil {
			return nil, errAt(alert.Nth("gm_info/gmcontour_pred/contour", i), "%v", err)
		}
		a.Areas = append(a.Areas, ar)
	}
	return a, nil
}

func errAt(path, msg string, args ...any) error { return alert.Errorf(FormatName, path, msg, args...) }

func readCore(m *message, a *alert.Alert) error {
	c := m.Core
	if c == nil {
		return errAt("core_info", "missing")
	}
	if a.EventID = strings.TrimSpace(c.ID); a.EventID == "" {
		return errAt("core_info/@id", "missing")
	}
	var err error
	if a.OriginTime, err = alert.ParseTime(c.OrigTime); err != nil {
		return errAt("core_info/orig_time", "%v", err)
	}
	mag, err := number("core_info/mag", c.Mag, "")
	if err != nil {
		return err
	}
	if !(mag >= alert.MinMagnitude && mag <= alert.MaxMagnitude) {
		return errAt("core_info/mag", "%v out of range [%d, %d]", mag, alert.MinMagnitude, alert.MaxMagnitude)
	}
	a.Magnitude = &alert.Magnitude{Value: mag, Type: c.Mag.Units}
	lat, err := number("core_info/lat", c.Lat, "deg")
	if err != nil {
		return err
	}
	lon, err := number("core_info/lon", c.Lon, "deg")
	if err != nil {
		return err
	}
	pos, err := alert.NewLatLon(lat, lon)
	if err != nil {
		return errAt("core_info", "%v", err)
	}
	depth, err := number("core_info/depth", c.Depth, "km")
	if err != nil {
		return err
	}
	if err := alert.CheckDepth(depth); err != nil {
		return errAt("core_info/depth", "%v", err)
	}
	a.Hypocenter = &alert.Hypocenter{Lat: pos.Lat(), Lon: pos.Lon(), DepthKm: &depth}
	return nil
}

// number reads a required finite quantity whose units, when wantUnits is
// set, must be wantUnits.
func number(path string, q quantity, wantUnits string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(q.Value), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errAt(path, "%q is not a number", q.Value)
	}
	if wantUnits != "" && q.Units != wantUnits {
		return 0, errAt(path+"/@units", "%q, want %q", q.Units, wantUnits)
	}
	return v, nil
}

func readContour(mmi, polygon string) (alert.Area, error) {
	level, err := strconv.ParseFloat(strings.TrimSpace(mmi), 64)
	if err != nil || !(level >= 1 && level <= 12) {
		return alert.Area{}, fmt.Errorf("MMI %q is not a Modified Mercalli level within [1, 12]", mmi)
	}
	poly, err := alert.ParsePolygon(polygon)
	if err != nil {
		return alert.Area{}, fmt.Errorf("polygon: %w", err)
	}
	name := "predicted MMI ≥ " + strconv.FormatFloat(level, 'f', -1, 64)
	return alert.Area{Name: name, Polygons: []alert.Polygon{poly}}, nil
}
