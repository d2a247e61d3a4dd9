package monitor

import (
	"fmt"
	"math"
	"slices"
)

// Scheme is a monitoring assignment: which hosts each host probes and
// which the controller probes itself.
type Scheme interface {
	Hosts() int
	// Targets returns the hosts h probes (none for most hosts).
	Targets(h int) []int
	// ControllerTargets returns the hosts the controller probes.
	ControllerTargets() []int
	// Down reports whether h is known to have failed.
	Down(h int) bool
}

var (
	_ Scheme = (*Assignment)(nil)
	_ Scheme = (*MasterSlave)(nil)
)

// MasterSlave is the baseline: one master host probes every other host;
// the controller probes the master. When the master fails, the next live
// host becomes master.
type MasterSlave struct {
	hosts  int
	master int
	down   []bool
}

// NewMasterSlave makes host 0 the master of hosts.
func NewMasterSlave(hosts int) (*MasterSlave, error) {
	if hosts <= 0 {
		return nil, fmt.Errorf("master-slave for %d hosts: %w", hosts, ErrNoHosts)
	}
	return &MasterSlave{hosts: hosts, down: make([]bool, hosts)}, nil
}

// Hosts implements Scheme.
func (m *MasterSlave) Hosts() int { return m.hosts }

// Master returns the master host (-1 when every host is down).
func (m *MasterSlave) Master() int { return m.master }

// Targets implements Scheme.
func (m *MasterSlave) Targets(h int) []int {
	if h != m.master || h < 0 {
		return nil
	}
	out := make([]int, 0, m.hosts-1)
	for t := range m.hosts {
		if t != h {
			out = append(out, t)
		}
	}
	return out
}

// ControllerTargets implements Scheme.
func (m *MasterSlave) ControllerTargets() []int {
	if m.master < 0 {
		return nil
	}
	return []int{m.master}
}

// Down implements Scheme.
func (m *MasterSlave) Down(h int) bool { return h >= 0 && h < m.hosts && m.down[h] }

// Fail marks h failed; a failed master is replaced by the next live host.
func (m *MasterSlave) Fail(h int) error {
	if h < 0 || h >= m.hosts {
		return fmt.Errorf("fail host %d of %d: %w", h, m.hosts, ErrUnknownHost)
	}
	m.down[h] = true
	if h == m.master {
		m.master = -1
		for i := 1; i <= m.hosts; i++ {
			if c := (h + i) % m.hosts; !m.down[c] {
				m.master = c
				break
			}
		}
	}
	return nil
}

// Messages counts, per host, the monitoring messages of one round: every
// probe is a request and a reply, counted at both ends; the controller is
// not a host, but the probes it exchanges with a host count at that host.
func Messages(s Scheme) []int {
	msgs := make([]int, s.Hosts())
	for h := range s.Hosts() {
		for _, t := range s.Targets(h) {
			msgs[h] += 2
			msgs[t] += 2
		}
	}
	for _, t := range s.ControllerTargets() {
		msgs[t] += 2
	}
	return msgs
}

// Balance is seed 004's balance metric: (max − min) / mean of the
// per-resource message counts.
func Balance(msgs []int) float64 {
	if len(msgs) == 0 {
		return 0
	}
	lo, hi := slices.Min(msgs), slices.Max(msgs)
	sum := 0
	for _, m := range msgs {
		sum += m
	}
	if sum == 0 {
		return 0
	}
	return float64(hi-lo) / (float64(sum) / float64(len(msgs)))
}

// StdDev is the population standard deviation of the message counts
// (the paper's Figure 6b).
func StdDev(msgs []int) float64 {
	if len(msgs) == 0 {
		return 0
	}
	mean := 0.0
	for _, m := range msgs {
		mean += float64(m)
	}
	mean /= float64(len(msgs))
	v := 0.0
	for _, m := range msgs {
		d := float64(m) - mean
		v += d * d
	}
	return math.Sqrt(v / float64(len(msgs)))
}
