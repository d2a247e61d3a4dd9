package threat

import (
	"fmt"
	"math"

	"github.com/refuge-project/refuge/internal/alert"
)

// FaultType selects the source-type term d of Si & Midorikawa (1999).
type FaultType string

// The fault types of Si & Midorikawa (1999), and FaultAuto, which chooses
// one from the focal depth (an alert does not say).
const (
	FaultCrustal    FaultType = "crustal"    // shallow crustal earthquake, d = 0
	FaultInterplate FaultType = "interplate" // plate-boundary earthquake, d = −0.02
	FaultIntraplate FaultType = "intraplate" // intraslab earthquake, d = +0.12
	FaultAuto       FaultType = "auto"       // crustal above AutoIntraplateDepthKm, intraplate from it
)

// AutoIntraplateDepthKm is the focal depth from which FaultAuto takes an
// earthquake to lie in a subducting plate rather than in the crust (the
// Japanese crust is about 30 km thick). Of the two subduction types the
// worse for the sites is taken: intraslab (d = +0.12) rather than
// plate-boundary (−0.02).
const AutoIntraplateDepthKm = 30.0

// Resolve returns the fault type used for an earthquake at the given
// focal depth: FaultAuto chosen by depth, any other type itself.
func (f FaultType) Resolve(depthKm float64) FaultType {
	if f != FaultAuto {
		return f
	}
	if depthKm >= AutoIntraplateDepthKm {
		return FaultIntraplate
	}
	return FaultCrustal
}

// sourceTerm is d of the PGV equation of Si & Midorikawa (1999).
func (f FaultType) sourceTerm() float64 {
	switch f {
	case FaultInterplate:
		return -0.02
	case FaultIntraplate:
		return 0.12
	}
	return 0
}

// Bounds of the data Si & Midorikawa (1999) fitted: moment magnitudes up to
// 8.3 and focal depths to about 120 km. Inputs beyond them are clamped, not
// extrapolated.
const (
	SMMaxMw      = 8.3
	SMMaxDepthKm = 120.0
	// MinFaultKm is the least fault distance assumed: a site is never taken
	// to be closer to the rupture than this.
	MinFaultKm = 3.0
)

// FaultLengthKm is the rupture length of an earthquake of magnitude m from
// Utsu's empirical relation for Japanese earthquakes,
// log10 L = 0.5 M − 1.85 (Utsu 1977; L in km).
func FaultLengthKm(m float64) float64 {
	return math.Pow(10, 0.5*m-1.85)
}

// FaultDistanceKm approximates the shortest distance from a site to the
// rupture of a point-source earthquake: the hypocentral distance less half
// the rupture length (the hypocentre taken to lie at the middle of the
// fault), and at least MinFaultKm. The length uses the magnitude as given,
// not clamped: a great earthquake's rupture really is that long even where
// its magnitude term is clamped (SMMaxMw).
func FaultDistanceKm(hypocentralKm, m float64) float64 {
	return math.Max(hypocentralKm-FaultLengthKm(m)/2, MinFaultKm)
}

// PGV600 is the peak ground velocity (cm/s, larger horizontal component) on
// a stiff site with AVS30 ≈ 600 m/s, from the attenuation relation of
// Si & Midorikawa (1999):
//
//	log10 PGV = 0.58 Mw + 0.0038 D + d − 1.29 − log10(X + 0.0028·10^(0.50 Mw)) − 0.002 X
//
// with Mw the moment magnitude (clamped to SMMaxMw), D the focal depth in km
// (clamped to [0, SMMaxDepthKm]), d the source-type term and X the fault
// distance in km.
func PGV600(mw, depthKm, faultKm float64, ft FaultType) float64 {
	mw = math.Min(mw, SMMaxMw)
	d := math.Min(math.Max(depthKm, 0), SMMaxDepthKm)
	x := math.Max(faultKm, 0)
	lg := 0.58*mw + 0.0038*d + ft.sourceTerm() - 1.29 - math.Log10(x+0.0028*math.Pow(10, 0.5*mw)) - 0.002*x
	return math.Pow(10, lg)
}

// Amplification is the PGV amplification of the surface soil over a
// stiff site, from the average S-wave velocity of the top 30 m (m/s), by
// Midorikawa, Matsuoka & Sakugawa (1994):
//
//	log10 ARV = 1.83 − 0.66 log10 AVS30
//
// It is ≈ 1 at 600 m/s, the reference of PGV600, so the two combine
// directly: PGV = PGV600 · ARV.
func Amplification(avs30 float64) float64 {
	return math.Pow(10, 1.83-0.66*math.Log10(avs30))
}

// InstrumentalIntensity converts a surface PGV (cm/s) to JMA instrumental
// seismic intensity by Midorikawa, Fujimoto & Muramatsu (1999):
//
//	I = 2.68 + 1.72 log10 PGV
//
// fitted over 4 ≤ I ≤ 7; below 4 the value is an extrapolation (refuge acts
// on intensities of 5- and above).
func InstrumentalIntensity(pgv float64) float64 {
	if !(pgv > 0) {
		return 0 // no motion (and never −Inf, which JSON cannot carry)
	}
	return 2.68 + 1.72*math.Log10(pgv)
}

// IntensityClass returns the JMA seismic intensity class of an instrumental
// intensity (JMA's rounding: 0 below 0.5, 1 below 1.5, …, 4 below 4.5,
// 5- below 5.0, 5+ below 5.5, 6- below 6.0, 6+ below 6.5, 7 from 6.5).
func IntensityClass(i float64) alert.Intensity {
	switch {
	case math.IsNaN(i):
		return alert.IntensityUnknown
	case i < 0.5:
		return alert.Intensity0
	case i < 1.5:
		return alert.Intensity1
	case i < 2.5:
		return alert.Intensity2
	case i < 3.5:
		return alert.Intensity3
	case i < 4.5:
		return alert.Intensity4
	case i < 5.0:
		return alert.Intensity5Lower
	case i < 5.5:
		return alert.Intensity5Upper
	case i < 6.0:
		return alert.Intensity6Lower
	case i < 6.5:
		return alert.Intensity6Upper
	}
	return alert.Intensity7
}

// MMIToJMA converts a Modified Mercalli intensity to a JMA instrumental
// intensity through peak ground velocity: the PGV of the MMI level by
// inverting Worden et al. (2012), the relation ShakeMap uses
// (MMI = 3.78 + 1.47 log10 PGV up to MMI 4.56, 2.89 + 3.16 log10 PGV above;
// Worden, Gerstenberger, Rhoades & Wald, BSSA 102(1), 204–221), then
// InstrumentalIntensity. MMI 8 is about 5.5 (5+ / 6-), MMI 6 about 4.4.
func MMIToJMA(mmi float64) float64 {
	var lg float64
	if mmi <= 4.56 {
		lg = (mmi - 3.78) / 1.47
	} else {
		lg = (mmi - 2.89) / 3.16
	}
	return InstrumentalIntensity(math.Pow(10, lg))
}

// Shaking is the ground-motion estimate at one site.
type Shaking struct {
	EpicentralKm  float64 `json:"epicentral_km"`
	HypocentralKm float64 `json:"hypocentral_km"`
	// FaultKm is the fault distance X used by the attenuation relation.
	FaultKm float64 `json:"fault_km"`
	// PGV600 and PGV are the peak ground velocities (cm/s) on a stiff
	// site and at the surface of the site; Amplification is their ratio.
	PGV600        float64 `json:"pgv600_cms"`
	Amplification float64 `json:"amplification"`
	PGV           float64 `json:"pgv_cms"`
	// FaultType is the source type the relation used.
	FaultType FaultType `json:"fault_type"`
	// Median is the JMA instrumental intensity computed from PGV (the
	// relation's median), Margin what the policy adds to it
	// (shaking.margin), Instrumental their sum and Class its intensity
	// class.
	Median       float64         `json:"median_instrumental_intensity"`
	Margin       float64         `json:"margin"`
	Instrumental float64         `json:"instrumental_intensity"`
	Class        alert.Intensity `json:"intensity"`
}

// EstimateShaking runs the ground-motion chain for a site: distances,
// fault distance, PGV600 (Si & Midorikawa 1999, fault type resolved by
// depth), surface amplification and JMA intensity (Midorikawa et al.
// 1999), the median without margin. mag is taken as the moment magnitude
// (see docs/threat.md on Mj and Mw).
func EstimateShaking(site alert.LatLon, hypo alert.LatLon, depthKm, mag, amplification float64, ft FaultType) Shaking {
	var s Shaking
	s.EpicentralKm = DistanceKm(site, hypo)
	s.HypocentralKm = HypocentralKm(s.EpicentralKm, depthKm)
	s.FaultKm = FaultDistanceKm(s.HypocentralKm, mag)
	s.FaultType = ft.Resolve(depthKm)
	s.PGV600 = PGV600(mag, depthKm, s.FaultKm, s.FaultType)
	s.Amplification = amplification
	s.PGV = s.PGV600 * amplification
	s.Median = InstrumentalIntensity(s.PGV)
	return s.WithMargin(0)
}

// WithMargin returns the estimate with margin intensity units added to
// the median.
func (s Shaking) WithMargin(margin float64) Shaking {
	s.Margin = margin
	s.Instrumental = s.Median + margin
	s.Class = IntensityClass(s.Instrumental)
	return s
}

// String summarises the estimate.
func (s Shaking) String() string {
	return fmt.Sprintf("Δ %.0f km, R %.0f km, X %.0f km, %s, PGV %.2f cm/s (×%.2f), I %.2f + %.2f → %s",
		s.EpicentralKm, s.HypocentralKm, s.FaultKm, s.FaultType, s.PGV, s.Amplification, s.Median, s.Margin, s.Class)
}
