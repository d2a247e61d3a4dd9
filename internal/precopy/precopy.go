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

// Dirtied returns the distinct bytes the guest dirties in d at the current
// throttle: its effective dirty rate times d, at most its working set.
func (s *State) Dirtied(d time.Duration) float64 {
	ws := s.guest.WorkingSet
	if ws <= 0 || ws > s.guest.MemoryBytes {
		ws = s.guest.MemoryBytes
	}
	return math.Min(s.EffectiveDirtyRate()*d.Seconds(), ws)
}

// Unsent returns what a migration must still send if it stops iterating
// now (the guest is paused, or switches to post-copy): left, what remains
// of the current round, plus what the guest dirtied since the round began
// roundElapsed ago — QEMU's next dirty-bitmap sync finds those pages — at
// most the guest's memory.
func (s *State) Unsent(left float64, roundElapsed time.Duration) float64 {
	return math.Min(left+s.Dirtied(roundElapsed), s.guest.MemoryBytes)
}

// RoundDone records that the current round's Remaining bytes were sent in
// dt. It sets Remaining to the bytes dirtied meanwhile and decides whether
// to switch over (Switchover) or give up (Failed). The switch-over decision
// uses the bandwidth measured in the round, as QEMU does.
func (s *State) RoundDone(dt time.Duration) {
	sent := s.Remaining
	s.Round++
	secs := dt.Seconds()
	dirtied := s.Dirtied(dt)
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
	o := NewState(g, cfg).runOut(rate, e.Setup.Seconds()+g.DiskBytes/rate, g.DiskBytes)
	e.Total, e.Bytes, e.Rounds, e.Downtime, e.Converges = o.Time, o.Bytes, o.Rounds, o.Downtime, o.OK
	return e
}

// runOut continues the migration at a constant rate from secs seconds and
// bytes sent until it switches over (then the final copy and the
// switch-over overhead are added) or fails. Rounds counts the rounds
// completed in it.
func (s *State) runOut(rate, secs, bytes float64) Outcome {
	start := s.Round
	for !s.Switchover && !s.Failed {
		dt := s.Remaining / rate
		secs += dt
		bytes += s.Remaining
		s.RoundDone(seconds(dt))
	}
	o := Outcome{Time: seconds(secs), Bytes: bytes, Rounds: s.Round - start}
	if s.Failed {
		return o
	}
	o.OK = true
	o.Downtime = seconds(s.Remaining/rate) + SwitchoverOverhead
	o.Bytes += s.Remaining
	o.Time += o.Downtime
	return o
}

// Progress describes a running live migration in its memory phase, as its
// job statistics report it; each field names the hypervisor.JobInfo field
// it comes from.
type Progress struct {
	// MemoryBytes and WorkingSet describe the guest, as in Guest.
	MemoryBytes float64
	WorkingSet  float64
	// Remaining is what is left of the current round (MemRemaining).
	Remaining float64
	// RoundElapsed is how long the current round has been sending
	// (MemRoundElapsed). 0 (unknown) treats the round as just begun: the
	// predictions of Paused and PostCopy then leave out what the guest
	// dirtied since it began.
	RoundElapsed time.Duration
	// Rounds is the number of completed rounds (MemIteration − 1).
	Rounds int
	// DirtyRate is the measured dirty rate, after throttling
	// (MemDirtyRate), in bytes/s.
	DirtyRate float64
	// Throttle is the auto-converge throttle, 0 to ThrottleMax
	// (AutoConvergeThrottle / 100).
	Throttle float64
	// Rate is the transfer rate now (MemBytesPerSec); the prediction
	// assumes it holds.
	Rate float64
	// Config holds the migration's downtime limit and auto-converge.
	Config Config
}

// Outcome is the predicted rest of a migration in one mode, from now.
type Outcome struct {
	// OK is false when the migration does not finish this way: live
	// pre-copy that does not converge, or a rate of 0.
	OK bool
	// Time until the migration ends: for live and paused, the domain then
	// runs at the destination; for post-copy, its last page has arrived.
	Time time.Duration
	// Bytes still to send.
	Bytes float64
	// Downtime is the pause the guest sees from now on: the final copy and
	// switch-over (live), all of Time (paused), the switch-over only
	// (post-copy).
	Downtime time.Duration
	// Rounds is the number of pre-copy rounds still to complete, the
	// current one included (live only).
	Rounds int
}

// Prediction compares the ways a running live migration can finish.
type Prediction struct {
	// Live: pre-copy continues as it is (with auto-converge if configured).
	Live Outcome
	// Paused: Job.Pause now; the guest stops dirtying memory and what is
	// unsent (State.Unsent) is copied while it is paused.
	Paused Outcome
	// PostCopy: Job.StartPostCopy now; the guest runs at the destination
	// after the switch-over and pulls what is unsent.
	PostCopy Outcome
}

// Predict predicts, from the job statistics of a running live migration,
// how it ends if it continues live, if it is paused now, and if it
// switches to post-copy now. It runs the same State as Solo and the
// simulator, from the current round on. Auto-converge's count of
// high-dirtying rounds is not in the statistics and restarts at 0, so a
// throttle increase may come one round later than predicted.
func Predict(p Progress) Prediction {
	if p.Rate <= 0 {
		return Prediction{}
	}
	dirty := p.DirtyRate
	if p.Throttle > 0 && p.Throttle < 1 {
		dirty /= 1 - p.Throttle
	}
	st := &State{
		guest:    Guest{MemoryBytes: p.MemoryBytes, DirtyRate: dirty, WorkingSet: p.WorkingSet},
		cfg:      p.Config,
		Round:    p.Rounds,
		Throttle: p.Throttle,
	}
	unsent := st.Unsent(p.Remaining, p.RoundElapsed)
	pull := unsent / p.Rate
	pred := Prediction{
		Paused: Outcome{OK: true, Bytes: unsent, Time: seconds(pull) + SwitchoverOverhead},
		PostCopy: Outcome{OK: true, Bytes: unsent, Time: max(seconds(pull), SwitchoverOverhead),
			Downtime: SwitchoverOverhead},
	}
	pred.Paused.Downtime = pred.Paused.Time
	// Finish the current round at the current rate, as if the whole round
	// had run at it (so that the switch-over test sees that bandwidth),
	// then continue as Solo does.
	left := p.Remaining / p.Rate
	round := p.RoundElapsed + seconds(left)
	st.Remaining = p.Rate * round.Seconds()
	st.RoundDone(round)
	pred.Live = st.runOut(p.Rate, left, p.Remaining)
	pred.Live.Rounds++
	return pred
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
