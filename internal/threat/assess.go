// Package threat turns a normalized alert into per-site threats: for each
// site of a federation, how strongly it will shake and when (distances,
// P- and S-wave arrivals, a ground-motion estimate converted to JMA seismic
// intensity, or the intensity the alert forecasts for the site's area),
// whether a tsunami reaches its coast and when, and whether it lies inside
// an area the alert draws. A Policy turns those into a threat level and a
// deadline per site, and Assessment.Scenario writes the threatened sites as
// a model.Scenario: the seam between alerts and the planner and executor.
//
// Everything here is a pure function of the alert, the federation, the
// policy and a reference time; the equations and their sources are in
// docs/threat.md.
package threat

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/model"
)

// Hazards: what a site's deadline comes from.
const (
	HazardEarthquake = "earthquake" // mains power loss or damage from shaking
	HazardTsunami    = "tsunami"    // flooding by the first wave
	HazardArea       = "area"       // the site lies in an area the alert draws
)

// DefaultDepthKm is the focal depth assumed when an alert gives a
// hypocentre without one.
const DefaultDepthKm = 10.0

// Assessment is what an alert means for each site of a federation.
type Assessment struct {
	EventID  string        `json:"event_id"`
	Serial   int           `json:"serial,omitempty"`
	Format   string        `json:"format"`
	Product  string        `json:"product,omitempty"`
	Kind     alert.Kind    `json:"kind"`
	Status   alert.Status  `json:"status"`
	MsgType  alert.MsgType `json:"msg_type"`
	Headline string        `json:"headline,omitempty"`
	// Drill is the alert's status when it is not a real event (exercise,
	// test, draft), empty for an actual alert. Every site and every reason
	// of a drill carries it too, and its scenario is marked as a drill.
	Drill alert.Status `json:"drill,omitempty"`
	// Ref is the time deadlines are counted from (the moment the alert is
	// taken to arrive).
	Ref   time.Time    `json:"ref"`
	Sites []SiteThreat `json:"sites"`
	// Notes say what could not be assessed and why.
	Notes []string `json:"notes,omitempty"`
}

// SiteThreat is one site's threat.
type SiteThreat struct {
	Site string `json:"site"`
	// Drill repeats the assessment's Drill on every site.
	Drill alert.Status `json:"drill,omitempty"`
	Level Level        `json:"level"`
	// Hazard names what sets the deadline (or, without one, the worst
	// hazard found).
	Hazard string `json:"hazard,omitempty"`
	// DeadlineAt is when the site is expected to be lost; Deadline the
	// same as an offset from the assessment's Ref (negative when already
	// past). Both are set only at LevelEvacuate.
	DeadlineAt time.Time       `json:"deadline_at,omitzero"`
	Deadline   *model.Duration `json:"deadline,omitempty"`
	Approval   Approval        `json:"approval"`
	// Reasons explain the level, one line per hazard considered.
	Reasons []string      `json:"reasons,omitempty"`
	Shaking *SiteShaking  `json:"shaking,omitempty"`
	Tsunami *SiteTsunami  `json:"tsunami,omitempty"`
	Areas   []string      `json:"areas,omitempty"`
	hazards []hazardLevel // per hazard, for combining
}

type hazardLevel struct {
	hazard   string
	level    Level
	deadline time.Time // zero unless evacuate
	reason   string
}

// SiteShaking is the ground motion expected at a site.
type SiteShaking struct {
	// Estimate is the ground-motion estimate from the hypocentre and
	// magnitude, when the alert gives both.
	Estimate *Shaking `json:"estimate,omitempty"`
	// Amplification says where the site amplification came from.
	AmplificationFrom string `json:"amplification_from,omitempty"`
	// Forecast is the intensity the alert gives for an area containing
	// the site (ForecastArea), IntensityUnknown when none.
	Forecast     alert.Intensity `json:"forecast,omitempty"`
	ForecastArea string          `json:"forecast_area,omitempty"`
	// Intensity is the intensity acted on: the forecast when there is
	// one, otherwise the estimate; Source says which ("alert", "estimate").
	Intensity alert.Intensity `json:"intensity"`
	Source    string          `json:"source"`
	// PArrival and SArrival are the expected arrival times of the P and S
	// waves (strong motion); SFrom says how SArrival was found
	// ("travel time", "alert", "alert: already arrived", "origin unknown").
	PArrival time.Time `json:"p_arrival,omitzero"`
	SArrival time.Time `json:"s_arrival"`
	SFrom    string    `json:"s_from"`
}

// SiteTsunami is the tsunami forecast for a site's coast.
type SiteTsunami struct {
	Area     string                `json:"area"`
	Name     string                `json:"name,omitempty"`
	Category alert.TsunamiCategory `json:"category"`
	// ArrivalAt is the expected first-wave arrival: the alert's issue
	// time when the wave is arriving (Immediate), or when no time is given
	// for a category that evacuates; zero when no time is given otherwise.
	ArrivalAt time.Time `json:"arrival_at,omitzero"`
	Immediate bool      `json:"immediate,omitempty"`
	Height    string    `json:"height,omitempty"`
	// Exposed is false when the policy says the site is above the water.
	Exposed bool `json:"exposed"`
}

// Assess evaluates an alert for every site of fed under policy p, with
// deadlines counted from ref. A cancellation threatens nothing. Sites come
// out in federation order.
func Assess(a *alert.Alert, fed *model.Federation, p *Policy, ref time.Time) (*Assessment, error) {
	switch {
	case a == nil:
		return nil, errors.New("threat: no alert")
	case fed == nil:
		return nil, errors.New("threat: no federation")
	case p == nil:
		return nil, errors.New("threat: no policy")
	}
	as := &Assessment{
		EventID: a.EventID, Serial: a.Serial, Format: a.Format, Product: a.Product,
		Kind: a.Kind, Status: a.Status, MsgType: a.MsgType, Headline: a.Headline, Ref: ref,
		Sites: make([]SiteThreat, 0, len(fed.Sites)),
	}
	if a.Status != alert.StatusActual {
		as.Drill = a.Status
		if as.Drill == "" {
			as.Drill = "unknown"
		}
		as.Notes = append(as.Notes, as.DrillBanner())
	}
	defer as.markDrill()
	if a.MsgType == alert.MsgCancel {
		as.Notes = append(as.Notes, "a cancellation withdraws the event's threats and raises none")
		for i := range fed.Sites {
			as.Sites = append(as.Sites, SiteThreat{Site: fed.Sites[i].Name, Approval: p.ApprovalFor(fed.Sites[i].Name)})
		}
		return as, nil
	}
	shaking := a.Kind == alert.KindEEW || a.Kind == alert.KindEarthquake
	canEstimate := shaking && a.Hypocenter != nil && a.Magnitude != nil
	if shaking && !canEstimate {
		as.Notes = append(as.Notes, "no hypocentre and magnitude: no ground-motion estimate (area forecasts only)")
	}
	for i := range fed.Sites {
		s := &fed.Sites[i]
		st := SiteThreat{Site: s.Name, Approval: p.ApprovalFor(s.Name)}
		if shaking {
			assessShaking(&st, a, s, p, canEstimate)
		}
		if len(a.Tsunami) > 0 {
			assessTsunami(&st, a, s, p)
		}
		assessAreas(&st, a, s, p)
		st.combine(ref)
		as.Sites = append(as.Sites, st)
	}
	return as, nil
}

func (st *SiteThreat) add(h string, l Level, deadline time.Time, reason string) {
	st.hazards = append(st.hazards, hazardLevel{hazard: h, level: l, deadline: deadline, reason: reason})
}

// combine sets the site's level, hazard, deadline and reasons from its
// hazards: the highest level, and of the evacuate ones the earliest
// deadline.
func (st *SiteThreat) combine(ref time.Time) {
	for _, h := range st.hazards {
		st.Reasons = append(st.Reasons, h.reason)
		switch {
		case h.level > st.Level:
			st.Level, st.Hazard, st.DeadlineAt = h.level, h.hazard, h.deadline
		case h.level == LevelEvacuate && st.Level == LevelEvacuate && h.deadline.Before(st.DeadlineAt):
			st.Hazard, st.DeadlineAt = h.hazard, h.deadline
		}
	}
	if st.Level == LevelEvacuate {
		d := model.Duration(st.DeadlineAt.Sub(ref))
		st.Deadline = &d
	}
}

// assessShaking estimates the shaking at site s: the worse of the
// ground-motion estimate and what the alert says for an area holding the
// site (a JMA area forecast or report, a ShakeAlert MMI contour).
func assessShaking(st *SiteThreat, a *alert.Alert, s *model.Site, p *Policy, canEstimate bool) {
	sh := &SiteShaking{}
	pos := alert.LatLon{s.Lat, s.Lon}
	keys := siteAreaKeys(s, p.site(s.Name))

	// The alert's own forecast (or observation) for an area holding the site.
	var areaArrival time.Time
	arrived := false
	bestMMI := 0.0 // of the contour that gave the forecast: the innermost names it
	for i := range a.Areas {
		ar := &a.Areas[i]
		in := ar.Intensity
		label := areaLabel(ar)
		mmi, contour := ContourMMI(ar)
		if contour && in == alert.IntensityUnknown {
			in = IntensityClass(MMIToJMA(mmi))
			label = fmt.Sprintf("%s (≈ JMA %s)", ar.Name, in)
		}
		if in == alert.IntensityUnknown || !areaHolds(ar, pos, keys) {
			continue
		}
		if in > sh.Forecast || (in == sh.Forecast && contour && mmi > bestMMI) {
			sh.Forecast, sh.ForecastArea, bestMMI = in, label, mmi
		}
		if ar.Arrived {
			arrived = true
		}
		if !ar.ArrivalTime.IsZero() && (areaArrival.IsZero() || ar.ArrivalTime.Before(areaArrival)) {
			areaArrival = ar.ArrivalTime
		}
	}

	if canEstimate {
		h := a.Hypocenter
		depth, depthNote := DefaultDepthKm, fmt.Sprintf(", depth unknown: %g km assumed", DefaultDepthKm)
		if h.DepthKm != nil {
			depth, depthNote = *h.DepthKm, ""
		}
		amp, ampFrom := p.amplification(s.Name)
		est := EstimateShaking(pos, h.Position(), depth, a.Magnitude.Value, amp, p.Shaking.FaultType).WithMargin(p.Shaking.Margin)
		sh.AmplificationFrom = ampFrom + depthNote
		if est.EpicentralKm <= p.Shaking.MaxDistanceKm {
			sh.Estimate = &est
		}
		if !a.OriginTime.IsZero() {
			r := est.HypocentralKm
			sh.PArrival = a.OriginTime.Add(seconds(r / p.Waves.PKmps))
			sh.SArrival = a.OriginTime.Add(seconds(r / p.Waves.SKmps))
			sh.SFrom = fmt.Sprintf("travel time %.0f km at %g km/s", r, p.Waves.SKmps)
		}
	}
	switch {
	case arrived:
		sh.SArrival, sh.SFrom = a.IssuedAt, "alert: strong motion already arrived"
	case !areaArrival.IsZero():
		sh.SArrival, sh.SFrom = areaArrival, "alert: forecast arrival for "+sh.ForecastArea
	case sh.SArrival.IsZero():
		sh.SArrival, sh.SFrom = a.IssuedAt, "origin time or hypocentre unknown: taken as the issue time"
	}

	// The worse of the alert's intensity and the estimate.
	var parts []string
	if sh.Forecast != alert.IntensityUnknown {
		sh.Intensity, sh.Source = sh.Forecast, "alert"
		parts = append(parts, fmt.Sprintf("alert %s for %s", sh.Forecast, sh.ForecastArea))
	}
	if e := sh.Estimate; e != nil {
		if e.Class > sh.Intensity {
			sh.Intensity, sh.Source = e.Class, "estimate"
		}
		parts = append(parts, fmt.Sprintf("estimate %s, I=%.2f", e.Class, e.Instrumental))
	}
	if sh.Source == "" {
		if canEstimate {
			st.add(HazardEarthquake, LevelNone, time.Time{}, fmt.Sprintf("shaking: epicentre farther than %g km, not assessed", p.Shaking.MaxDistanceKm))
		}
		return // nothing known about shaking here
	}
	st.Shaking = sh

	what := fmt.Sprintf("intensity %s (%s; %s the worse)", sh.Intensity, strings.Join(parts, "; "), sh.Source)
	if len(parts) == 1 {
		what = fmt.Sprintf("intensity %s (%s)", sh.Intensity, parts[0])
	}
	sp2 := p.Shaking
	switch {
	case sp2.DamageIntensity != alert.IntensityUnknown && sh.Intensity >= sp2.DamageIntensity:
		st.add(HazardEarthquake, LevelEvacuate, sh.SArrival,
			fmt.Sprintf("shaking: %s ≥ %s: site lost when strong motion arrives (%s)", what, sp2.DamageIntensity, clock(sh.SArrival)))
	case sh.Intensity >= sp2.PowerLossIntensity:
		minutes, detail := s.UPSMinutes, fmt.Sprintf("UPS %g min", s.UPSMinutes)
		if sp2.IncludeGenerator && s.GeneratorMinutes > 0 {
			minutes += s.GeneratorMinutes
			detail += fmt.Sprintf(" + generator %g min", s.GeneratorMinutes)
		}
		dl := sh.SArrival.Add(seconds(minutes * 60))
		st.add(HazardEarthquake, LevelEvacuate, dl,
			fmt.Sprintf("shaking: %s ≥ %s: mains lost when strong motion arrives (%s), %s → power out at %s",
				what, sp2.PowerLossIntensity, clock(sh.SArrival), detail, clock(dl)))
	case sh.Intensity >= sp2.WatchIntensity:
		st.add(HazardEarthquake, LevelWatch, time.Time{},
			fmt.Sprintf("shaking: %s ≥ %s: watch (strong motion at %s)", what, sp2.WatchIntensity, clock(sh.SArrival)))
	default:
		st.add(HazardEarthquake, LevelNone, time.Time{},
			fmt.Sprintf("shaking: %s below %s (strong motion at %s)", what, sp2.WatchIntensity, clock(sh.SArrival)))
	}
}

// siteAreaKeys returns the codes and names of the JMA seismic areas that
// hold a site: the federation's seismic_area and the policy's
// seismic_areas, each by code and by name (P2PQuake gives names only).
func siteAreaKeys(s *model.Site, sp SitePolicy) map[string]bool {
	keys := map[string]bool{}
	for _, k := range append([]string{s.SeismicArea}, sp.SeismicAreas...) {
		if k == "" {
			continue
		}
		keys[k] = true
		if n, ok := model.JMASeismicAreaName(k); ok {
			keys[n] = true
		}
		if c, ok := model.JMASeismicAreaCode(k); ok {
			keys[c] = true
		}
	}
	return keys
}

// areaHolds reports whether an alert's area holds a site: by one of the
// site's JMA seismic areas (a code, or a name for formats that give names
// only), or by containing its position.
func areaHolds(ar *alert.Area, pos alert.LatLon, keys map[string]bool) bool {
	if ar.Name != "" && keys[ar.Name] {
		return true
	}
	for _, c := range ar.Codes {
		if c.Scheme == alert.SchemeJMASeismicArea && keys[c.Value] {
			return true
		}
	}
	return containsGeometry(ar, pos)
}

// contourPrefix starts the name the ShakeAlert parser gives an MMI
// contour ("predicted MMI ≥ 6"); the level is kept only there.
const contourPrefix = "predicted MMI ≥ "

// ContourMMI returns the MMI level of a ShakeAlert contour area: the
// shaking predicted everywhere inside it is at least that level.
func ContourMMI(ar *alert.Area) (float64, bool) {
	rest, ok := strings.CutPrefix(ar.Name, contourPrefix)
	if !ok || len(ar.Polygons) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(rest, 64)
	if err != nil || v < 1 || v > 12 {
		return 0, false
	}
	return v, true
}

func containsGeometry(ar *alert.Area, pos alert.LatLon) bool {
	for _, poly := range ar.Polygons {
		if InPolygon(pos, poly) {
			return true
		}
	}
	for _, c := range ar.Circles {
		if InCircle(pos, c) {
			return true
		}
	}
	return false
}

func areaLabel(ar *alert.Area) string {
	var parts []string
	if ar.Name != "" {
		parts = append(parts, ar.Name)
	}
	for _, c := range ar.Codes {
		parts = append(parts, c.Value)
		break
	}
	if len(parts) == 0 {
		return "an area drawn by the alert"
	}
	return strings.Join(parts, " ")
}

// assessTsunami looks up the forecast for the site's tsunami area.
func assessTsunami(st *SiteThreat, a *alert.Alert, s *model.Site, p *Policy) {
	if s.TsunamiArea == "" {
		return
	}
	var best *alert.TsunamiForecast
	for i := range a.Tsunami {
		f := &a.Tsunami[i]
		if tsunamiAreaCode(f.Code, f.Name) == s.TsunamiArea && (best == nil || f.Category > best.Category) {
			best = f
		}
	}
	if best == nil {
		return
	}
	t := &SiteTsunami{
		Area: s.TsunamiArea, Name: best.Name, Category: best.Category,
		ArrivalAt: best.ArrivalTime, Immediate: best.Immediate, Height: heightText(best),
		Exposed: p.tsunamiExposed(s),
	}
	level := p.tsunamiLevel(best.Category)
	var when string
	switch {
	case t.Immediate:
		t.ArrivalAt, when = a.IssuedAt, "now"
		if best.Condition != "" {
			when += " (" + best.Condition + ")"
		}
	case !t.ArrivalAt.IsZero():
		when = clock(t.ArrivalAt)
	case level == LevelEvacuate:
		// No time given for a forecast that evacuates: assume the worst.
		t.ArrivalAt, t.Immediate, when = a.IssuedAt, true, "not given, taken as now"
	default:
		when = "not given"
	}
	st.Tsunami = t
	what := fmt.Sprintf("tsunami: %s for %s %s, first wave %s", best.Category, s.TsunamiArea, best.Name, when)
	if t.Height != "" {
		what += ", height " + t.Height
	}
	if !t.Exposed {
		if level > LevelWatch {
			level = LevelWatch
		}
		st.add(HazardTsunami, level, time.Time{}, what+": the site is not exposed (policy), "+level.String())
		return
	}
	var dl time.Time
	if level == LevelEvacuate {
		dl = t.ArrivalAt.Add(-p.Tsunami.Margin.D())
		what += fmt.Sprintf(" − margin %s → site lost at %s", p.Tsunami.Margin, clock(dl))
	} else {
		what += ": " + level.String()
	}
	st.add(HazardTsunami, level, dl, what)
}

func heightText(f *alert.TsunamiForecast) string {
	if f.MaxHeightM != nil {
		return fmt.Sprintf("%g m", *f.MaxHeightM)
	}
	return f.HeightText
}

// assessAreas checks the areas the alert draws (polygons, circles) that
// forecast no intensity: being inside one is a threat of its own.
func assessAreas(st *SiteThreat, a *alert.Alert, s *model.Site, p *Policy) {
	pos := alert.LatLon{s.Lat, s.Lon}
	for i := range a.Areas {
		ar := &a.Areas[i]
		if _, contour := ContourMMI(ar); contour || ar.Intensity != alert.IntensityUnknown || !containsGeometry(ar, pos) {
			continue // shaking, assessed by assessShaking
		}
		st.Areas = append(st.Areas, areaLabel(ar))
	}
	if len(st.Areas) == 0 {
		return
	}
	var dl time.Time
	what := fmt.Sprintf("area: inside %s → %s", strings.Join(st.Areas, ", "), p.Areas.Level)
	if p.Areas.Level == LevelEvacuate {
		dl = a.IssuedAt.Add(p.Areas.Deadline.D())
		what += fmt.Sprintf(", deadline %s after issue (%s)", p.Areas.Deadline, clock(dl))
	}
	st.add(HazardArea, p.Areas.Level, dl, what)
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// clock formats a time for reasons: RFC 3339 in the time's own zone.
func clock(t time.Time) string { return t.Format(time.RFC3339) }

// Real reports whether the alert describes a real event (status actual).
func (as *Assessment) Real() bool { return as.Drill == "" }

// DrillBanner says, for an alert that is not a real event, what it is.
func (as *Assessment) DrillBanner() string {
	if as.Real() {
		return ""
	}
	return fmt.Sprintf("%s: NOT A REAL EVENT (alert status %s); evacuating for it is a drill", DrillTag(as.Drill), as.Drill)
}

// DrillTag is the mark put before every line about an alert of the given
// status that is not actual: "[EXERCISE]", "[TEST]", "[DRAFT]".
func DrillTag(s alert.Status) string {
	return "[" + strings.ToUpper(string(s)) + "]"
}

// markDrill puts the drill status on every site and its tag before every
// reason.
func (as *Assessment) markDrill() {
	if as.Real() {
		return
	}
	tag := DrillTag(as.Drill) + " "
	for i := range as.Sites {
		st := &as.Sites[i]
		st.Drill = as.Drill
		for j, r := range st.Reasons {
			st.Reasons[j] = tag + r
		}
		for j := range st.hazards {
			st.hazards[j].reason = tag + st.hazards[j].reason
		}
	}
}

// Threatened returns the sites at LevelEvacuate.
func (as *Assessment) Threatened() []SiteThreat {
	var out []SiteThreat
	for _, s := range as.Sites {
		if s.Level == LevelEvacuate {
			out = append(out, s)
		}
	}
	return out
}

// MinScenarioDeadline is the deadline written for a site whose deadline
// has already passed at Ref (a scenario's deadlines must be positive).
const MinScenarioDeadline = time.Second

// Scenario writes the sites to evacuate as a model.Scenario, deadlines
// counted from Ref (at least MinScenarioDeadline). It validates against the
// federation it was assessed on. The scenario of an alert that is not a
// real event is a drill: its name starts with "drill-", its description
// and every note with the drill tag.
func (as *Assessment) Scenario() *model.Scenario {
	return as.scenario(!as.Real())
}

// DrillScenario is Scenario marked as a drill whatever the alert's status:
// an operator rehearsing on a real document.
func (as *Assessment) DrillScenario() *model.Scenario {
	return as.scenario(true)
}

func (as *Assessment) scenario(drill bool) *model.Scenario {
	sc := &model.Scenario{
		Name:        scenarioName(drill, as.EventID, as.Serial),
		Description: strings.TrimSpace(fmt.Sprintf("%s %s %s (%s %s): %s", as.Format, as.Product, as.Kind, as.Status, as.MsgType, as.Headline)),
		Threats:     []model.Threat{},
	}
	tag := ""
	if drill {
		status := as.Drill
		if status == "" {
			status = alert.StatusExercise // a real document rehearsed
		}
		tag = DrillTag(status) + " "
		sc.Description = fmt.Sprintf("%sDRILL, NOT A REAL EVENT: %s", tag, sc.Description)
	}
	for _, s := range as.Threatened() {
		d := max(s.Deadline.D(), MinScenarioDeadline)
		note := s.reason()
		if tag != "" && !strings.HasPrefix(note, tag) {
			note = tag + note
		}
		sc.Threats = append(sc.Threats, model.Threat{Site: s.Site, Deadline: model.Duration(d), Hazard: s.Hazard, Note: note})
	}
	return sc
}

// reason returns the reason of the hazard that sets the site's level and
// deadline.
func (st *SiteThreat) reason() string {
	for _, h := range st.hazards {
		if h.hazard == st.Hazard && h.level == st.Level && h.deadline.Equal(st.DeadlineAt) {
			return h.reason
		}
	}
	return strings.Join(st.Reasons, "; ")
}

// scenarioName makes a valid model name from an event id ("alert-…", a
// drill's "drill-alert-…").
func scenarioName(drill bool, id string, serial int) string {
	var b strings.Builder
	if drill {
		b.WriteString("drill-")
	}
	b.WriteString("alert-")
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 50 {
			break
		}
	}
	if serial > 0 {
		fmt.Fprintf(&b, "-%d", serial)
	}
	return b.String()
}
