package controller

import (
	"context"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/pipeline"
)

// World is the federation a controller acts on: its model, a driver and
// where the driver and executors may be called.
type World interface {
	Index() *model.Index
	Driver() hypervisor.Driver
	// Clock is the executors' clock (called inside Do).
	Clock() clock.Clock
	// Now tells the world's time from any goroutine.
	Now() time.Time
	// Do runs f where executors and the driver may be called and waits.
	Do(f func())
	// State returns where VMs run and which hosts are down (inside Do).
	State() (placement []int, hostDown []bool)
	// Host returns the host VM v runs on (-1: lost; inside Do).
	Host(v int) int
	// InFlight reports whether a migration of VM v is still under way in
	// the hypervisors (inside Do): one a dead leader started.
	InFlight(v int) bool
	// SiteDeadline is told a threatened site's deadline (inside Do); the
	// simulator loses the site then.
	SiteDeadline(site int, at time.Time)
}

// SimWorld is the simulated federation (simhv on a sim.Engine driven in
// real or accelerated time) as a World.
type SimWorld struct {
	w     *pipeline.SimWorld
	clk   clock.Clock
	timer map[int]clock.Timer
}

// NewSimWorld builds a simulated federation; Run drives it.
func NewSimWorld(f *model.Federation, speed float64) (*SimWorld, error) {
	w, err := pipeline.NewSimWorld(pipeline.SimConfig{Federation: f, Speed: speed})
	if err != nil {
		return nil, err
	}
	return &SimWorld{w: w, clk: w.Cluster().Engine(), timer: map[int]clock.Timer{}}, nil
}

// Run drives the simulation until ctx ends.
func (s *SimWorld) Run(ctx context.Context) error { return s.w.Run(ctx) }

// Index implements World.
func (s *SimWorld) Index() *model.Index { return s.w.Index() }

// Driver implements World.
func (s *SimWorld) Driver() hypervisor.Driver { return s.w.Cluster() }

// Clock implements World.
func (s *SimWorld) Clock() clock.Clock { return s.clk }

// Now implements World.
func (s *SimWorld) Now() time.Time { return s.w.Clock().Now() }

// Do implements World.
func (s *SimWorld) Do(f func()) { s.w.Do(f) }

// State implements World.
func (s *SimWorld) State() ([]int, []bool) {
	c := s.w.Cluster()
	down := make([]bool, len(s.Index().Hosts))
	for h := range down {
		down[h] = !c.HostUp(h)
	}
	return c.Placement(), down
}

// Host implements World.
func (s *SimWorld) Host(v int) int { return s.w.Cluster().Placement()[v] }

// InFlight implements World.
func (s *SimWorld) InFlight(v int) bool { return s.w.Cluster().Migrating(v) }

// SiteDeadline implements World: the site is lost at its deadline.
func (s *SimWorld) SiteDeadline(site int, at time.Time) {
	if t := s.timer[site]; t != nil {
		t.Stop()
	}
	s.timer[site] = s.clk.AfterFunc(max(at.Sub(s.clk.Now()), 0), func() {
		delete(s.timer, site)
		_ = s.w.Cluster().LoseSite(site)
	})
}

// Check verifies the simulated federation's invariants (inside Do): every
// VM on exactly one host or lost with it.
func (s *SimWorld) Check() error { return s.w.Cluster().Check() }
