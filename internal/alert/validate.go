package alert

import (
	"encoding/hex"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/validate"
)

// Magnitude bounds accepted: USGS reports small negative magnitudes; no
// earthquake has exceeded 9.5.
const (
	MinMagnitude = -3
	MaxMagnitude = 10
)

// Validate checks every field of the alert and reports all problems at once
// as a validate.List, each naming its field by path ("hypocenter.lat",
// "areas[2].polygons[0][3]"). Parsers return alerts that validate.
func (a *Alert) Validate() error {
	var e validate.Errors
	validate.Required(&e, "format", a.Format)
	validate.Required(&e, "event_id", a.EventID)
	validate.AtLeast(&e, "serial", a.Serial, 0)
	checkEnum(&e, "kind", a.Kind, KindEEW, KindEarthquake, KindTsunami, KindOther)
	checkEnum(&e, "status", a.Status, StatusActual, StatusExercise, StatusTest, StatusDraft)
	checkEnum(&e, "msg_type", a.MsgType, MsgAlert, MsgUpdate, MsgCancel)
	if a.IssuedAt.IsZero() {
		e.Addf("issued_at", "is required")
	} else {
		checkTime(&e, "issued_at", a.IssuedAt)
	}
	checkTime(&e, "received_at", a.ReceivedAt)
	checkTime(&e, "origin_time", a.OriginTime)
	if !strings.HasPrefix(a.Digest, "sha256:") || len(a.Digest) != len("sha256:")+64 || !isHex(a.Digest[len("sha256:"):]) {
		e.Addf("digest", "must be \"sha256:\" and 64 hex digits, got %q", a.Digest)
	}
	if h := a.Hypocenter; h != nil {
		checkPosition(&e, "hypocenter", LatLon{h.Lat, h.Lon})
		if h.DepthKm != nil {
			validate.Within(&e, "hypocenter.depth_km", *h.DepthKm, MinDepthKm, MaxDepthKm)
		}
	}
	if m := a.Magnitude; m != nil {
		validate.Within(&e, "magnitude.value", m.Value, MinMagnitude, MaxMagnitude)
	}
	checkIntensity(&e, "max_intensity", a.MaxIntensity)
	for i := range a.Areas {
		a.Areas[i].validate(&e, validate.Index("areas", i))
	}
	for i := range a.Tsunami {
		a.Tsunami[i].validate(&e, validate.Index("tsunami", i))
	}
	for i, r := range a.References {
		p := validate.Index("references", i)
		validate.Required(&e, validate.Field(p, "id"), r.ID)
		checkTime(&e, validate.Field(p, "sent"), r.Sent)
	}
	return e.Err()
}

func (ar *Area) validate(e *validate.Errors, path string) {
	if ar.Name == "" && len(ar.Codes) == 0 && len(ar.Polygons) == 0 && len(ar.Circles) == 0 {
		e.Addf(path, "needs a name, a code, a polygon or a circle")
	}
	for i, c := range ar.Codes {
		p := validate.Index(validate.Field(path, "codes"), i)
		validate.Required(e, validate.Field(p, "scheme"), c.Scheme)
		validate.Required(e, validate.Field(p, "value"), c.Value)
	}
	checkIntensity(e, validate.Field(path, "intensity"), ar.Intensity)
	checkTime(e, validate.Field(path, "arrival_time"), ar.ArrivalTime)
	for i, poly := range ar.Polygons {
		p := validate.Index(validate.Field(path, "polygons"), i)
		if len(poly) < 3 || poly[0] != poly[len(poly)-1] {
			e.Addf(p, "must be a closed ring (first point repeated last) of at least 3 points, got %d points", len(poly))
		}
		for j, pt := range poly {
			checkPosition(e, validate.Index(p, j), pt)
		}
	}
	for i, c := range ar.Circles {
		p := validate.Index(validate.Field(path, "circles"), i)
		checkPosition(e, validate.Field(p, "center"), c.Center)
		validate.Within(e, validate.Field(p, "radius_km"), c.RadiusKm, 0, 20038) // half the Earth's circumference
	}
}

func (t *TsunamiForecast) validate(e *validate.Errors, path string) {
	if t.Name == "" && t.Code == "" {
		e.Addf(path, "needs a name or a code")
	}
	if !t.Category.Valid() {
		e.Addf(validate.Field(path, "category"), "invalid category %d", int8(t.Category))
	}
	checkTime(e, validate.Field(path, "arrival_time"), t.ArrivalTime)
	if t.MaxHeightM != nil {
		validate.Within(e, validate.Field(path, "max_height_m"), *t.MaxHeightM, 0, 100)
	}
}

func checkEnum[T ~string](e *validate.Errors, path string, v T, allowed ...T) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	e.Addf(path, "must be one of %s, got %q", strings.Join(names, ", "), v)
}

func checkTime(e *validate.Errors, path string, t time.Time) {
	if t.IsZero() {
		return
	}
	if err := CheckTime(t); err != nil {
		e.Addf(path, "%v", err)
	}
}

func checkPosition(e *validate.Errors, path string, p LatLon) {
	validate.Within(e, validate.Field(path, "lat"), p.Lat(), -90, 90)
	validate.Within(e, validate.Field(path, "lon"), p.Lon(), -180, 180)
}

func checkIntensity(e *validate.Errors, path string, i Intensity) {
	if !i.Valid() {
		e.Addf(path, "invalid intensity %d", int8(i))
	}
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
