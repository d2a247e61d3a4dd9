package alert

import (
	"fmt"
	"strings"
	"time"
)

// JST is Japan Standard Time (UTC+9, no daylight saving), the zone of
// P2PQuake's and JMA's local times.
var JST = time.FixedZone("JST", 9*60*60)

// Times in an Alert lie within [MinTime, MaxTime): older or later ones are
// refused as implausible (and could not all be written as JSON).
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// CheckTime refuses times outside [MinTime, MaxTime).
func CheckTime(t time.Time) error {
	if t.Before(MinTime) || !t.Before(MaxTime) {
		return fmt.Errorf("time %s is outside [%d, %d)", t.Format(time.RFC3339), MinTime.Year(), MaxTime.Year())
	}
	return nil
}

// ParseTime reads an RFC 3339 time with a zone offset (JMA, CAP, ShakeAlert)
// and checks it with CheckTime. Surrounding white space is ignored.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time with a zone offset", s)
	}
	return t, CheckTime(t)
}

// ParseLocalTime reads a time in the given layout, which carries no zone,
// as a time in loc, and checks it with CheckTime. Fractional seconds after
// the seconds are accepted even when the layout has none.
func ParseLocalTime(layout, s string, loc *time.Location) (time.Time, error) {
	t, err := time.ParseInLocation(layout, strings.TrimSpace(s), loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a time of the form %q", s, layout)
	}
	return t, CheckTime(t)
}
