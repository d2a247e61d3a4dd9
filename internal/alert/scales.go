package alert

import (
	"fmt"
	"strings"
)

// Intensity is a JMA seismic intensity class (震度階級). The classes are
// ordered, so intensities compare with < and >; the zero value is
// IntensityUnknown, below every class.
type Intensity int8

// The JMA seismic intensity classes.
const (
	IntensityUnknown Intensity = iota
	Intensity0
	Intensity1
	Intensity2
	Intensity3
	Intensity4
	Intensity5Lower // 5弱, "5-"
	Intensity5Upper // 5強, "5+"
	Intensity6Lower // 6弱, "6-"
	Intensity6Upper // 6強, "6+"
	Intensity7
)

var intensityNames = [...]string{"", "0", "1", "2", "3", "4", "5-", "5+", "6-", "6+", "7"}

// String returns the class as JMA writes it in XML ("4", "5-", "6+"), or
// "" for IntensityUnknown.
func (i Intensity) String() string {
	if i < 0 || int(i) >= len(intensityNames) {
		return fmt.Sprintf("Intensity(%d)", int8(i))
	}
	return intensityNames[i]
}

// Valid reports whether i is IntensityUnknown or one of the classes.
func (i Intensity) Valid() bool { return i >= IntensityUnknown && i <= Intensity7 }

// intensityWords maps the Japanese spellings of the split classes to the
// XML ones.
var intensityWords = strings.NewReplacer("弱", "-", "強", "+", "－", "-", "＋", "+")

// ParseIntensity reads an intensity class as JMA writes it in XML ("0"…"4",
// "5-", "5+", "6-", "6+", "7") or in text ("震度５弱", "6強"; full-width
// digits allowed). The empty string is IntensityUnknown.
func ParseIntensity(s string) (Intensity, error) {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" {
		return IntensityUnknown, nil
	}
	norm := intensityWords.Replace(toHalfWidthDigits(strings.TrimPrefix(trimmed, "震度")))
	for i, name := range intensityNames[1:] {
		if norm == name {
			return Intensity(i + 1), nil
		}
	}
	return IntensityUnknown, fmt.Errorf("unknown seismic intensity %q (want 0-4, 5-, 5+, 6-, 6+ or 7)", s)
}

// MarshalText writes the class as String does.
func (i Intensity) MarshalText() ([]byte, error) {
	if !i.Valid() {
		return nil, fmt.Errorf("invalid intensity %d", int8(i))
	}
	return []byte(i.String()), nil
}

// UnmarshalText reads what MarshalText writes (and what ParseIntensity
// reads).
func (i *Intensity) UnmarshalText(b []byte) error {
	v, err := ParseIntensity(string(b))
	if err != nil {
		return err
	}
	*i = v
	return nil
}

// toHalfWidthDigits replaces full-width digits (０-９) by ASCII ones.
func toHalfWidthDigits(s string) string {
	if !strings.ContainsFunc(s, isFullWidthDigit) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isFullWidthDigit(r) {
			return '0' + (r - '０')
		}
		return r
	}, s)
}

func isFullWidthDigit(r rune) bool { return r >= '０' && r <= '９' }

// TsunamiCategory is the class of a tsunami forecast for an area. The
// classes are ordered by severity; the zero value is TsunamiNone.
type TsunamiCategory int8

// The tsunami forecast categories, least severe first.
const (
	TsunamiNone         TsunamiCategory = iota // no tsunami expected, or a warning lifted
	TsunamiForecastOnly                        // slight sea-level change, no damage (JMA 津波予報)
	TsunamiAdvisory                            // JMA 津波注意報, P2PQuake Watch
	TsunamiWarning                             // JMA 津波警報
	TsunamiMajorWarning                        // JMA 大津波警報
)

var tsunamiNames = [...]string{"none", "forecast", "advisory", "warning", "major_warning"}

// String returns the category's name ("none", "forecast", "advisory",
// "warning", "major_warning").
func (c TsunamiCategory) String() string {
	if !c.Valid() {
		return fmt.Sprintf("TsunamiCategory(%d)", int8(c))
	}
	return tsunamiNames[c]
}

// Valid reports whether c is one of the categories.
func (c TsunamiCategory) Valid() bool { return c >= TsunamiNone && c <= TsunamiMajorWarning }

// MarshalText writes the category's name.
func (c TsunamiCategory) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, fmt.Errorf("invalid tsunami category %d", int8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a category's name.
func (c *TsunamiCategory) UnmarshalText(b []byte) error {
	for i, name := range tsunamiNames {
		if string(b) == name {
			*c = TsunamiCategory(i)
			return nil
		}
	}
	return fmt.Errorf("unknown tsunami category %q (want one of %s)", b, strings.Join(tsunamiNames[:], ", "))
}

// immediateConditions are JMA's wordings of a first-wave condition
// (FirstHeight/Condition, repeated by P2PQuake) that leave no time: the wave
// is imminent, arriving, estimated to have arrived, or observed.
var immediateConditions = []string{"ただちに津波来襲と予測", "津波到達中と推測", "既に津波到達", "第１波の到達を確認"}

// ImmediateTsunami reports whether a first-wave condition says the wave is
// imminent (ただちに津波来襲と予測), arriving (津波到達中と推測), estimated to
// have arrived (既に津波到達と推測, 早いところでは既に津波到達と推定) or
// observed (第１波の到達を確認).
func ImmediateTsunami(condition string) bool {
	for _, c := range immediateConditions {
		if strings.Contains(condition, c) {
			return true
		}
	}
	return false
}
