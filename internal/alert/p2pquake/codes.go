package p2pquake

import (
	"strconv"
	"strings"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/validate"
)

// readQuake reads a 551 (JMA earthquake information).
func readQuake(path string, it *item, a *alert.Alert) error {
	a.Kind = alert.KindEarthquake
	if it.Issue == nil {
		return errAt(validate.Field(path, "issue"), "missing")
	}
	var err error
	if a.IssuedAt, err = parseTime(validate.Field(path, "issue.time"), it.Issue.Time); err != nil {
		return err
	}
	if c := it.Issue.Correct; c != "" && c != "None" {
		a.MsgType = alert.MsgUpdate
	}
	eq := it.Earthquake
	if eq == nil {
		return errAt(validate.Field(path, "earthquake"), "missing")
	}
	if a.OriginTime, err = parseTime(validate.Field(path, "earthquake.time"), eq.Time); err != nil {
		return err
	}
	a.EventID = "p2pquake-" + a.OriginTime.In(alert.JST).Format("20060102150405")
	if err := readHypocenter(validate.Field(path, "earthquake.hypocenter"), eq.Hypocenter, a); err != nil {
		return err
	}
	if eq.MaxScale != nil {
		if a.MaxIntensity, err = scale(validate.Field(path, "earthquake.maxScale"), *eq.MaxScale); err != nil {
			return err
		}
	}
	for i, p := range it.Points {
		ppath := validate.Index(validate.Field(path, "points"), i)
		if !p.IsArea {
			continue // a station; refuge keeps areas only
		}
		if strings.TrimSpace(p.Addr) == "" {
			return errAt(validate.Field(ppath, "addr"), "missing")
		}
		in, err := scale(validate.Field(ppath, "scale"), p.Scale)
		if err != nil {
			return err
		}
		a.Areas = append(a.Areas, alert.Area{Name: strings.TrimSpace(p.Addr), Intensity: in})
		a.MaxIntensity = max(a.MaxIntensity, in)
	}
	return nil
}

// grades maps 552 area grades to tsunami categories. P2PQuake's "Unknown"
// grade is refused rather than guessed.
var grades = map[string]alert.TsunamiCategory{
	"MajorWarning": alert.TsunamiMajorWarning,
	"Warning":      alert.TsunamiWarning,
	"Watch":        alert.TsunamiAdvisory,
}

// readTsunami reads a 552 (JMA tsunami forecast).
func readTsunami(path string, it *item, a *alert.Alert) error {
	a.Kind = alert.KindTsunami
	if it.Issue == nil {
		return errAt(validate.Field(path, "issue"), "missing")
	}
	var err error
	if a.IssuedAt, err = parseTime(validate.Field(path, "issue.time"), it.Issue.Time); err != nil {
		return err
	}
	a.EventID = it.ID
	if a.EventID == "" {
		a.EventID = "p2pquake-tsunami-" + a.IssuedAt.In(alert.JST).Format("20060102150405")
	}
	if it.Cancelled {
		a.MsgType = alert.MsgCancel
	}
	for i := range it.Areas {
		f, err := readTsunamiArea(validate.Index(validate.Field(path, "areas"), i), &it.Areas[i])
		if err != nil {
			return err
		}
		a.Tsunami = append(a.Tsunami, f)
	}
	return nil
}

func readTsunamiArea(path string, ar *area) (alert.TsunamiForecast, error) {
	f := alert.TsunamiForecast{Name: strings.TrimSpace(ar.Name), Immediate: ar.Immediate}
	if f.Name == "" {
		return f, errAt(validate.Field(path, "name"), "missing")
	}
	cat, ok := grades[ar.Grade]
	if !ok {
		return f, errAt(validate.Field(path, "grade"), "%q, want MajorWarning, Warning or Watch", ar.Grade)
	}
	f.Category = cat
	if fh := ar.FirstHeight; fh != nil {
		if fh.ArrivalTime != "" {
			t, err := parseTime(validate.Field(path, "firstHeight.arrivalTime"), fh.ArrivalTime)
			if err != nil {
				return f, err
			}
			f.ArrivalTime = t
		}
		f.Condition = strings.TrimSpace(fh.Condition)
		f.Immediate = f.Immediate || alert.ImmediateTsunami(f.Condition)
	}
	if mh := ar.MaxHeight; mh != nil {
		f.HeightText = strings.TrimSpace(mh.Description)
		if v := mh.Value; v != nil {
			if !(*v >= 0 && *v <= 100) {
				return f, errAt(validate.Field(path, "maxHeight.value"), "%v is not a height in metres within [0, 100]", *v)
			}
			f.MaxHeightM = v
		}
	}
	return f, nil
}

// readDetection reads a 554 (an EEW broadcast was detected; no details).
func readDetection(path string, it *item, a *alert.Alert) error {
	a.Kind = alert.KindEEW
	if a.EventID = it.ID; a.EventID == "" {
		return errAt(validate.Field(path, "id"), "missing")
	}
	if it.Type != "" {
		a.Product += "/" + it.Type
	}
	var err error
	a.IssuedAt, err = parseTime(validate.Field(path, "time"), it.Time)
	return err
}

// readEEW reads a 556 (JMA earthquake early warning).
func readEEW(path string, it *item, a *alert.Alert) error {
	a.Kind = alert.KindEEW
	if it.Issue == nil {
		return errAt(validate.Field(path, "issue"), "missing")
	}
	var err error
	if a.IssuedAt, err = parseTime(validate.Field(path, "issue.time"), it.Issue.Time); err != nil {
		return err
	}
	if a.EventID = strings.TrimSpace(it.Issue.EventID); a.EventID == "" {
		return errAt(validate.Field(path, "issue.eventId"), "missing")
	}
	if s := strings.TrimSpace(it.Issue.Serial); s != "" {
		if a.Serial, err = strconv.Atoi(s); err != nil || a.Serial < 0 {
			return errAt(validate.Field(path, "issue.serial"), "%q is not a non-negative integer", it.Issue.Serial)
		}
	}
	switch {
	case it.Cancelled:
		a.MsgType = alert.MsgCancel
	case a.Serial > 1:
		a.MsgType = alert.MsgUpdate
	}
	if it.Test {
		a.Status = alert.StatusTest
	}
	if eq := it.Earthquake; eq != nil {
		if eq.OriginTime != "" {
			if a.OriginTime, err = parseTime(validate.Field(path, "earthquake.originTime"), eq.OriginTime); err != nil {
				return err
			}
		}
		if err := readHypocenter(validate.Field(path, "earthquake.hypocenter"), eq.Hypocenter, a); err != nil {
			return err
		}
	}
	for i := range it.Areas {
		ar, err := readEEWArea(validate.Index(validate.Field(path, "areas"), i), &it.Areas[i])
		if err != nil {
			return err
		}
		a.Areas = append(a.Areas, ar)
		a.MaxIntensity = max(a.MaxIntensity, ar.Intensity)
	}
	return nil
}

// readEEWArea reads a 556 forecast area: the upper end of its intensity
// range (the lower when the upper is 99, "or more"), its expected arrival,
// and kindCode 11 (already arrived).
func readEEWArea(path string, ar *area) (alert.Area, error) {
	out := alert.Area{Name: strings.TrimSpace(ar.Name), Arrived: ar.KindCode == "11"}
	if out.Name == "" {
		return out, errAt(validate.Field(path, "name"), "missing")
	}
	var from, to alert.Intensity
	var err error
	if ar.ScaleFrom != nil {
		if from, err = scaleOf(validate.Field(path, "scaleFrom"), *ar.ScaleFrom); err != nil {
			return out, err
		}
	}
	if ar.ScaleTo != nil && *ar.ScaleTo != 99 {
		if to, err = scaleOf(validate.Field(path, "scaleTo"), *ar.ScaleTo); err != nil {
			return out, err
		}
	}
	out.Intensity = max(from, to)
	if ar.ArrivalTime != nil && *ar.ArrivalTime != "" {
		if out.ArrivalTime, err = parseTime(validate.Field(path, "arrivalTime"), *ar.ArrivalTime); err != nil {
			return out, err
		}
	}
	return out, nil
}

// readHypocenter reads a hypocenter with P2PQuake's sentinels for unknown
// values (latitude/longitude -200, depth/magnitude -1).
func readHypocenter(path string, h *hypocenter, a *alert.Alert) error {
	if h == nil {
		return nil
	}
	if m := h.Magnitude; m != nil && *m != -1 {
		if !(*m >= alert.MinMagnitude && *m <= alert.MaxMagnitude) {
			return errAt(validate.Field(path, "magnitude"), "%v out of range [%d, %d]", *m, alert.MinMagnitude, alert.MaxMagnitude)
		}
		a.Magnitude = &alert.Magnitude{Value: *m}
	}
	if h.Latitude == nil || h.Longitude == nil || *h.Latitude == -200 || *h.Longitude == -200 {
		return nil
	}
	pos, err := alert.NewLatLon(*h.Latitude, *h.Longitude)
	if err != nil {
		return errAt(path, "%v", err)
	}
	out := &alert.Hypocenter{Lat: pos.Lat(), Lon: pos.Lon(), Name: strings.TrimSpace(h.Name)}
	if d := h.Depth; d != nil && *d != -1 {
		if err := alert.CheckDepth(*d); err != nil {
			return errAt(validate.Field(path, "depth"), "%v", err)
		}
		out.DepthKm = d
	}
	a.Hypocenter = out
	return nil
}
