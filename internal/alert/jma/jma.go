// Package jma parses JMA disaster-prevention XML (気象庁防災情報XML) seismology
// and tsunami telegrams into normalized alerts: earthquake early warnings
// (VXSE42 delivery test, VXSE43 warning, VXSE44 forecast, VXSE45
// ground-motion forecast), earthquake reports (VXSE51 intensity flash,
// VXSE52 hypocenter, VXSE53 hypocenter and intensity, VXSE62 long-period
// ground motion) and tsunami warnings and information (VTSE41, VTSE51).
//
// The telegram type is recognised by Control/Title; the Report, Control,
// Head and Body parts must be in their JMA namespaces. Head/InfoType 取消
// is a cancellation; Control/Status 訓練 and 試験 are exercise and test
// messages; an EEW whose Body/NextAdvisory announces 最終報 is the final
// report. Element paths in errors are XPath-like and 1-based
// ("Body/Tsunami/Forecast/Item[3]/Category/Kind/Code").
package jma

import (
	"encoding/xml"
	"strconv"
	"strings"

	"github.com/refuge-project/refuge/internal/alert"
)

// FormatName is the name of the format.
const FormatName = "jma"

func init() {
	alert.RegisterFormat(alert.Format{
		Name:  FormatName,
		Sniff: func(p *alert.Probe) bool { return p.XMLRoot.Local == "Report" },
		Parse: alert.One(Parse),
	})
}

// telegram is what refuge knows of one telegram type.
type telegram struct {
	code string
	kind alert.Kind
}

// telegrams maps Control/Title to the telegram type.
var telegrams = map[string]telegram{
	"緊急地震速報配信テスト":    {"VXSE42", alert.KindEEW},
	"緊急地震速報（警報）":     {"VXSE43", alert.KindEEW},
	"緊急地震速報（予報）":     {"VXSE44", alert.KindEEW},
	"緊急地震速報（地震動予報）":  {"VXSE45", alert.KindEEW},
	"震度速報":           {"VXSE51", alert.KindEarthquake},
	"震源に関する情報":       {"VXSE52", alert.KindEarthquake},
	"震源・震度に関する情報":    {"VXSE53", alert.KindEarthquake},
	"長周期地震動に関する観測情報": {"VXSE62", alert.KindEarthquake},
	"津波警報・注意報・予報a":   {"VTSE41", alert.KindTsunami},
	"津波情報a":          {"VTSE51", alert.KindTsunami},
}

var statuses = map[string]alert.Status{
	"通常": alert.StatusActual,
	"訓練": alert.StatusExercise,
	"試験": alert.StatusTest,
}

// Parse reads one JMA XML telegram.
func Parse(data []byte) (*alert.Alert, error) {
	var r report
	if err := alert.DecodeXML(FormatName, data, &r); err != nil {
		return nil, err
	}
	if err := checkNamespaces(&r); err != nil {
		return nil, err
	}
	a := &alert.Alert{Format: FormatName, Digest: alert.Digest(data)}
	if err := readControl(&r.Control, a); err != nil {
		return nil, err
	}
	if err := readHead(&r.Head, a); err != nil {
		return nil, err
	}
	if err := readBody(&r.Body, a); err != nil {
		return nil, err
	}
	return a, nil
}

func errAt(path, msg string, args ...any) error { return alert.Errorf(FormatName, path, msg, args...) }

func checkNamespaces(r *report) error {
	if r.XMLName.Local != "Report" {
		return errAt("", "root element <%s>, want <Report>", r.XMLName.Local)
	}
	for _, part := range []struct {
		path string
		name xml.Name
		want string
	}{
		{"Report", r.XMLName, nsReport},
		{"Control", r.Control.XMLName, nsReport},
		{"Head", r.Head.XMLName, nsHead},
		{"Body", r.Body.XMLName, nsSeismology},
	} {
		if part.name.Local == "" {
			return errAt(part.path, "missing")
		}
		if part.name.Space != part.want {
			return errAt(part.path, "namespace %q, want %q", part.name.Space, part.want)
		}
	}
	return nil
}

func readControl(c *control, a *alert.Alert) error {
	title := strings.TrimSpace(c.Title)
	t, ok := telegrams[title]
	switch {
	case title == "":
		return errAt("Control/Title", "missing")
	case !ok:
		return errAt("Control/Title", "unknown telegram type %q (supported: VXSE42-45, VXSE51-53, VXSE62, VTSE41, VTSE51)", title)
	}
	a.Product, a.Kind = t.code, t.kind
	status, ok := statuses[strings.TrimSpace(c.Status)]
	if !ok {
		return errAt("Control/Status", "%q, want 通常, 訓練 or 試験", c.Status)
	}
	a.Status = status
	a.Issuer = strings.TrimSpace(c.PublishingOffice)
	if a.Issuer == "" {
		a.Issuer = strings.TrimSpace(c.EditorialOffice)
	}
	return nil
}

func readHead(h *head, a *alert.Alert) error {
	if a.EventID = strings.TrimSpace(h.EventID); a.EventID == "" {
		return errAt("Head/EventID", "missing")
	}
	t, err := alert.ParseTime(h.ReportDateTime)
	if err != nil {
		return errAt("Head/ReportDateTime", "%v", err)
	}
	a.IssuedAt = t
	if s := strings.TrimSpace(h.Serial); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errAt("Head/Serial", "%q is not a non-negative integer", h.Serial)
		}
		a.Serial = n
	}
	switch strings.TrimSpace(h.InfoType) {
	case "発表", "遅延":
		a.MsgType = alert.MsgAlert
		if a.Serial > 1 {
			a.MsgType = alert.MsgUpdate
		}
	case "訂正":
		a.MsgType = alert.MsgUpdate
	case "取消":
		a.MsgType = alert.MsgCancel
	default:
		return errAt("Head/InfoType", "%q, want 発表, 訂正, 遅延 or 取消", h.InfoType)
	}
	a.Headline = strings.TrimSpace(h.Headline.Text)
	if a.Headline == "" {
		a.Headline = strings.TrimSpace(h.Title)
	}
	return nil
}

func readBody(b *body, a *alert.Alert) error {
	if len(b.Earthquakes) > 0 {
		if err := readEarthquake(&b.Earthquakes[0], a); err != nil {
			return err
		}
	}
	if b.Intensity != nil {
		if err := readIntensity(b.Intensity, a); err != nil {
			return err
		}
	}
	if b.Tsunami != nil && b.Tsunami.Forecast != nil {
		if err := readTsunami(b.Tsunami.Forecast.Items, a); err != nil {
			return err
		}
	}
	a.Final = a.Kind == alert.KindEEW && strings.Contains(b.NextAdvisory, "最終報")
	return nil
}
