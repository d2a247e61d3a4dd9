package threat

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// Level is how threatened a site is. Levels are ordered.
type Level int8

// The threat levels.
const (
	// LevelNone: nothing to do.
	LevelNone Level = iota
	// LevelWatch: the site is affected but not expected to be lost
	// (a tsunami advisory, moderate shaking); operators are told, nothing
	// moves.
	LevelWatch
	// LevelEvacuate: the site is expected to be lost at its deadline; its
	// VMs are evacuated.
	LevelEvacuate
)

var levelNames = [...]string{"none", "watch", "evacuate"}

// String returns the level's name.
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("Level(%d)", int8(l))
	}
	return levelNames[l]
}

// MarshalText writes the level's name.
func (l Level) MarshalText() ([]byte, error) {
	if l < 0 || int(l) >= len(levelNames) {
		return nil, fmt.Errorf("invalid threat level %d", int8(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText reads a level's name.
func (l *Level) UnmarshalText(b []byte) error {
	i := slices.Index(levelNames[:], string(b))
	if i < 0 {
		return fmt.Errorf("unknown threat level %q (want one of %s)", b, strings.Join(levelNames[:], ", "))
	}
	*l = Level(i)
	return nil
}

// Approval says whether a site's evacuation starts by itself.
type Approval string

// Approval modes.
const (
	// ApprovalAuto: the evacuation starts as soon as the threat is known.
	ApprovalAuto Approval = "auto"
	// ApprovalApprove: the plan is held until an operator approves it.
	ApprovalApprove Approval = "approve"
)

// Policy turns hazard estimates into threat levels and deadlines. Its zero
// value is not useful: start from DefaultPolicy (ParsePolicy does).
type Policy struct {
	Waves   WavePolicy    `json:"waves"`
	Shaking ShakingPolicy `json:"shaking"`
	Tsunami TsunamiPolicy `json:"tsunami"`
	Areas   AreaPolicy    `json:"areas"`
	// Approval is the default approval mode of every site.
	Approval Approval `json:"approval"`
	// Sites holds per-site settings, by site name.
	Sites map[string]SitePolicy `json:"sites,omitempty"`
}

// WavePolicy holds the seismic wave speeds used for arrival times.
type WavePolicy struct {
	// PKmps and SKmps are the average P- and S-wave speeds along the ray
	// (km/s).
	PKmps float64 `json:"p_kmps"`
	SKmps float64 `json:"s_kmps"`
}

// ShakingPolicy says what ground shaking means for a site.
type ShakingPolicy struct {
	// WatchIntensity: from this JMA intensity a site is watched.
	WatchIntensity alert.Intensity `json:"watch_intensity"`
	// PowerLossIntensity: from this intensity mains power is taken to fail
	// when strong motion arrives; the site runs on its UPS (and generator)
	// and is lost when they give out.
	PowerLossIntensity alert.Intensity `json:"power_loss_intensity"`
	// DamageIntensity: from this intensity the site is taken to be lost
	// when strong motion arrives. "" disables the rule.
	DamageIntensity alert.Intensity `json:"damage_intensity"`
	// IncludeGenerator: the generator's minutes count after the UPS's.
	IncludeGenerator bool `json:"include_generator"`
	// FaultType selects the source term of the attenuation relation;
	// auto chooses it from the focal depth (FaultType.Resolve).
	FaultType FaultType `json:"fault_type"`
	// Margin is added to the estimate's median instrumental intensity
	// (intensity units): the relation's scatter, and the difference
	// between a point and the worst point of an area that JMA's forecasts
	// describe (docs/threat.md gives the measured bias).
	Margin float64 `json:"margin"`
	// AVS30 is the average S-wave velocity of the top 30 m of ground
	// (m/s) at sites that do not set theirs.
	AVS30 float64 `json:"avs30_mps"`
	// MaxDistanceKm: sites farther from the epicentre get no estimate
	// (the attenuation relation was fitted to about 300 km).
	MaxDistanceKm float64 `json:"max_distance_km"`
}

// TsunamiPolicy maps tsunami forecast categories to levels.
type TsunamiPolicy struct {
	MajorWarning Level `json:"major_warning"`
	Warning      Level `json:"warning"`
	Advisory     Level `json:"advisory"`
	Forecast     Level `json:"forecast"`
	// Margin is taken off the expected first-wave arrival to give the
	// deadline.
	Margin model.Duration `json:"margin"`
}

// AreaPolicy says what it means for a site to lie inside an area an alert
// draws (a CAP polygon or circle) that forecasts no intensity.
type AreaPolicy struct {
	Level Level `json:"level"`
	// Deadline, for the evacuate level, is counted from the alert's issue.
	Deadline model.Duration `json:"deadline"`
}

// SitePolicy holds one site's settings.
type SitePolicy struct {
	// AVS30 is the site's average S-wave velocity of the top 30 m (m/s),
	// e.g. from J-SHIS; 0 uses the policy's.
	AVS30 float64 `json:"avs30_mps,omitempty"`
	// Amplification, when set, is the site's PGV amplification over a
	// stiff (600 m/s) site and replaces the one computed from AVS30.
	Amplification float64 `json:"amplification,omitempty"`
	// SeismicAreas are further JMA seismic intensity areas taken to hold
	// the site, besides the federation's seismic_area, by code
	// (地震情報／細分区域, e.g. "631") or name ("高知県中部"); each must be
	// in JMA's table. Intensities an alert forecasts or reports for them
	// count when worse than the estimate.
	SeismicAreas []string `json:"seismic_areas,omitempty"`
	// TsunamiExposed: whether a tsunami in the site's forecast area
	// (the federation's tsunami_area) reaches the site; default true for
	// sites with a tsunami_area. Set false for a data centre on high
	// ground.
	TsunamiExposed *bool `json:"tsunami_exposed,omitempty"`
	// Approval overrides the policy's approval mode for the site.
	Approval Approval `json:"approval,omitempty"`
}

// Default policy values; see docs/threat.md for the reasons.
const (
	DefaultPKmps         = 7.0
	DefaultSKmps         = 4.0
	DefaultAVS30         = 250.0
	DefaultMargin        = 0.45
	DefaultMaxDistanceKm = 1000.0
	DefaultTsunamiMargin = 2 * time.Minute
)

// MaxMargin bounds shaking.margin: two intensity units is more than the
// relation's scatter could justify.
const MaxMargin = 2.0

// DefaultPolicy returns the built-in policy.
func DefaultPolicy() Policy {
	return Policy{
		Waves: WavePolicy{PKmps: DefaultPKmps, SKmps: DefaultSKmps},
		Shaking: ShakingPolicy{
			WatchIntensity:     alert.Intensity5Lower,
			PowerLossIntensity: alert.Intensity6Lower,
			DamageIntensity:    alert.Intensity7,
			IncludeGenerator:   true,
			FaultType:          FaultAuto,
			Margin:             DefaultMargin,
			AVS30:              DefaultAVS30,
			MaxDistanceKm:      DefaultMaxDistanceKm,
		},
		Tsunami: TsunamiPolicy{
			MajorWarning: LevelEvacuate,
			Warning:      LevelEvacuate,
			Advisory:     LevelWatch,
			Forecast:     LevelNone,
			Margin:       model.Duration(DefaultTsunamiMargin),
		},
		Areas:    AreaPolicy{Level: LevelWatch},
		Approval: ApprovalAuto,
	}
}

// ParsePolicy decodes a threat policy document (YAML or JSON) onto
// DefaultPolicy: fields the document leaves out keep their defaults. It is
// strict (unknown fields, wrong types) and validated; problems are reported
// together as a validate.List with field paths. With a non-nil federation,
// the sites it names must exist there.
func ParsePolicy(data []byte, fed *model.Federation) (*Policy, error) {
	p := DefaultPolicy()
	err := strictyaml.Decode(data, &p)
	var list validate.List
	if err != nil && !errors.As(err, &list) {
		return nil, err
	}
	if err := validate.Join(err, p.Validate(fed)); err != nil {
		return nil, err
	}
	return &p, nil
}

// LoadPolicy reads and parses a threat policy file.
func LoadPolicy(path string, fed *model.Federation) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read threat policy: %w", err)
	}
	p, err := ParsePolicy(data, fed)
	if err != nil {
		return nil, fmt.Errorf("threat policy %s: %w", path, err)
	}
	return p, nil
}

// Validate checks the policy, and with a non-nil federation its sites
// against it, and returns every problem as a validate.List.
func (p *Policy) Validate(fed *model.Federation) error {
	var e validate.Errors
	if validate.Within(&e, "waves.p_kmps", p.Waves.PKmps, 1, 15) &&
		validate.Within(&e, "waves.s_kmps", p.Waves.SKmps, 0.5, 10) && p.Waves.SKmps >= p.Waves.PKmps {
		e.Addf("waves.s_kmps", "must be below p_kmps (%g), got %g", p.Waves.PKmps, p.Waves.SKmps)
	}
	s := &p.Shaking
	checkIntensity(&e, "shaking.watch_intensity", s.WatchIntensity, false)
	checkIntensity(&e, "shaking.power_loss_intensity", s.PowerLossIntensity, false)
	checkIntensity(&e, "shaking.damage_intensity", s.DamageIntensity, true)
	if !slices.Contains([]FaultType{FaultAuto, FaultCrustal, FaultInterplate, FaultIntraplate}, s.FaultType) {
		e.Addf("shaking.fault_type", "must be one of auto, crustal, interplate, intraplate, got %q", s.FaultType)
	}
	validate.Within(&e, "shaking.margin", s.Margin, 0, MaxMargin)
	checkAVS30(&e, "shaking.avs30_mps", s.AVS30)
	validate.Greater(&e, "shaking.max_distance_km", s.MaxDistanceKm, 0)
	for _, f := range []struct {
		path string
		l    Level
	}{
		{"tsunami.major_warning", p.Tsunami.MajorWarning}, {"tsunami.warning", p.Tsunami.Warning},
		{"tsunami.advisory", p.Tsunami.Advisory}, {"tsunami.forecast", p.Tsunami.Forecast}, {"areas.level", p.Areas.Level},
	} {
		if _, err := f.l.MarshalText(); err != nil {
			e.Addf(f.path, "%v", err)
		}
	}
	validate.AtLeast(&e, "tsunami.margin", p.Tsunami.Margin, 0)
	validate.AtLeast(&e, "areas.deadline", p.Areas.Deadline, 0)
	checkApproval(&e, "approval", p.Approval, false)

	var known []string
	sites := map[string]*model.Site{}
	if fed != nil {
		for i := range fed.Sites {
			known = append(known, fed.Sites[i].Name)
			sites[fed.Sites[i].Name] = &fed.Sites[i]
		}
	}
	names := make([]string, 0, len(p.Sites))
	for n := range p.Sites {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sp := p.Sites[n]
		path := validate.Field("sites", n)
		if fed != nil && sites[n] == nil {
			msg := fmt.Sprintf("no site %q in federation %s", n, fed.Name)
			if s := validate.Suggest(n, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			e.Addf(path, "%s", msg)
		}
		if sp.AVS30 != 0 {
			checkAVS30(&e, validate.Field(path, "avs30_mps"), sp.AVS30)
		}
		if sp.Amplification != 0 {
			validate.Within(&e, validate.Field(path, "amplification"), sp.Amplification, 0.1, 10)
		}
		for i, c := range sp.SeismicAreas {
			_, isCode := model.JMASeismicAreaName(c)
			_, isName := model.JMASeismicAreaCode(c)
			if !isCode && !isName {
				e.Addf(validate.Index(validate.Field(path, "seismic_areas"), i),
					"%q is neither a code nor a name of JMA's seismic intensity areas (地震情報／細分区域, e.g. \"631\" or 高知県中部)", c)
			}
		}
		if sp.TsunamiExposed != nil && *sp.TsunamiExposed && sites[n] != nil && sites[n].TsunamiArea == "" {
			e.Addf(validate.Field(path, "tsunami_exposed"), "site %s has no tsunami_area in the federation; set it there", n)
		}
		checkApproval(&e, validate.Field(path, "approval"), sp.Approval, true)
	}
	return e.Err()
}

func checkIntensity(e *validate.Errors, path string, i alert.Intensity, allowUnset bool) {
	switch {
	case !i.Valid():
		e.Addf(path, "invalid intensity %d", int8(i))
	case i == alert.IntensityUnknown && !allowUnset:
		e.Addf(path, "is required (one of 0-4, 5-, 5+, 6-, 6+, 7)")
	}
}

// checkAVS30 bounds AVS30 to the range of the amplification relation's
// data (Midorikawa et al. 1994: roughly 100 to 1500 m/s).
func checkAVS30(e *validate.Errors, path string, v float64) {
	validate.Within(e, path, v, 100, 1500)
}

func checkApproval(e *validate.Errors, path string, a Approval, allowUnset bool) {
	if a == ApprovalAuto || a == ApprovalApprove || (a == "" && allowUnset) {
		return
	}
	e.Addf(path, "must be auto or approve, got %q", a)
}

// site returns the policy of a site (the zero SitePolicy when it has none).
func (p *Policy) site(name string) SitePolicy { return p.Sites[name] }

// ApprovalFor returns the approval mode of a site.
func (p *Policy) ApprovalFor(site string) Approval {
	if a := p.site(site).Approval; a != "" {
		return a
	}
	if p.Approval == "" {
		return ApprovalAuto
	}
	return p.Approval
}

// amplification returns the site's PGV amplification over a stiff site.
func (p *Policy) amplification(site string) (float64, string) {
	sp := p.site(site)
	switch {
	case sp.Amplification > 0:
		return sp.Amplification, "site amplification factor"
	case sp.AVS30 > 0:
		return Amplification(sp.AVS30), fmt.Sprintf("AVS30 %g m/s", sp.AVS30)
	}
	return Amplification(p.Shaking.AVS30), fmt.Sprintf("default AVS30 %g m/s", p.Shaking.AVS30)
}

// tsunamiExposed reports whether a tsunami in the site's forecast area
// reaches it.
func (p *Policy) tsunamiExposed(s *model.Site) bool {
	if s.TsunamiArea == "" {
		return false
	}
	if e := p.site(s.Name).TsunamiExposed; e != nil {
		return *e
	}
	return true
}

// tsunamiLevel maps a category to a level.
func (p *Policy) tsunamiLevel(c alert.TsunamiCategory) Level {
	switch c {
	case alert.TsunamiMajorWarning:
		return p.Tsunami.MajorWarning
	case alert.TsunamiWarning:
		return p.Tsunami.Warning
	case alert.TsunamiAdvisory:
		return p.Tsunami.Advisory
	case alert.TsunamiForecastOnly:
		return p.Tsunami.Forecast
	}
	return LevelNone
}
