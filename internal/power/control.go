package power

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
)

// State is a host's power state.
type State string

// Power states.
const (
	StateOn      State = "on"
	StateOff     State = "off"
	StateBooting State = "booting" // powered on, not yet able to run VMs
)

// Errors a Controller reports; wrap them with context.
var (
	ErrUnknownHost = errors.New("unknown host")
	// ErrBusy: the host is changing state (booting) and cannot take the
	// request now.
	ErrBusy = errors.New("host is changing power state")
	// ErrBMC: the management controller failed the request.
	ErrBMC = errors.New("management controller error")
)

// Controller switches hosts on and off. Implementations: Sim now; IPMI and
// Redfish later. Calls are idempotent: powering on a host that is on (or
// booting) and powering off a host that is off succeed and do nothing.
type Controller interface {
	// PowerOn starts host; it is StateBooting until it can run VMs.
	PowerOn(ctx context.Context, host string) error
	// PowerOff switches host off. Callers must have moved its VMs away:
	// a controller does not know about VMs.
	PowerOff(ctx context.Context, host string) error
	// State reports host's power state.
	State(ctx context.Context, host string) (State, error)
}

// SimConfig sets up a simulated controller.
type SimConfig struct {
	Clock clock.Clock
	Hosts []string
	// Off lists hosts that start powered off.
	Off []string
	// BootTime is how long a host takes from power-on to StateOn (0: at
	// once). Power-off is immediate.
	BootTime time.Duration
	// Meter, if not nil, is told about power changes (hosts by their index
	// in Hosts).
	Meter *Meter
	// OnChange, if not nil, is called after every state change (outside
	// the controller's lock).
	OnChange func(host string, s State)
}

// Sim is a simulated power controller on an injected clock. It is safe for
// concurrent use.
type Sim struct {
	cfg   SimConfig
	index map[string]int

	mu     sync.Mutex
	state  []State
	faults map[string][]error
	ons    int
	offs   int
}

var _ Controller = (*Sim)(nil)

// NewSim returns a simulated controller.
func NewSim(cfg SimConfig) (*Sim, error) {
	if cfg.Clock == nil {
		return nil, errors.New("power: simulated controller needs a clock")
	}
	if cfg.BootTime < 0 {
		return nil, fmt.Errorf("power: boot time %v, want >= 0", cfg.BootTime)
	}
	s := &Sim{cfg: cfg, index: make(map[string]int, len(cfg.Hosts)), state: make([]State, len(cfg.Hosts)), faults: map[string][]error{}}
	for i, h := range cfg.Hosts {
		if _, dup := s.index[h]; dup {
			return nil, fmt.Errorf("power: host %q listed twice", h)
		}
		s.index[h] = i
		s.state[i] = StateOn
	}
	for _, h := range cfg.Off {
		i, ok := s.index[h]
		if !ok {
			return nil, fmt.Errorf("power: off host %q: %w", h, ErrUnknownHost)
		}
		s.state[i] = StateOff
		if cfg.Meter != nil {
			if err := cfg.Meter.SetOn(i, false); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// InjectFault makes the next call for host fail with err (wrapped with
// ErrBMC); faults queue up.
func (s *Sim) InjectFault(host string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[host] = append(s.faults[host], err)
}

func (s *Sim) lookup(host string) (int, error) {
	i, ok := s.index[host]
	if !ok {
		return 0, fmt.Errorf("power: host %q: %w", host, ErrUnknownHost)
	}
	return i, nil
}

// fault pops an injected fault for host (under the lock).
func (s *Sim) fault(host string) error {
	q := s.faults[host]
	if len(q) == 0 {
		return nil
	}
	s.faults[host] = q[1:]
	return fmt.Errorf("power: host %s: %w: %w", host, ErrBMC, q[0])
}

func (s *Sim) changed(i int, st State) {
	if s.cfg.Meter != nil {
		_ = s.cfg.Meter.SetOn(i, st != StateOff)
	}
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(s.cfg.Hosts[i], st)
	}
}

// PowerOn implements Controller.
func (s *Sim) PowerOn(ctx context.Context, host string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	i, err := s.lookup(host)
	if err == nil {
		err = s.fault(host)
	}
	if err != nil || s.state[i] != StateOff {
		s.mu.Unlock()
		return err
	}
	s.ons++
	if s.cfg.BootTime <= 0 {
		s.state[i] = StateOn
		s.mu.Unlock()
		s.changed(i, StateOn)
		return nil
	}
	s.state[i] = StateBooting
	s.mu.Unlock()
	s.changed(i, StateBooting)
	s.cfg.Clock.AfterFunc(s.cfg.BootTime, func() {
		s.mu.Lock()
		if s.state[i] != StateBooting {
			s.mu.Unlock()
			return
		}
		s.state[i] = StateOn
		s.mu.Unlock()
		s.changed(i, StateOn)
	})
	return nil
}

// PowerOff implements Controller.
func (s *Sim) PowerOff(ctx context.Context, host string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	i, err := s.lookup(host)
	if err == nil {
		err = s.fault(host)
	}
	if err == nil && s.state[i] == StateBooting {
		err = fmt.Errorf("power: power off %s: %w", host, ErrBusy)
	}
	if err != nil || s.state[i] == StateOff {
		s.mu.Unlock()
		return err
	}
	s.offs++
	s.state[i] = StateOff
	s.mu.Unlock()
	s.changed(i, StateOff)
	return nil
}

// State implements Controller.
func (s *Sim) State(ctx context.Context, host string) (State, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.lookup(host)
	if err != nil {
		return "", err
	}
	return s.state[i], nil
}

// Off returns the hosts currently off, sorted.
func (s *Sim) Off() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i, st := range s.state {
		if st == StateOff {
			out = append(out, s.cfg.Hosts[i])
		}
	}
	sort.Strings(out)
	return out
}

// Counts returns how many power-on and power-off operations changed a
// host's state.
func (s *Sim) Counts() (ons, offs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ons, s.offs
}
