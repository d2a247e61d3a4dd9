package webhook

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/validate"
)

// FormatName is the name of the format of relay bodies. Alerts relayed as
// fields have this format; alerts relayed as an embedded document have the
// document's.
const FormatName = "webhook"

// BodyVersion is the version of the body schema this package reads.
const BodyVersion = 1

func init() {
	alert.RegisterFormat(alert.Format{
		Name:  FormatName,
		Sniff: func(p *alert.Probe) bool { return !p.JSONArray && p.Has("relay_id") },
		Parse: func(data []byte) ([]*alert.Alert, error) {
			_, alerts, err := ParseBody(data)
			return alerts, err
		},
	})
}

// Body is the JSON body of a relay request. It carries an alert either as
// an original document (Document: JMA XML, CAP, P2PQuake JSON, … as
// received by the relay, parsed with alert.ParseAll) or as fields (EventID,
// Kind, Status, MsgType and IssuedAt required; the rest optional, with the
// meaning and JSON form they have in alert.Alert) — never both.
type Body struct {
	// Version is BodyVersion.
	Version int `json:"version"`
	// RelayID names the relay; it must equal the X-Refuge-Relay header.
	RelayID string `json:"relay_id"`
	// Nonce is any string that makes a body unique, for relays that send
	// the same body twice within a second (it would otherwise be a
	// replay).
	Nonce string `json:"nonce,omitempty"`

	Document string `json:"document,omitempty"`

	EventID      string                  `json:"event_id,omitempty"`
	Serial       int                     `json:"serial,omitempty"`
	Kind         alert.Kind              `json:"kind,omitempty"`
	Status       alert.Status            `json:"status,omitempty"`
	MsgType      alert.MsgType           `json:"msg_type,omitempty"`
	IssuedAt     time.Time               `json:"issued_at,omitzero"`
	Headline     string                  `json:"headline,omitempty"`
	OriginTime   time.Time               `json:"origin_time,omitzero"`
	Hypocenter   *alert.Hypocenter       `json:"hypocenter,omitempty"`
	Magnitude    *alert.Magnitude        `json:"magnitude,omitempty"`
	MaxIntensity alert.Intensity         `json:"max_intensity,omitempty"`
	Areas        []alert.Area            `json:"areas,omitempty"`
	Tsunami      []alert.TsunamiForecast `json:"tsunami,omitempty"`
}

// relayIDPattern is what a relay id may look like.
var relayIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseBody reads a relay body and returns it with the alerts it carries
// (one, or several when the embedded document is a feed). Errors name the
// body field at fault.
func ParseBody(data []byte) (*Body, []*alert.Alert, error) {
	var b Body
	if err := alert.DecodeJSONStrict(FormatName, data, &b); err != nil {
		return nil, nil, err
	}
	if b.Version != BodyVersion {
		return nil, nil, errAt("version", "%d, want %d", b.Version, BodyVersion)
	}
	if !relayIDPattern.MatchString(b.RelayID) {
		return nil, nil, errAt("relay_id", "%q: want 1-64 letters, digits, '.', '_' or '-'", b.RelayID)
	}
	var alerts []*alert.Alert
	var err error
	if b.Document != "" {
		alerts, err = b.documentAlerts()
	} else {
		alerts, err = b.fieldAlert(data)
	}
	if err != nil {
		return nil, nil, err
	}
	return &b, alerts, nil
}

func errAt(path, msg string, args ...any) error { return alert.Errorf(FormatName, path, msg, args...) }

func (b *Body) documentAlerts() ([]*alert.Alert, error) {
	if extra := b.alertFields(); len(extra) > 0 {
		return nil, errAt("document", "cannot be combined with alert fields (%s)", strings.Join(extra, ", "))
	}
	doc := []byte(b.Document)
	format, err := alert.Sniff(doc)
	if err != nil {
		return nil, errAt("document", "%v", err)
	}
	if format == FormatName {
		return nil, errAt("document", "a relay body cannot embed another relay body")
	}
	alerts, err := alert.ParseAllFormat(format, doc)
	if err != nil {
		return nil, errAt("document", "%v", err)
	}
	return alerts, nil
}

// alertFields lists the JSON names of the alert fields that are set.
func (b *Body) alertFields() []string {
	c := *b
	c.Document = ""
	js, _ := json.Marshal(&c) // cannot fail: plain fields and enums read from JSON
	var m map[string]json.RawMessage
	_ = json.Unmarshal(js, &m)
	var names []string
	for k := range m {
		switch k {
		case "version", "relay_id", "nonce", "document":
		default:
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

func (b *Body) fieldAlert(data []byte) ([]*alert.Alert, error) {
	a := &alert.Alert{
		Format: FormatName, Product: "relay", Issuer: "relay:" + b.RelayID, Digest: alert.Digest(data),
		EventID: b.EventID, Serial: b.Serial, Kind: b.Kind, Status: b.Status, MsgType: b.MsgType,
		IssuedAt: b.IssuedAt, Headline: b.Headline, OriginTime: b.OriginTime,
		Hypocenter: b.Hypocenter, Magnitude: b.Magnitude, MaxIntensity: b.MaxIntensity,
		Areas: b.Areas, Tsunami: b.Tsunami,
	}
	for i := range a.Areas {
		for j, p := range a.Areas[i].Polygons {
			poly, err := alert.NewPolygon(p)
			if err != nil {
				return nil, errAt(validate.Index(validate.Field(validate.Index("areas", i), "polygons"), j), "%v", err)
			}
			a.Areas[i].Polygons[j] = poly
		}
	}
	if err := a.Validate(); err != nil {
		return nil, alert.WrapError(FormatName, "", err) // paths are the body's
	}
	return []*alert.Alert{a}, nil
}
