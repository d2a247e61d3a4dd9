package threat

import (
	"math"
	"testing"

	"github.com/refuge-project/refuge/internal/alert"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.6g, want %.6g (±%g)", what, got, want, tol)
	}
}

func TestDistanceKm(t *testing.T) {
	// One degree of latitude is 2πR/360 = 111.1949 km; a quarter of the
	// equator πR/2 = 10 007.543 km.
	near(t, "1° of latitude", DistanceKm(alert.LatLon{35, 135}, alert.LatLon{36, 135}), 111.194927, 1e-4)
	near(t, "quarter equator", DistanceKm(alert.LatLon{0, 0}, alert.LatLon{0, 90}), 10007.543, 1e-3)
	near(t, "across the antimeridian", DistanceKm(alert.LatLon{0, 179.5}, alert.LatLon{0, -179.5}), 111.194927, 1e-4)
	near(t, "same point", DistanceKm(alert.LatLon{33.5, 133.6}, alert.LatLon{33.5, 133.6}), 0, 0)
	// Hand-computed (haversine): 豊後水道 epicentre of the 2024-04-17
	// sample (33.2 N, 132.4 E) to the Kochi example site (33.548 N,
	// 133.678 E): Δφ = 0.348°, Δλ = 1.278°, h = sin²(Δφ/2) + cos φ1 cos φ2
	// sin²(Δλ/2) = 9.2245e-6 + 0.83676·0.83342·1.2438e-4 = 9.6000e-5,
	// d = 2R asin(√h) = 124.82 km.
	near(t, "Bungo channel to Kochi", DistanceKm(alert.LatLon{33.2, 132.4}, alert.LatLon{33.548, 133.678}), 124.8217, 1e-3)
	near(t, "hypocentral", HypocentralKm(124.8216544, 30), 128.3761871, 1e-6)
	near(t, "hypocentral above datum", HypocentralKm(40, -2), 40, 0)
}

func TestFaultLengthAndDistance(t *testing.T) {
	// Utsu: log10 L = 0.5 M − 1.85.
	near(t, "L(M5.8)", FaultLengthKm(5.8), math.Pow(10, 1.05), 1e-9) // 11.22 km
	near(t, "L(M8)", FaultLengthKm(8), math.Pow(10, 2.15), 1e-9)     // 141.3 km
	near(t, "X", FaultDistanceKm(128.37618707, 5.8), 128.37618707-11.22018454/2, 1e-6)
	near(t, "X floor", FaultDistanceKm(30, 8), MinFaultKm, 0)
}

func TestPGV600(t *testing.T) {
	// Hand-computed Si & Midorikawa (1999), Mw 7, D 10 km, X 50 km, crustal:
	// 0.58·7 = 4.06; 0.0038·10 = 0.038; 0.0028·10^3.5 = 8.8544;
	// log10(50 + 8.8544) = 1.769779; 0.002·50 = 0.1;
	// log10 PGV = 4.06 + 0.038 − 1.29 − 1.769779 − 0.1 = 0.938221 → 8.6771 cm/s.
	near(t, "PGV600 crustal", PGV600(7, 10, 50, FaultCrustal), math.Pow(10, 0.938221), 1e-4)
	near(t, "PGV600 interplate", PGV600(7, 10, 50, FaultInterplate), math.Pow(10, 0.938221-0.02), 1e-4)
	near(t, "PGV600 intraplate", PGV600(7, 10, 50, FaultIntraplate), math.Pow(10, 0.938221+0.12), 1e-4)
	// Clamps: Mw above 8.3 and depth beyond 120 km are not extrapolated.
	near(t, "Mw clamp", PGV600(9, 10, 100, FaultCrustal), PGV600(8.3, 10, 100, FaultCrustal), 0)
	near(t, "depth clamp", PGV600(7, 400, 100, FaultCrustal), PGV600(7, 120, 100, FaultCrustal), 0)
}

func TestAmplificationAndIntensity(t *testing.T) {
	// Midorikawa et al. (1994): log10 ARV = 1.83 − 0.66 log10 AVS30.
	// AVS30 400: 1.83 − 0.66·2.602060 = 0.112640 → 1.29611.
	near(t, "ARV(400)", Amplification(400), 1.296106, 1e-5)
	// ≈ 1 at the 600 m/s reference: 1.83 − 0.66·2.778151 = −0.003580 → 0.99179.
	near(t, "ARV(600)", Amplification(600), 0.991791, 1e-5)
	// Midorikawa et al. (1999): I = 2.68 + 1.72 log10 PGV.
	near(t, "I(10 cm/s)", InstrumentalIntensity(10), 4.40, 1e-12)
	near(t, "I(100 cm/s)", InstrumentalIntensity(100), 6.12, 1e-12)
	near(t, "I(0)", InstrumentalIntensity(0), 0, 0)

	for _, c := range []struct {
		i    float64
		want alert.Intensity
	}{
		{-1, alert.Intensity0}, {0.49, alert.Intensity0}, {0.5, alert.Intensity1}, {2.5, alert.Intensity3},
		{4.49, alert.Intensity4}, {4.5, alert.Intensity5Lower}, {4.99, alert.Intensity5Lower}, {5.0, alert.Intensity5Upper},
		{5.5, alert.Intensity6Lower}, {5.99, alert.Intensity6Lower}, {6.0, alert.Intensity6Upper}, {6.5, alert.Intensity7},
		{8, alert.Intensity7}, {math.NaN(), alert.IntensityUnknown},
	} {
		if got := IntensityClass(c.i); got != c.want {
			t.Errorf("IntensityClass(%v) = %s, want %s", c.i, got, c.want)
		}
	}
}

func TestEstimateShakingBungoChannelAtKochi(t *testing.T) {
	// The 2024-04-17 豊後水道 EEW sample (M5.8, 30 km deep, 33.2 N 132.4 E)
	// at the Kochi example site, default AVS30 400 m/s, hand-computed:
	//   Δ = 124.8217 km, R = √(Δ² + 30²) = 128.3762 km,
	//   L = 10^(2.9 − 1.85) = 11.2202 km, X = R − L/2 = 122.7661 km,
	//   log10 PGV600 = 3.364 + 0.114 − 1.29 − log10(122.7661 + 2.2240)
	//                  − 0.24553 = −0.154394 → 0.700796 cm/s,
	//   PGV = 0.700796 · 1.296106 = 0.908306 cm/s,
	//   I = 2.68 + 1.72 log10 0.908306 = 2.6082 → intensity 3.
	s := EstimateShaking(alert.LatLon{33.548, 133.678}, alert.LatLon{33.2, 132.4}, 30, 5.8, Amplification(400), FaultCrustal)
	near(t, "Δ", s.EpicentralKm, 124.8217, 1e-3)
	near(t, "R", s.HypocentralKm, 128.3762, 1e-3)
	near(t, "X", s.FaultKm, 122.7661, 1e-3)
	near(t, "PGV600", s.PGV600, 0.700796, 1e-5)
	near(t, "PGV", s.PGV, 0.908306, 1e-5)
	near(t, "I", s.Instrumental, 2.6082, 1e-4)
	if s.Class != alert.Intensity3 {
		t.Errorf("class %s, want 3", s.Class)
	}
}

func TestInPolygon(t *testing.T) {
	// A CAP-style ring: "lat,lon" pairs, i.e. [lat, lon] LatLons. The
	// square spans lat 33-34 and lon 133-135: wider than tall, so
	// swapping the axes would put (33.5, 134.5) outside.
	sq := alert.Polygon{{33, 133}, {33, 135}, {34, 135}, {34, 133}, {33, 133}}
	for _, c := range []struct {
		p    alert.LatLon
		want bool
	}{
		{alert.LatLon{33.5, 134.5}, true},
		{alert.LatLon{33.5, 133.1}, true},
		{alert.LatLon{34.5, 134}, false},
		{alert.LatLon{33.5, 135.5}, false},
		{alert.LatLon{134.5, 33.5}, false}, // [lon, lat] by mistake
	} {
		if got := InPolygon(c.p, sq); got != c.want {
			t.Errorf("InPolygon(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	// A concave ring (an L shape) keeps its notch out.
	l := alert.Polygon{{0, 0}, {0, 2}, {1, 2}, {1, 1}, {2, 1}, {2, 0}, {0, 0}}
	if !InPolygon(alert.LatLon{0.5, 1.5}, l) || InPolygon(alert.LatLon{1.5, 1.5}, l) {
		t.Error("concave ring misclassified")
	}
	// A ring across the antimeridian (Fiji-like, lon 179 to −179).
	am := alert.Polygon{{-17, 179}, {-17, -179}, {-18, -179}, {-18, 179}, {-17, 179}}
	if !InPolygon(alert.LatLon{-17.5, 179.5}, am) || !InPolygon(alert.LatLon{-17.5, -179.5}, am) {
		t.Error("point inside an antimeridian ring is outside")
	}
	if InPolygon(alert.LatLon{-17.5, 0}, am) || InPolygon(alert.LatLon{-17.5, 178}, am) {
		t.Error("point outside an antimeridian ring is inside")
	}
	if InPolygon(alert.LatLon{0, 0}, alert.Polygon{{0, 0}, {1, 1}}) {
		t.Error("a degenerate ring contains nothing")
	}
}

func TestInCircle(t *testing.T) {
	c := alert.Circle{Center: alert.LatLon{35, 135}, RadiusKm: 111.2}
	if !InCircle(alert.LatLon{36, 135}, c) { // 111.195 km
		t.Error("point 111.195 km away is outside a 111.2 km circle")
	}
	if InCircle(alert.LatLon{36.01, 135}, c) {
		t.Error("point 112.3 km away is inside a 111.2 km circle")
	}
	if InCircle(alert.LatLon{35, 135.0001}, alert.Circle{Center: alert.LatLon{35, 135}}) {
		t.Error("a circle of radius 0 holds only its centre")
	}
}
