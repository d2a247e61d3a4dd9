package threat

import (
	"math"

	"github.com/refuge-project/refuge/internal/alert"
)

// EarthRadiusKm is the mean radius of the Earth (IUGG), used for
// great-circle distances. Treating the Earth as a sphere errs by less than
// 0.5 % against the WGS 84 ellipsoid, far below the scatter of any
// ground-motion equation.
const EarthRadiusKm = 6371.0

// DistanceKm returns the great-circle distance between two positions
// (haversine formula).
func DistanceKm(a, b alert.LatLon) float64 {
	const rad = math.Pi / 180
	φ1, φ2 := a.Lat()*rad, b.Lat()*rad
	dφ := φ2 - φ1
	dλ := (b.Lon() - a.Lon()) * rad
	h := math.Sin(dφ/2)*math.Sin(dφ/2) + math.Cos(φ1)*math.Cos(φ2)*math.Sin(dλ/2)*math.Sin(dλ/2)
	return 2 * EarthRadiusKm * math.Asin(math.Sqrt(math.Min(1, h)))
}

// HypocentralKm returns the straight-line distance from a hypocentre at
// depthKm below a point epicentralKm away along the surface: the flat-Earth
// approximation √(Δ² + H²), within 1 % of the chord for Δ ≤ 500 km.
// Negative depths (above the datum) count as 0.
func HypocentralKm(epicentralKm, depthKm float64) float64 {
	return math.Hypot(epicentralKm, math.Max(depthKm, 0))
}

// InPolygon reports whether p lies inside the polygon (a closed ring of
// [lat, lon] positions, as alert.Polygon holds them; CAP writes them the
// same way). It casts a ray along the latitude of p (even-odd rule) in the
// plane x = longitude, y = latitude, which is how CAP areas are drawn.
// A ring that crosses the antimeridian (spans more than 180° of longitude)
// is unwrapped first, by adding 360° to its negative longitudes and to
// p's. Points on an edge may fall on either side.
func InPolygon(p alert.LatLon, ring alert.Polygon) bool {
	if len(ring) < 3 {
		return false
	}
	minLon, maxLon := ring[0].Lon(), ring[0].Lon()
	for _, q := range ring {
		minLon, maxLon = math.Min(minLon, q.Lon()), math.Max(maxLon, q.Lon())
	}
	wrap := maxLon-minLon > 180
	lon := func(q alert.LatLon) float64 {
		if wrap && q.Lon() < 0 {
			return q.Lon() + 360
		}
		return q.Lon()
	}
	x, y := lon(p), p.Lat()
	inside := false
	for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
		xi, yi := lon(ring[i]), ring[i].Lat()
		xj, yj := lon(ring[j]), ring[j].Lat()
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			inside = !inside
		}
	}
	return inside
}

// InCircle reports whether p lies within the circle (great-circle distance
// from its centre at most its radius).
func InCircle(p alert.LatLon, c alert.Circle) bool {
	return DistanceKm(p, c.Center) <= c.RadiusKm
}
