// Package precopy models QEMU's pre-copy live migration: the first round
// sends all memory, each later round re-sends what the guest dirtied during
// the previous one, and the guest is paused for a final copy once the
// remainder can be sent within the downtime limit. Guests that dirty memory
// too fast for this to converge are throttled (auto-converge) or the
// migration is reported as not converging.
//
// The same State machine drives the simulator (where the rate of each round
// follows the network's fair share) and the planner's analytic Estimate
// (where the rate is constant), so the two cannot drift apart.
package precopy

import (
	"math"
	"time"
)

// Overheads and QEMU constants. The overheads are calibrated against seed
// 000's measurements; see docs/calibration.md.
const (
	// SetupBase covers libvirt's begin/prepare phases and starting the
	// destination QEMU process.
	SetupBase = 3700 * time.Millisecond
	// SetupRTTs is the number of round trips the migration handshake costs
	// (libvirt's begin/prepare/perform/finish/confirm plus QEMU's channel
	// set-up).
	SetupRTTs = 6
	// SwitchoverOverhead is the fixed part of the pause: device state
	// transfer and resuming the guest at the destination.
	SwitchoverOverhead = 80 * time.Millisecond
	// ThrottleInitial, ThrottleIncrement and ThrottleMax are QEMU's
	// cpu-throttle-initial, cpu-throttle-increment and max-cpu-throttle.
	ThrottleInitial   = 0.20
	ThrottleIncrement = 0.10
	ThrottleMax       = 0.99
	// MaxRoundsWithoutThrottle is how many rounds a migration without
	// auto-converge may take before it is declared non-converging.
	MaxRoundsWithoutThrottle = 30
	// MaxRounds bounds every migration: a guest that even at the largest
	// throttle dirties memory faster than the link (or a zero downtime
	// limit with any dirtying) never converges, and is declared so here.
	MaxRounds = 300
)

// Guest describes what is migrated.
type Guest struct {
	MemoryBytes float64
	// DiskBytes to copy first (copy-storage-all); 0 for shared storage.
	DiskBytes float64
	// DirtyRate in bytes/s.
	DirtyRate float64
	// WorkingSet bounds the distinct bytes dirtied per round; 0 = memory.
	WorkingSet float64
}

// Config holds the migration parameters that shape pre-copy.
type Config struct {
	MaxDowntime  time.Duration
	AutoConverge bool
}

// Setup returns the fixed time before data flows for a path with the given
// round-trip time.
func Setup(rtt time.Duration) time.Duration { return SetupBase + SetupRTTs*rtt }

// State is one migration's pre-copy progress. Create it with NewState, send
// Remaining bytes, then call RoundDone with how long that took.
type State struct {
	guest Guest
	cfg   Config
	// Remaining is the number of bytes to send in the current round.
	Remaining float64
	// Round counts completed memory rounds.
	Round int
	// Throttle is the current auto-converge vCPU throttle (0..0.99).
	Throttle float64
	// Switchover is true once the guest is paused for the final copy.
	Switchover bool
	// Failed is true when the migration cannot converge.
	Failed   bool
	highDirt int
}

// NewState starts a migration's memory phase (disk copy, if any, comes
// before and is not part of the state).
func NewState(g Guest, cfg Config) *State {
	return &State{guest: g, cfg: cfg, Remaining: g.MemoryBytes}
}

// EffectiveDirtyRate is the guest's dirty rate under the current throttle.
func (s *State) EffectiveDirtyRate() float64 { return s.guest.DirtyRate * (1 - s.Throttle) }

// RoundDone records that the current round's Remaining bytes were sent in
// dt. It sets Remaining to the bytes dirtied meanwhile and decides whether
// to switch over (Switchover) or give up (Failed). The switch-over decision
// uses the bandwidth measured in the round, as QEMU does.
func (s *State) RoundDone(dt time.Duration) {
	sent := s.Remaining
	s.Round++
	secs := dt.Seconds()
	ws := s.guest.WorkingSet
	if ws <= 0 || ws > s.guest.MemoryBytes {
		ws = s.guest.MemoryBytes
	}
	dirtied := math.Min(s.EffectiveDirtyRate()*secs, ws)
	bw := math.Inf(1)
	if secs > 0 {
		bw = sent / secs
	}
	s.Remaining = dirtied
	if dirtied <= bw*s.cfg.MaxDowntime.Seconds() {
		s.Switchover = true
		return
	}
	// QEMU's auto-converge: a round that dirtied more than half of what it
	// sent counts as "high"; the second such round starts or raises the
	// throttle.
	if dirtied > 0.5*sent {
		s.highDirt++
	} else {
		s.highDirt = 0
	}
	if s.Round >= MaxRounds {
		s.Failed = true
		return
	}
	if s.cfg.AutoConverge {
		if s.highDirt >= 2 {
			if s.Throttle == 0 {
				s.Throttle = ThrottleInitial
			} else {
				s.Throttle = math.Min(ThrottleMax, s.Throttle+ThrottleIncrement)
			}
			s.highDirt = 0
		}
		return
	}
	if s.Round >= MaxRoundsWithoutThrottle {
		s.Failed = true
	}
}

// Estimate is the predicted outcome of a migration at a constant rate.
type Estimate struct {
	Setup     time.Duration
	Total     time.Duration
	Bytes     float64
	Rounds    int
	Downtime  time.Duration
	Converges bool
}

// Solo predicts a migration that has rate bytes/s to itself over a path with
// round-trip time rtt.
func Solo(g Guest, cfg Config, rate float64, rtt time.Duration) Estimate {
	e := Estimate{Setup: Setup(rtt)}
	if rate <= 0 {
		return e
	}
	secs := e.Setup.Seconds() + g.DiskBytes/rate
	e.Bytes = g.DiskBytes
	st := NewState(g, cfg)
	for !st.Switchover && !st.Failed {
		dt := st.Remaining / rate
		secs += dt
		e.Bytes += st.Remaining
		st.RoundDone(seconds(dt))
	}
	e.Rounds = st.Round
	if st.Failed {
		e.Total = seconds(secs)
		return e
	}
	e.Converges = true
	e.Downtime = seconds(st.Remaining/rate) + SwitchoverOverhead
	e.Bytes += st.Remaining
	e.Total = seconds(secs) + e.Downtime
	return e
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Ethernet framing used to turn a line rate into TCP goodput.
const (
	mtu          = 1500
	wireOverhead = 14 + 4 + 8 + 12 // Ethernet header, FCS, preamble, inter-frame gap
	tcpIPHeaders = 20 + 20 + 12    // IPv4, TCP, TCP timestamps option
)

// Goodput returns the TCP payload rate (bytes/s) of a line rate given in
// bytes/s, for a standard 1500-byte MTU and tunnelOverhead bytes of VPN
// encapsulation per packet.
func Goodput(lineRate float64, tunnelOverhead int) float64 {
	payload := float64(mtu - tcpIPHeaders - tunnelOverhead)
	return lineRate * payload / float64(mtu+wireOverhead)
}
