package monitor

import (
	"net/netip"
	"sort"
	"time"
)

// pingRing remembers the last pings sent to a target, to match acks.
const pingRing = 8

type sentPing struct {
	seq uint64
	at  time.Time
}

type probeTarget struct {
	Target
	det   *detector
	pings [pingRing]sentPing
	n     int
}

// prober sends pings to a set of targets and judges them from the acks.
// It is not safe for concurrent use; its owner locks.
type prober struct {
	cfg     *DetectorConfig
	seq     uint64
	targets map[uint32]*probeTarget
}

func newProber(cfg *DetectorConfig) *prober {
	return &prober{cfg: cfg, targets: map[uint32]*probeTarget{}}
}

// set replaces the targets; targets kept keep their history, new ones
// start with a grace period from now.
func (p *prober) set(ts []Target, now time.Time) {
	next := make(map[uint32]*probeTarget, len(ts))
	for _, t := range ts {
		if old, ok := p.targets[t.ID]; ok && old.Addr == t.Addr {
			next[t.ID] = old
			continue
		}
		next[t.ID] = &probeTarget{Target: t, det: newDetector(p.cfg, now)}
	}
	p.targets = next
}

// ids returns the targets' ids, sorted.
func (p *prober) ids() []uint32 {
	out := make([]uint32, 0, len(p.targets))
	for id := range p.targets {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ping returns the pings to send now, one per target, in id order.
func (p *prober) ping(now time.Time) []Target {
	out := make([]Target, 0, len(p.targets))
	for _, id := range p.ids() {
		t := p.targets[id]
		p.seq++
		t.pings[t.n%pingRing] = sentPing{seq: p.seq, at: now}
		t.n++
		out = append(out, Target{ID: id, Addr: t.Addr})
	}
	return out
}

// seqFor returns the sequence number of the last ping to id.
func (p *prober) seqFor(id uint32) uint64 {
	t := p.targets[id]
	if t == nil || t.n == 0 {
		return 0
	}
	return t.pings[(t.n-1)%pingRing].seq
}

// ackResult says what an ack meant.
type ackResult int

const (
	ackOK ackResult = iota
	ackUnknown
	ackLate
)

// ack matches an ack from src; only an ack from the target's own address
// for one of its recent pings, answered within the timeout, counts.
func (p *prober) ack(m *Message, src netip.AddrPort, now time.Time) ackResult {
	t := p.targets[m.From]
	if t == nil || t.Addr != src {
		return ackUnknown
	}
	for _, s := range t.pings {
		if s.seq == m.Seq && s.seq != 0 {
			if now.Sub(s.at) > p.cfg.Timeout {
				return ackLate
			}
			t.det.beat(now)
			return ackOK
		}
	}
	if m.Seq <= p.seq {
		return ackLate // older than the ring
	}
	return ackUnknown
}

// statuses judges every target at now.
func (p *prober) statuses(now time.Time) []Status {
	out := make([]Status, 0, len(p.targets))
	for _, id := range p.ids() {
		st, age := p.targets[id].det.state(now)
		ms := age.Milliseconds()
		out = append(out, Status{ID: id, State: st, AgeMs: uint32(min(ms, int64(^uint32(0))))})
	}
	return out
}
