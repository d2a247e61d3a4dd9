// Package pipeline is refuge's alert automation: sources → deduplication →
// threat assessment → plan → executor. Alerts from any source (or from
// Submit) are grouped into threads by kind and event id; repeats and older
// versions are dropped, newer ones update the thread's threats, and
// cancellations withdraw them. The wanted deadlines of all threads are
// combined per site (the earliest wins) and handed to a Target — an
// executor on a real or simulated federation — which plans and evacuates,
// together with the sites threatened but not evacuated (at watch level,
// or held), which it avoids as destinations; sites whose policy says
// "approve" wait for an operator first. Exercise
// and test alerts drive a separate drill target unless the operator lets
// them act.
//
// The pipeline is used in-process (refuge watch) and is meant to be
// mounted by the controller service.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/threat"
)

// Errors Submit refuses alerts with. Both wrap alertsource.ErrRejected,
// so the relay receiver answers 422.
var (
	// ErrUnknownEvent: a cancellation (or update) for an event the
	// pipeline has not seen. It never raises a threat.
	ErrUnknownEvent = fmt.Errorf("cancellation for an unknown event: %w", alertsource.ErrRejected)
	// ErrInvalid: the alert does not validate.
	ErrInvalid = fmt.Errorf("invalid alert: %w", alertsource.ErrRejected)
)

// DefaultRetain is how long a thread is remembered after its last message.
const DefaultRetain = 24 * time.Hour

// Config sets up a Pipeline.
type Config struct {
	Federation *model.Federation
	// Policy is the threat policy (threat.DefaultPolicy if nil).
	Policy *threat.Policy
	// Target evacuates for actual alerts (required).
	Target Target
	// Drill, if set, evacuates for exercise and test alerts (a simulated
	// copy of the federation); without it they are logged and dropped.
	Drill Target
	// ActOn are the statuses whose alerts drive Target (default: actual
	// only). Adding exercise or test lets drills act for real. Draft
	// alerts never act.
	ActOn []alert.Status
	// AbortOnCancel aborts running migrations from a site whose threat is
	// withdrawn; by default they finish (new ones do not start).
	AbortOnCancel bool
	// Replay counts an alert's deadlines from the moment it is received
	// instead of from the wall-clock times it names, as if it had just
	// been issued (drills, replays of recorded documents, accelerated
	// simulation).
	Replay bool
	// Clock is the pipeline's time; deadlines given to targets are times
	// on it, so it must tell the same time as the targets' executors (the
	// wall clock if nil).
	Clock clock.Clock
	// Retain: see DefaultRetain.
	Retain time.Duration
	Logger *slog.Logger
	// Journal, if set, keeps the pipeline's state durable: every accepted
	// alert and every decision is recorded before the target acts on it,
	// and Restore rebuilds the pipeline from it (see Journal).
	Journal Journal
	// OnEvent, if set, receives the pipeline's events in order, as they
	// happen (so a target's own output falls between "assessed" and
	// "applied"). It is called under the pipeline's lock and must not
	// call the pipeline's methods.
	OnEvent func(Event)
}

// Event kinds.
const (
	EvAssessed  = "assessed"        // a new event or a newer version of one was assessed
	EvDuplicate = "duplicate"       // a message already received
	EvStale     = "stale"           // an older version than one received
	EvIgnored   = "ignored"         // a draft, or a drill without a drill target
	EvRejected  = "rejected"        // invalid, or a cancellation for an unknown event
	EvCancelled = "cancelled"       // an event's threats were withdrawn
	EvApproval  = "approval-needed" // a site's evacuation waits for an operator
	EvApproved  = "approved"
	EvDeclined  = "declined"
	EvApplied   = "applied" // the target was given new deadlines or watch sites
	EvFailed    = "failed"  // the target refused them
)

// Event is one step of the pipeline.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Drill   bool      `json:"drill,omitempty"`
	EventID string    `json:"event_id,omitempty"`
	Serial  int       `json:"serial,omitempty"`
	Product string    `json:"product,omitempty"`
	Site    string    `json:"site,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	// Assessment is set on assessed events.
	Assessment *threat.Assessment `json:"assessment,omitempty"`
	// Deadlines is set on applied events: every site the target now
	// evacuates, with its deadline.
	Deadlines map[string]time.Time `json:"deadlines,omitempty"`
	// Watch is set on applied events: the sites the target now treats as
	// being at threat level watch (see Target).
	Watch []string `json:"watch,omitempty"`
}

// Pipeline deduplicates, assesses and applies alerts. Create it with New.
type Pipeline struct {
	cfg    Config
	policy *threat.Policy
	log    *slog.Logger
	sites  map[string]bool

	mu    sync.Mutex
	real  *world
	drill *world
}

// world is one federation the pipeline drives: the real one, or the drill
// copy.
type world struct {
	drill   bool
	target  Target
	threads map[threadKey]*thread
	// decided are the operators' decisions on held sites, until the
	// site's threat is withdrawn.
	decided map[string]Decision
	pending map[string]time.Time
	applied map[string]time.Time
	watch   []string // applied with applied, sorted
	// causes are the alerts accepted and decisions made since the target
	// last applied (see Explained).
	causes []Cause
	// journal: what is recorded of this world (see durable.go).
	journal worldJournal
}

// threadKey identifies an event's thread of messages. JMA gives an EEW,
// the earthquake reports and the tsunami warnings of one earthquake the
// same EventID, each with its own serials, so the kind is part of the key.
type threadKey struct {
	kind    alert.Kind
	eventID string
}

// msgKey identifies one message of a thread.
type msgKey struct {
	serial  int
	product string
	msgType alert.MsgType
	issued  int64
}

type thread struct {
	key       threadKey
	latest    *alert.Alert
	seen      map[msgKey]bool
	cancelled bool
	// current holds the assessments of the latest serial, per product
	// (a JMA EEW warning and forecast of one serial are two views of it;
	// the worse of the two counts).
	current map[string]*threat.Assessment
	// wants are the sites the thread's latest assessments threaten.
	wants map[string]want
	last  time.Time
}

type want struct {
	level    threat.Level
	deadline time.Time // pipeline time, evacuate only
	hazard   string
	reason   string
}

// maxSeen bounds the messages remembered per thread.
const maxSeen = 4096

// New checks cfg and returns a pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Federation == nil {
		return nil, errors.New("pipeline: Config.Federation is required")
	}
	if cfg.Target == nil {
		return nil, errors.New("pipeline: Config.Target is required")
	}
	pol := cfg.Policy
	if pol == nil {
		d := threat.DefaultPolicy()
		pol = &d
	}
	if err := pol.Validate(cfg.Federation); err != nil {
		return nil, fmt.Errorf("pipeline: threat policy: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Retain <= 0 {
		cfg.Retain = DefaultRetain
	}
	if len(cfg.ActOn) == 0 {
		cfg.ActOn = []alert.Status{alert.StatusActual}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{cfg: cfg, policy: pol, log: lg, sites: map[string]bool{}}
	for _, s := range cfg.Federation.Sites {
		p.sites[s.Name] = true
	}
	p.real = newWorld(false, cfg.Target)
	if cfg.Drill != nil {
		p.drill = newWorld(true, cfg.Drill)
	}
	return p, nil
}

func newWorld(drill bool, t Target) *world {
	return &world{drill: drill, target: t, threads: map[threadKey]*thread{}, decided: map[string]Decision{},
		pending: map[string]time.Time{}, applied: map[string]time.Time{}}
}

// Sink returns Submit as an alertsource.Sink.
func (p *Pipeline) Sink() alertsource.Sink { return p.Submit }

type sourceKey struct{}

// WithSource returns ctx telling Submit who delivers the alert: the relay
// token's name, or the source's (Run's sources). It is recorded with the
// alert (Received.By) and named in the causes of what the target then
// does.
func WithSource(ctx context.Context, by string) context.Context {
	return context.WithValue(ctx, sourceKey{}, by)
}

// sourceOf is who delivers an alert submitted with ctx ("" if unknown).
func sourceOf(ctx context.Context) string {
	by, _ := ctx.Value(sourceKey{}).(string)
	return by
}

// Submit takes one alert through the pipeline. It returns an error
// wrapping alertsource.ErrRejected for an alert it refuses (invalid, or a
// cancellation for an unknown event), another error when the target could
// not be updated (the alert is remembered, and the next Submit retries),
// and nil otherwise — also for duplicates, stale versions and alerts that
// threaten nothing. WithSource tells it who delivers a.
func (p *Pipeline) Submit(ctx context.Context, a *alert.Alert) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Clock.Now()
	w, err := p.accept(a, now, sourceOf(ctx))
	if w == nil || err != nil {
		return err
	}
	return p.reconcile(w, now)
}

// accept takes a, delivered by by, into the threads of the world it
// drives (p.mu held) and returns that world: nil when it drives none,
// with the error Submit returns for an alert it refuses.
func (p *Pipeline) accept(a *alert.Alert, now time.Time, by string) (*world, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalid)
	}
	if err := a.Validate(); err != nil {
		p.emit(Event{At: now, Kind: EvRejected, EventID: a.EventID, Serial: a.Serial, Product: a.Product, Detail: err.Error()})
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	w, why := p.worldFor(a.Status)
	base := Event{At: now, EventID: a.EventID, Serial: a.Serial, Product: a.Product}
	if w == nil {
		base.Kind, base.Detail = EvIgnored, why
		p.emit(base)
		return nil, nil
	}
	base.Drill = w.drill
	p.prune(w, now)
	key := threadKey{a.Kind, a.EventID}
	th := w.threads[key]
	mk := msgKey{a.Serial, a.Product, a.MsgType, a.IssuedAt.UnixNano()}

	if a.MsgType == alert.MsgCancel {
		if th == nil {
			base.Kind, base.Detail = EvRejected, fmt.Sprintf("cancellation of %s event %s, which was never received", a.Kind, a.EventID)
			p.emit(base)
			return nil, fmt.Errorf("%w: %s event %s", ErrUnknownEvent, a.Kind, a.EventID)
		}
		if th.cancelled || th.seen[mk] {
			base.Kind, base.Detail = EvDuplicate, "already cancelled"
			p.emit(base)
			return w, nil
		}
		th.remember(mk, a, now)
		w.accepted(key, a, by)
		th.cancelled, th.current, th.wants = true, nil, nil
		base.Kind, base.Detail = EvCancelled, fmt.Sprintf("%s event withdrawn", a.Kind)
		p.emit(base)
		return w, nil
	}

	if th != nil {
		switch {
		case th.seen[mk]:
			base.Kind, base.Detail = EvDuplicate, fmt.Sprintf("serial %d already received", a.Serial)
			p.emit(base)
			return w, nil
		case older(a, th.latest):
			base.Kind, base.Detail = EvStale, fmt.Sprintf("serial %d (issued %s) is older than serial %d (issued %s)",
				a.Serial, a.IssuedAt.Format(time.RFC3339), th.latest.Serial, th.latest.IssuedAt.Format(time.RFC3339))
			p.emit(base)
			return w, nil
		}
	} else {
		th = &thread{key: key, seen: map[msgKey]bool{}}
		w.threads[key] = th
	}
	ref := now
	if p.cfg.Replay {
		ref = a.IssuedAt
	}
	as, err := threat.Assess(a, p.cfg.Federation, p.policy, ref)
	if err != nil {
		return nil, err // only for nil arguments, which New and the checks above exclude
	}
	if th.latest == nil || a.Serial != th.latest.Serial || th.cancelled {
		th.current = map[string]*threat.Assessment{}
	}
	th.remember(mk, a, now)
	w.accepted(key, a, by)
	th.cancelled = false
	th.current[a.Product] = as
	th.wants = combineAssessments(th.current, ref, now)
	base.Kind, base.Assessment = EvAssessed, as
	base.Detail = describeWants(th.wants, now)
	p.emit(base)
	return w, nil
}

// older reports whether a is an older version than b: a lower serial, or
// for formats without serials an earlier issue.
func older(a, b *alert.Alert) bool {
	if a.Serial != b.Serial {
		return a.Serial < b.Serial
	}
	return a.IssuedAt.Before(b.IssuedAt)
}

func (th *thread) remember(k msgKey, a *alert.Alert, now time.Time) {
	if len(th.seen) >= maxSeen {
		clear(th.seen)
	}
	th.seen[k] = true
	if th.latest == nil || !older(a, th.latest) {
		th.latest = a
	}
	th.last = now
}

// worldFor says which world an alert of this status drives, or why none.
func (p *Pipeline) worldFor(s alert.Status) (*world, string) {
	switch {
	case s == alert.StatusDraft:
		return nil, "draft alerts never act"
	case slices.Contains(p.cfg.ActOn, s):
		return p.real, ""
	case p.drill != nil:
		return p.drill, ""
	}
	return nil, fmt.Sprintf("%s alert and no drill target (statuses acted on: %v)", s, p.cfg.ActOn)
}

// prune forgets threads whose last message is older than Retain.
func (p *Pipeline) prune(w *world, now time.Time) {
	for k, th := range w.threads {
		if now.Sub(th.last) > p.cfg.Retain {
			delete(w.threads, k)
			w.journal.forget(k)
		}
	}
}

// combineAssessments merges same-serial assessments site by site: the
// highest level, the earliest deadline. Deadlines are moved from the
// assessment's reference time to the pipeline's now.
func combineAssessments(current map[string]*threat.Assessment, ref, now time.Time) map[string]want {
	out := map[string]want{}
	for _, product := range slices.Sorted(maps.Keys(current)) {
		for _, st := range current[product].Sites {
			if st.Level == threat.LevelNone {
				continue
			}
			w := want{level: st.Level, hazard: st.Hazard, reason: strings.Join(st.Reasons, "; ")}
			if st.Level == threat.LevelEvacuate {
				w.deadline = now.Add(st.DeadlineAt.Sub(ref))
			}
			if old, ok := out[st.Site]; ok && !worse(w, old) {
				continue
			}
			out[st.Site] = w
		}
	}
	return out
}

// worse reports whether a is a worse threat than b.
func worse(a, b want) bool {
	if a.level != b.level {
		return a.level > b.level
	}
	return a.level == threat.LevelEvacuate && a.deadline.Before(b.deadline)
}

func describeWants(ws map[string]want, now time.Time) string {
	if len(ws) == 0 {
		return "no site threatened"
	}
	var parts []string
	for _, site := range slices.Sorted(maps.Keys(ws)) {
		w := ws[site]
		if w.level == threat.LevelEvacuate {
			parts = append(parts, fmt.Sprintf("%s: evacuate (%s) within %s", site, w.hazard, w.deadline.Sub(now).Round(time.Second)))
		} else {
			parts = append(parts, fmt.Sprintf("%s: %s (%s)", site, w.level, w.hazard))
		}
	}
	return strings.Join(parts, "; ")
}

// wanted combines the threads of a world: per site, the worst want.
func (w *world) wanted() map[string]want {
	out := map[string]want{}
	for _, th := range w.threads {
		if th.cancelled {
			continue
		}
		for site, x := range th.wants {
			if old, ok := out[site]; !ok || worse(x, old) {
				out[site] = x
			}
		}
	}
	return out
}

// reconcile works out the deadlines the target should have (holding sites
// that wait for approval) and the sites it should treat as watched, and
// applies them if they changed.
func (p *Pipeline) reconcile(w *world, now time.Time) error {
	wanted := w.wanted()
	for site := range w.decided {
		if x, ok := wanted[site]; !ok || x.level != threat.LevelEvacuate {
			delete(w.decided, site)
		}
	}
	out := map[string]time.Time{}
	for _, site := range slices.Sorted(maps.Keys(wanted)) {
		x := wanted[site]
		if x.level != threat.LevelEvacuate {
			continue
		}
		d, decided := w.decided[site]
		switch {
		case decided && !d.Approved:
		case decided || p.policy.ApprovalFor(site) == threat.ApprovalAuto:
			out[site] = x.deadline
		default:
			if prev, asked := w.pending[site]; !asked || !prev.Equal(x.deadline) {
				p.emit(Event{At: now, Kind: EvApproval, Drill: w.drill, Site: site,
					Detail: fmt.Sprintf("evacuate %s (%s) within %s? %s; approve with id %q", site, x.hazard,
						x.deadline.Sub(now).Round(time.Second), x.reason, approvalID(w.drill, site))})
			}
			w.pending[site] = x.deadline
		}
	}
	for site := range w.pending {
		if _, held := out[site]; held || wanted[site].level != threat.LevelEvacuate || w.declined(site) {
			delete(w.pending, site)
		}
	}
	// Threatened but not evacuated: at watch level, or held (waiting for
	// approval, declined). None of them should receive VMs.
	var watch []string
	for _, site := range slices.Sorted(maps.Keys(wanted)) {
		if _, evacuating := out[site]; !evacuating {
			watch = append(watch, site)
		}
	}
	// What the alerts and decisions want is recorded before the target
	// acts on it, and what it applied once it did. Causes that change
	// nothing the target has are not its doing.
	same := maps.EqualFunc(out, w.applied, time.Time.Equal) && slices.Equal(watch, w.watch)
	if same {
		w.causes = nil
	}
	if err := p.save(w); err != nil {
		return err
	}
	if same {
		return nil
	}
	if err := w.apply(out, watch, p.cfg.AbortOnCancel); err != nil {
		p.emit(Event{At: now, Kind: EvFailed, Drill: w.drill, Detail: err.Error()})
		return fmt.Errorf("pipeline: target: %w", err)
	}
	w.applied, w.watch, w.causes = out, watch, nil
	p.emit(Event{At: now, Kind: EvApplied, Drill: w.drill, Deadlines: maps.Clone(out), Watch: slices.Clone(watch),
		Detail: describeApplied(out, watch, now)})
	return p.save(w)
}

// apply hands deadlines and watch to w's target, with their causes when
// it takes them (Explained).
func (w *world) apply(deadlines map[string]time.Time, watch []string, abort bool) error {
	if e, ok := w.target.(Explained); ok {
		return e.ApplyBecause(slices.Clone(w.causes), deadlines, slices.Clone(watch), abort)
	}
	return w.target.Apply(deadlines, slices.Clone(watch), abort)
}

// declined reports whether an operator declined the site's evacuation.
func (w *world) declined(site string) bool {
	d, ok := w.decided[site]
	return ok && !d.Approved
}

func describeApplied(d map[string]time.Time, watch []string, now time.Time) string {
	var parts []string
	for _, site := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, fmt.Sprintf("%s within %s", site, d[site].Sub(now).Round(100*time.Millisecond)))
	}
	out := strings.Join(parts, ", ")
	switch {
	case len(d) == 0 && len(watch) == 0:
		return "nothing (no site threatened)"
	case len(d) == 0:
		out = "no evacuation"
	}
	if len(watch) > 0 {
		out += "; watch " + strings.Join(watch, ", ")
	}
	return out
}

// emit logs an event and passes it to OnEvent (under p.mu).
func (p *Pipeline) emit(ev Event) {
	lvl := slog.LevelInfo
	if ev.Kind == EvRejected || ev.Kind == EvFailed {
		lvl = slog.LevelWarn
	}
	p.log.Log(context.Background(), lvl, "alert pipeline", "kind", ev.Kind, "drill", ev.Drill, "event", ev.EventID,
		"serial", ev.Serial, "product", ev.Product, "site", ev.Site, "detail", ev.Detail)
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(ev)
	}
}

func approvalID(drill bool, site string) string {
	if drill {
		return "drill/" + site
	}
	return site
}

// Approval is a site's evacuation waiting for an operator.
type Approval struct {
	// ID names it for Approve and Decline: the site, "drill/" and the
	// site for drills.
	ID       string    `json:"id"`
	Site     string    `json:"site"`
	Drill    bool      `json:"drill,omitempty"`
	Deadline time.Time `json:"deadline"`
	Hazard   string    `json:"hazard"`
	Reason   string    `json:"reason"`
}

// Pending returns the evacuations waiting for approval, soonest deadline
// first.
func (p *Pipeline) Pending() []Approval {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Approval
	for _, w := range p.worlds() {
		wanted := w.wanted()
		for site, dl := range w.pending {
			out = append(out, Approval{ID: approvalID(w.drill, site), Site: site, Drill: w.drill, Deadline: dl,
				Hazard: wanted[site].hazard, Reason: wanted[site].reason})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Deadline.Equal(out[j].Deadline) {
			return out[i].Deadline.Before(out[j].Deadline)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Approve starts a held evacuation (and lets later updates of the same
// threat through) until the site's threat is withdrawn.
func (p *Pipeline) Approve(id string) error { return p.Decide(id, true, "") }

// Decline drops a held evacuation until the site's threat is withdrawn.
func (p *Pipeline) Decline(id string) error { return p.Decide(id, false, "") }

// Decision is an operator's answer to a held evacuation.
type Decision struct {
	Approved bool `json:"approved"`
	// By is who decided ("" when not known).
	By string `json:"by,omitempty"`
	// At is when, on the wall clock.
	At time.Time `json:"at"`
}

// Decide approves (Approve) or declines (Decline) the held evacuation id
// on behalf of by, who is recorded with the decision.
func (p *Pipeline) Decide(id string, approve bool, by string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, site := p.real, id
	if s, ok := strings.CutPrefix(id, "drill/"); ok && p.drill != nil {
		w, site = p.drill, s
	}
	if _, ok := w.pending[site]; !ok {
		return fmt.Errorf("pipeline: no evacuation of %q waits for approval", id)
	}
	now := p.cfg.Clock.Now()
	delete(w.pending, site)
	d := Decision{Approved: approve, By: by, At: time.Now().UTC()}
	w.decided[site] = d
	w.note(Cause{Drill: w.drill, Site: site, Approved: approve, By: by, At: d.At})
	kind := EvDeclined
	if approve {
		kind = EvApproved
	}
	p.emit(Event{At: now, Kind: kind, Drill: w.drill, Site: site, Detail: by})
	return p.reconcile(w, now)
}

// Retry applies again what the alerts want where the target refused it
// last (a controller that does not lead yet, an evacuation in the way);
// a daemon calls it periodically, since the refusal is not final. It
// returns the targets' errors.
func (p *Pipeline) Retry() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Clock.Now()
	var errs []error
	for _, w := range p.worlds() {
		if err := p.reconcile(w, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Pipeline) worlds() []*world {
	if p.drill == nil {
		return []*world{p.real}
	}
	return []*world{p.real, p.drill}
}

// SiteStatus is one site's current threat in one world.
type SiteStatus struct {
	Site     string       `json:"site"`
	Drill    bool         `json:"drill,omitempty"`
	Level    threat.Level `json:"level"`
	Hazard   string       `json:"hazard,omitempty"`
	Deadline time.Time    `json:"deadline,omitzero"`
	// Evacuating is set when the target has the site's deadline; Pending
	// when it waits for approval; Declined when an operator declined it.
	Evacuating bool `json:"evacuating,omitempty"`
	Pending    bool `json:"pending,omitempty"`
	Declined   bool `json:"declined,omitempty"`
}

// ThreadStatus is one event the pipeline follows.
type ThreadStatus struct {
	Kind      alert.Kind `json:"kind"`
	EventID   string     `json:"event_id"`
	Drill     bool       `json:"drill,omitempty"`
	Serial    int        `json:"serial"`
	Product   string     `json:"product"`
	Cancelled bool       `json:"cancelled,omitempty"`
}

// Status is what the pipeline follows and what it wants done.
type Status struct {
	Threads []ThreadStatus `json:"threads"`
	Sites   []SiteStatus   `json:"sites"`
}

// Status returns the events followed and the sites threatened.
func (p *Pipeline) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Threads: []ThreadStatus{}, Sites: []SiteStatus{}}
	for _, w := range p.worlds() {
		for _, th := range w.threads {
			st.Threads = append(st.Threads, ThreadStatus{Kind: th.key.kind, EventID: th.key.eventID, Drill: w.drill,
				Serial: th.latest.Serial, Product: th.latest.Product, Cancelled: th.cancelled})
		}
		wanted := w.wanted()
		for _, site := range slices.Sorted(maps.Keys(wanted)) {
			x := wanted[site]
			_, applied := w.applied[site]
			_, pending := w.pending[site]
			st.Sites = append(st.Sites, SiteStatus{Site: site, Drill: w.drill, Level: x.level, Hazard: x.hazard, Deadline: x.deadline,
				Evacuating: applied, Pending: pending, Declined: w.declined(site)})
		}
	}
	sort.Slice(st.Threads, func(i, j int) bool {
		a, b := st.Threads[i], st.Threads[j]
		if a.Drill != b.Drill {
			return !a.Drill
		}
		if a.EventID != b.EventID {
			return a.EventID < b.EventID
		}
		return a.Kind < b.Kind
	})
	return st
}

// Run runs the sources, each delivering to Submit under its name
// (WithSource), until ctx ends or every source has returned. It returns
// the sources' errors other than ctx's end (cancelled or past its
// deadline).
func (p *Pipeline) Run(ctx context.Context, sources ...alertsource.Source) error {
	var wg sync.WaitGroup
	errs := make([]error, len(sources))
	for i, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink := func(ctx context.Context, a *alert.Alert) error { return p.Submit(WithSource(ctx, s.Name()), a) }
			if err := s.Run(ctx, sink); err != nil && !(ctx.Err() != nil && errors.Is(err, ctx.Err())) {
				errs[i] = fmt.Errorf("%s: %w", s.Name(), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
