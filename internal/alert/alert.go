// Package alert is refuge's normalized disaster alert: one Alert type that
// every source format (JMA disaster-prevention XML, OASIS CAP 1.2, USGS
// GeoJSON, P2PQuake JSON, ShakeAlert messages, the signed relay webhook) is
// converted into at its parser's boundary, so that nothing downstream knows
// where an alert came from.
//
// Coordinates are converted once, by the parsers: every position in an Alert
// is a LatLon ([latitude, longitude] in decimal degrees, WGS 84 as given by
// the source) and every depth is in kilometres below the surface.
//
// The parsers live in subpackages (jma, cap, usgs, p2pquake, shakealert,
// webhook) and register themselves with RegisterFormat; Parse and ParseAll
// sniff a document's format and dispatch to them. Import
// internal/alert/formats for its side effect to register all of them.
package alert

import (
	"time"
)

// Alert is one normalized alert message: a warning, forecast, observation
// report, update or cancellation about one event.
//
// Versions of an event share EventID; Serial (when the format has one) and
// then IssuedAt order them. Two alerts with the same EventID, Serial and
// IssuedAt are the same message, whatever source delivered them (see Newer
// and SameMessage).
type Alert struct {
	// Format is the name of the format the alert was parsed from ("jma",
	// "cap", "usgs", "p2pquake", "shakealert", "webhook").
	Format string `json:"format"`
	// Product is the format-specific kind of message: the JMA telegram
	// type ("VXSE43"), the P2PQuake code ("556"), the USGS event type
	// ("earthquake"), the CAP event ("Earthquake"), the ShakeAlert
	// originating system ("dm").
	Product string `json:"product,omitempty"`
	// EventID identifies the event across versions (JMA EventID, USGS
	// event id, CAP identifier of the first message of the thread, …).
	EventID string `json:"event_id"`
	// Serial is the version number of the message within its event (JMA
	// Serial, ShakeAlert version); 0 when the format has none.
	Serial int `json:"serial,omitempty"`
	// Final is set on the last report of an earthquake early warning.
	Final bool `json:"final,omitempty"`
	// Issuer names who issued the message (JMA publishing office, CAP
	// sender, USGS network, relay id).
	Issuer string `json:"issuer,omitempty"`
	// IssuedAt is when the issuer published this version.
	IssuedAt time.Time `json:"issued_at"`
	// ReceivedAt is when refuge received it; parsers leave it zero and
	// sources (the webhook receiver, pollers) set it.
	ReceivedAt time.Time `json:"received_at,omitzero"`
	Kind       Kind      `json:"kind"`
	Status     Status    `json:"status"`
	MsgType    MsgType   `json:"msg_type"`
	// Headline is a short human-readable summary from the document.
	Headline string `json:"headline,omitempty"`

	// OriginTime is when the earthquake started, if known.
	OriginTime time.Time   `json:"origin_time,omitzero"`
	Hypocenter *Hypocenter `json:"hypocenter,omitempty"`
	Magnitude  *Magnitude  `json:"magnitude,omitempty"`
	// MaxIntensity is the largest JMA seismic intensity observed or
	// forecast anywhere (IntensityUnknown when the document has none).
	MaxIntensity Intensity `json:"max_intensity,omitempty"`

	// Areas are the areas the message is about: intensity forecast or
	// observation areas, CAP areas, ShakeAlert contours.
	Areas []Area `json:"areas,omitempty"`
	// Tsunami are tsunami forecasts, one per forecast area.
	Tsunami []TsunamiForecast `json:"tsunami,omitempty"`

	// Digest is "sha256:" and the hex SHA-256 of the raw document the
	// alert was parsed from (shared by every alert of a feed).
	Digest string `json:"digest"`
	// References are the earlier messages an update or cancellation
	// refers to, when the format names them (CAP). JMA, P2PQuake and
	// USGS updates refer to their event by EventID alone.
	References []Reference `json:"references,omitempty"`
}

// Kind is what an alert is about.
type Kind string

// The kinds of alert.
const (
	KindEEW        Kind = "eew"        // earthquake early warning: shaking is imminent
	KindEarthquake Kind = "earthquake" // an earthquake happened (hypocenter, observed intensities)
	KindTsunami    Kind = "tsunami"    // tsunami warning, advisory or forecast
	KindOther      Kind = "other"      // anything else (weather, volcano, …)
)

// Status says whether an alert is real.
type Status string

// The statuses of an alert. Only StatusActual alerts describe a real event;
// the others drive drills at most.
const (
	StatusActual   Status = "actual"   // a real event (JMA 通常, CAP Actual)
	StatusExercise Status = "exercise" // an exercise or drill (JMA 訓練, CAP Exercise)
	StatusTest     Status = "test"     // a technical test (JMA 試験, CAP Test/System, ShakeAlert test)
	StatusDraft    Status = "draft"    // not to be acted on (CAP Draft)
)

// MsgType says how a message relates to earlier ones of its event.
type MsgType string

// The message types.
const (
	MsgAlert  MsgType = "alert"  // the first message of an event
	MsgUpdate MsgType = "update" // a newer version (or correction) of an event
	MsgCancel MsgType = "cancel" // withdraws the event
)

// LatLon is a position: [latitude, longitude] in decimal degrees. It is an
// array so that it reads as [lat, lon] in JSON, whatever the source order.
type LatLon [2]float64

// Lat returns the latitude.
func (p LatLon) Lat() float64 { return p[0] }

// Lon returns the longitude.
func (p LatLon) Lon() float64 { return p[1] }

// Hypocenter is where an earthquake started.
type Hypocenter struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
	// DepthKm is the depth below the surface in kilometres; nil when
	// unknown. It may be slightly negative (USGS, above the datum).
	DepthKm *float64 `json:"depth_km,omitempty"`
	// Name is the region name (JMA 震央地名 "豊後水道", USGS place).
	Name string `json:"name,omitempty"`
	// Code is the region code (JMA 震央地名 code).
	Code string `json:"code,omitempty"`
}

// Position returns the epicentre.
func (h *Hypocenter) Position() LatLon { return LatLon{h.Lat, h.Lon} }

// Magnitude is an earthquake's magnitude.
type Magnitude struct {
	Value float64 `json:"value"`
	// Type is the magnitude type as given ("Mj", "Mw", "mb", …).
	Type string `json:"type,omitempty"`
}

// Area is one area an alert names.
type Area struct {
	Name  string     `json:"name,omitempty"`
	Codes []AreaCode `json:"codes,omitempty"`
	// Intensity is the maximum JMA intensity observed or forecast in the
	// area.
	Intensity Intensity `json:"intensity,omitempty"`
	// ArrivalTime is when strong motion is expected to arrive (EEW).
	ArrivalTime time.Time `json:"arrival_time,omitzero"`
	// Arrived is set when strong motion is estimated to have arrived
	// already (EEW: 既に主要動到達と推測).
	Arrived  bool      `json:"arrived,omitempty"`
	Polygons []Polygon `json:"polygons,omitempty"`
	Circles  []Circle  `json:"circles,omitempty"`
}

// Code returns the area's code in the given scheme, or "".
func (a *Area) Code(scheme string) string {
	for _, c := range a.Codes {
		if c.Scheme == scheme {
			return c.Value
		}
	}
	return ""
}

// AreaCode is a code naming an area within a coding scheme.
type AreaCode struct {
	// Scheme is one of the Scheme constants for JMA codes, or the CAP
	// geocode valueName as given ("SAME", "NUTS3", …).
	Scheme string `json:"scheme"`
	Value  string `json:"value"`
}

// The JMA area coding schemes (JMA codeType → Scheme).
const (
	SchemeJMASeismicArea = "jma-seismic-area" // 地震情報／細分区域
	SchemeJMAPref        = "jma-pref"         // 地震情報／都道府県等
	SchemeJMACity        = "jma-city"         // 気象・地震・火山情報／市町村等
	SchemeJMAEEWPref     = "jma-eew-pref"     // 緊急地震速報／府県予報区
	SchemeJMAEEWRegion   = "jma-eew-region"   // 緊急地震速報／地方予報区
	SchemeJMATsunamiArea = "jma-tsunami-area" // 津波予報区
)

// Polygon is a closed ring of positions: the first position is repeated
// last.
type Polygon []LatLon

// Circle is a disc on the surface.
type Circle struct {
	Center   LatLon  `json:"center"`
	RadiusKm float64 `json:"radius_km"`
}

// TsunamiForecast is the tsunami forecast for one coastal forecast area.
type TsunamiForecast struct {
	Name string `json:"name"`
	// Code is the JMA tsunami forecast area code (津波予報区), if given.
	Code     string          `json:"code,omitempty"`
	Category TsunamiCategory `json:"category"`
	// ArrivalTime is the expected arrival of the first wave.
	ArrivalTime time.Time `json:"arrival_time,omitzero"`
	// Immediate is set when the first wave is expected immediately, is
	// estimated to be arriving or has been observed: the document gives
	// no arrival time, and the deadline is now.
	Immediate bool `json:"immediate,omitempty"`
	// Condition is the source's wording of the arrival condition
	// ("津波到達中と推測", "第１波の到達を確認").
	Condition string `json:"condition,omitempty"`
	// MaxHeightM is the expected maximum height in metres; nil when the
	// source gives only words (see HeightText).
	MaxHeightM *float64 `json:"max_height_m,omitempty"`
	// HeightText is the source's description of the height ("１ｍ",
	// "巨大", "高い", "１０ｍ超").
	HeightText string `json:"height_text,omitempty"`
}

// Reference names an earlier message (CAP references).
type Reference struct {
	Sender string    `json:"sender"`
	ID     string    `json:"id"`
	Sent   time.Time `json:"sent"`
}

// Newer reports whether a is a newer version of its event than b: a higher
// Serial, or the same Serial and a later IssuedAt. It does not compare
// EventIDs.
func (a *Alert) Newer(b *Alert) bool {
	if a.Serial != b.Serial {
		return a.Serial > b.Serial
	}
	return a.IssuedAt.After(b.IssuedAt)
}

// SameMessage reports whether a and b are the same version of the same
// event (a duplicate, whatever source delivered each).
func (a *Alert) SameMessage(b *Alert) bool {
	return a.EventID == b.EventID && a.Serial == b.Serial && a.IssuedAt.Equal(b.IssuedAt) && a.MsgType == b.MsgType
}
