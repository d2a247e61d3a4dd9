// Package p2pquake parses P2PQuake JSON API v2 records into normalized
// alerts: code 551 (JMA earthquake information), 552 (JMA tsunami
// forecast), 554 (EEW broadcast detected) and 556 (JMA earthquake early
// warning). A document is one record, an array of records (the history
// API), or a bare 551, 552 or 556 body without the code/id wrapper
// (P2PQuake's EPSP JSON, as its jmaxml-seis-parser-go writes it).
//
// P2PQuake times are JST ("2006/01/02 15:04:05"); intensities are scale
// codes (10…70, 45 = 5-, 46 = "5- or more, estimated", 99 = "or more" as
// the upper end of an EEW range); unknown positions, depths and magnitudes
// are sentinels (-200, -1), read as absent. The event id of a 556 is JMA's
// EventID, so an EEW received from P2PQuake and from JMA XML is one event;
// a 551 has none, and refuge uses "p2pquake-" and its origin time; 552 and
// 554 use the record id. Field paths in errors are JSON paths ("[0].areas[1].grade").
package p2pquake

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/validate"
)

// FormatName is the name of the format.
const FormatName = "p2pquake"

func init() {
	alert.RegisterFormat(alert.Format{
		Name: FormatName,
		Sniff: func(p *alert.Probe) bool {
			return p.Has("code") || (p.Has("issue") && (p.Has("earthquake") || p.Has("areas")))
		},
		Parse: Parse,
	})
}

// timeLayout is P2PQuake's time format (JST; fractional seconds may
// follow).
const timeLayout = "2006/01/02 15:04:05"

// Parse reads one record or an array of records.
func Parse(data []byte) ([]*alert.Alert, error) {
	digest := alert.Digest(data)
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("[")) {
		var items []*item
		if err := alert.DecodeJSON(FormatName, data, &items); err != nil {
			return nil, err
		}
		out := make([]*alert.Alert, 0, len(items))
		for i, it := range items {
			path := validate.Index("", i)
			if it == nil {
				return nil, errAt(path, "is null")
			}
			a, err := readItem(path, it, digest)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	var it item
	if err := alert.DecodeJSON(FormatName, data, &it); err != nil {
		return nil, err
	}
	a, err := readItem("", &it, digest)
	if err != nil {
		return nil, err
	}
	return []*alert.Alert{a}, nil
}

func errAt(path, msg string, args ...any) error { return alert.Errorf(FormatName, path, msg, args...) }

func readItem(path string, it *item, digest string) (*alert.Alert, error) {
	a := &alert.Alert{Format: FormatName, Digest: digest, Status: alert.StatusActual, MsgType: alert.MsgAlert, Issuer: "P2PQuake"}
	code, ok := codeOf(it)
	if !ok {
		return nil, errAt(validate.Field(path, "code"), "missing")
	}
	a.Product = fmt.Sprint(code)
	if it.Issue != nil {
		if it.Issue.Type != "" {
			a.Product += "/" + it.Issue.Type
		}
		if s := strings.TrimSpace(it.Issue.Source); s != "" {
			a.Issuer = s
		}
	}
	var err error
	switch code {
	case 551:
		err = readQuake(path, it, a)
	case 552:
		err = readTsunami(path, it, a)
	case 554:
		err = readDetection(path, it, a)
	case 556:
		err = readEEW(path, it, a)
	default:
		return nil, errAt(validate.Field(path, "code"), "%d is not supported (supported: 551, 552, 554, 556)", code)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// codeOf returns the record's code, or for a bare EPSP body (no code/id
// wrapper) the code its shape implies: JMA's event id marks an EEW (556),
// an earthquake without one an earthquake report (551), areas alone a
// tsunami forecast (552).
func codeOf(it *item) (int, bool) {
	switch {
	case it.Code != nil:
		return *it.Code, true
	case it.Issue == nil:
		return 0, false
	case it.Issue.EventID != "":
		return 556, true
	case it.Earthquake != nil:
		return 551, true
	case it.Areas != nil:
		return 552, true
	}
	return 0, false
}

// parseTime reads a required P2PQuake time.
func parseTime(path, s string) (time.Time, error) {
	if strings.TrimSpace(s) == "" {
		return time.Time{}, errAt(path, "missing")
	}
	t, err := alert.ParseLocalTime(timeLayout, s, alert.JST)
	if err != nil {
		return t, errAt(path, "%v", err)
	}
	return t, nil
}

// scales maps P2PQuake scale codes to intensities.
var scales = map[int]alert.Intensity{
	-1: alert.IntensityUnknown,
	10: alert.Intensity1, 20: alert.Intensity2, 30: alert.Intensity3, 40: alert.Intensity4,
	45: alert.Intensity5Lower, 46: alert.Intensity5Lower, 50: alert.Intensity5Upper,
	55: alert.Intensity6Lower, 60: alert.Intensity6Upper, 70: alert.Intensity7,
}

func scale(path string, code int) (alert.Intensity, error) {
	in, ok := scales[code]
	if !ok {
		return in, errAt(path, "unknown scale code %d (want -1, 10, 20, 30, 40, 45, 46, 50, 55, 60 or 70)", code)
	}
	return in, nil
}

// scaleOf reads a scale code written as a JSON number that may carry a
// fraction (556 writes 45.0).
func scaleOf(path string, v float64) (alert.Intensity, error) {
	if v != math.Trunc(v) || math.Abs(v) > 1000 {
		return alert.IntensityUnknown, errAt(path, "scale code %v is not an integer", v)
	}
	return scale(path, int(v))
}
