package evacuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/continuity"
	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
)

// Continuity keeps the evacuated services reachable under their names
// (*continuity.Coordinator): the executor calls Switchover per service of
// each VM that switched over; the evacuation lowers the services' TTL
// before anything moves and restores it at the end.
type Continuity interface {
	executor.Switcher
	LowerTTL(ctx context.Context, services []string, ttl uint32) error
	RestoreTTL(ctx context.Context, services []string) error
}

var _ Continuity = (*continuity.Coordinator)(nil)

// restoreTimeout bounds restoring the TTLs after an evacuation, which runs
// even when the evacuation's context was cancelled.
const restoreTimeout = 30 * time.Second

// atRiskServices lists, sorted, the services with a VM placed (per
// placement, a host index per VM; -1: nowhere) at a threatened site.
func atRiskServices(ix *model.Index, sc *model.Scenario, placement []int) []string {
	var sites []string
	for _, t := range sc.Threats {
		sites = append(sites, t.Site)
	}
	for _, e := range sc.Events {
		if e.Kind == model.EventDeadlineChanged {
			sites = append(sites, e.Site)
		}
	}
	return continuity.ServicesAt(ix, placement, sites)
}

// overlapWait is how long an evacuation with a deadline waits for the
// TTL to be lowered before it starts anyway (a variable for tests).
var overlapWait = 2 * time.Second

// withContinuity runs move between lowering the services' TTL to ttl and
// restoring it. With overlap, move waits for the lowering at most
// overlapWait and then starts while it finishes, so that a slow or
// unreachable DNS server costs the deadline little (a switchover that
// comes first makes that service's lowering fail as a conflict,
// reported). Continuity failures are logged and returned as
// messages for the report, never as errors: they must not stop an
// evacuation.
func withContinuity(ctx context.Context, c Continuity, services []string, ttl uint32, overlap bool, lg *slog.Logger, move func() error) ([]string, error) {
	if c == nil || len(services) == 0 {
		return nil, move()
	}
	if ttl == 0 {
		ttl = continuity.DefaultLoweredTTL
	}
	var problems []string
	note := func(step string, err error) {
		if err != nil {
			lg.Warn("continuity step failed; the evacuation goes on", "step", step, "services", services, "err", err)
			problems = append(problems, fmt.Sprintf("%s: %v", step, err))
		}
	}
	lowered := make(chan error, 1)
	go func() { lowered <- c.LowerTTL(ctx, services, ttl) }()
	var waitC <-chan time.Time // without overlap: until it is done
	if overlap {
		t := time.NewTimer(overlapWait)
		defer t.Stop()
		waitC = t.C
	}
	var lowerErr error
	done := false
	select {
	case lowerErr = <-lowered:
		done = true
	case <-waitC:
		lg.Info("lowering the TTL takes longer; the evacuation starts meanwhile", "waited", overlapWait)
	}
	err := move()
	if !done {
		lowerErr = <-lowered
	}
	note("lower TTL", lowerErr)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	note("restore TTL", c.RestoreTTL(rctx, services))
	return problems, err
}

// DrillOptions configure a drill: the evacuation runs in the simulator
// (nothing real moves) while continuity — DNS updates in a drill zone —
// is exercised for real at each simulated switchover.
type DrillOptions struct {
	Federation *model.Federation
	Scenario   *model.Scenario
	Policy     model.Policy
	Logger     *slog.Logger
	// OnEvent receives the executor's timeline (virtual time).
	OnEvent func(executor.Event)
	// Continuity is built for a drill (continuity.BuildOptions.Drill).
	Continuity Continuity
	// LoweredTTL is the TTL during the drill (0: continuity.DefaultLoweredTTL).
	LoweredTTL uint32
}

// DrillReport is a drill's outcome.
type DrillReport struct {
	Summary evacsim.Summary `json:"summary"`
	// Services are the services whose names the drill moved.
	Services []string `json:"services"`
	// Switchovers are the executor's calls of Continuity, in order.
	Switchovers []Switchover `json:"switchovers"`
	// ContinuityErrors are failed TTL steps and switchovers.
	ContinuityErrors []string `json:"continuity_errors,omitempty"`
}

// Drill plays the scenario in the simulator with Continuity called at
// every switchover.
func Drill(ctx context.Context, o DrillOptions) (*DrillReport, error) {
	if o.Federation == nil || o.Scenario == nil || o.Continuity == nil {
		return nil, errors.New("drill: federation, scenario and continuity are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ix := model.NewIndex(o.Federation)
	out := &DrillReport{Services: atRiskServices(ix, o.Scenario, ix.VMHost)}
	rec := &recorder{next: o.Continuity}
	var res *evacsim.Result
	problems, err := withContinuity(ctx, o.Continuity, out.Services, o.LoweredTTL, false, o.Logger, func() error {
		var err error
		res, err = evacsim.Run(evacsim.Options{Federation: o.Federation, Scenario: o.Scenario, Policy: o.Policy,
			Logger: o.Logger, OnEvent: o.OnEvent, Switcher: rec})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	out.Summary = res.Summary
	var failed []string
	out.Switchovers, failed = rec.calls()
	out.ContinuityErrors = append(problems, failed...)
	return out, nil
}

// Switchover is one call of the Switcher: a VM of a service switched over
// from one site to another.
type Switchover struct {
	VM      string `json:"vm"`
	Service string `json:"service"`
	From    string `json:"from"`
	To      string `json:"to"`
	Error   string `json:"error,omitempty"`
}

// recorder passes switchovers on and keeps them for the report (the
// executor may call it from several goroutines).
type recorder struct {
	next executor.Switcher
	mu   sync.Mutex
	done []Switchover
}

func (r *recorder) Switchover(ctx context.Context, vm, service, from, to string) error {
	err := r.next.Switchover(ctx, vm, service, from, to)
	s := Switchover{VM: vm, Service: service, From: from, To: to}
	if err != nil {
		s.Error = err.Error()
	}
	r.mu.Lock()
	r.done = append(r.done, s)
	r.mu.Unlock()
	return err
}

// calls returns the switchovers so far and the failed ones as messages.
func (r *recorder) calls() (all []Switchover, failed []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.done {
		if s.Error != "" {
			failed = append(failed, fmt.Sprintf("switchover of %s (vm %s, %s → %s): %s", s.Service, s.VM, s.From, s.To, s.Error))
		}
	}
	return append([]Switchover(nil), r.done...), failed
}
