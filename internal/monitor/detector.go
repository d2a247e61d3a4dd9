package monitor

import (
	"fmt"
	"math"
	"time"
)

// Detector kinds.
const (
	DetectTimeout = "timeout"
	DetectPhi     = "phi"
)

// DetectorConfig sets how silence turns into a verdict.
type DetectorConfig struct {
	// Kind is DetectTimeout (default) or DetectPhi (phi-accrual, Hayashibara
	// et al. 2004, as in Akka and Cassandra).
	Kind string
	// Timeout: a host silent this long is failed, whatever the kind
	// (default 5 probe intervals).
	Timeout time.Duration
	// SuspectAfter: silent this long, it is suspect (default Timeout/2).
	SuspectAfter time.Duration
	// PhiThreshold: phi at or above it means failed, half of it suspect
	// (default 8).
	PhiThreshold float64
	// MinStdDev floors the inter-arrival deviation phi assumes (default a
	// quarter of the probe interval), so that a perfectly regular history
	// does not make one late heartbeat fatal.
	MinStdDev time.Duration
	// Window is how many inter-arrival times phi remembers (default 100).
	Window int
}

func (c DetectorConfig) withDefaults(interval time.Duration) (DetectorConfig, error) {
	switch c.Kind {
	case "":
		c.Kind = DetectTimeout
	case DetectTimeout, DetectPhi:
	default:
		return c, fmt.Errorf("monitor: detector kind %q, want %q or %q", c.Kind, DetectTimeout, DetectPhi)
	}
	if c.Timeout < 0 || c.SuspectAfter < 0 || c.MinStdDev < 0 || c.Window < 0 || math.IsNaN(c.PhiThreshold) || c.PhiThreshold < 0 {
		return c, fmt.Errorf("monitor: detector settings must not be negative: %+v", c)
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * interval
	}
	if c.SuspectAfter == 0 || c.SuspectAfter > c.Timeout {
		c.SuspectAfter = c.Timeout / 2
	}
	if c.PhiThreshold == 0 {
		c.PhiThreshold = 8
	}
	if c.MinStdDev == 0 {
		c.MinStdDev = interval / 4
	}
	if c.Window == 0 {
		c.Window = 100
	}
	return c, nil
}

// detector judges one host from its heartbeats.
type detector struct {
	cfg  *DetectorConfig
	last time.Time
	// inter-arrival times (s), a ring of at most cfg.Window
	gaps      []float64
	next      int
	heartbeat bool // at least one heartbeat seen
}

func newDetector(cfg *DetectorConfig, start time.Time) *detector {
	return &detector{cfg: cfg, last: start}
}

// beat records a heartbeat at t.
func (d *detector) beat(t time.Time) {
	if d.heartbeat {
		if gap := t.Sub(d.last).Seconds(); gap > 0 {
			if len(d.gaps) < d.cfg.Window {
				d.gaps = append(d.gaps, gap)
			} else {
				d.gaps[d.next] = gap
				d.next = (d.next + 1) % d.cfg.Window
			}
		}
	}
	if t.After(d.last) {
		d.last = t
	}
	d.heartbeat = true
}

// state returns the verdict at now and the silence so far.
func (d *detector) state(now time.Time) (HostState, time.Duration) {
	age := max(now.Sub(d.last), 0)
	if age >= d.cfg.Timeout {
		return StateFailed, age
	}
	if d.cfg.Kind == DetectPhi && len(d.gaps) >= 2 {
		phi := d.phi(age)
		switch {
		case phi >= d.cfg.PhiThreshold:
			return StateFailed, age
		case phi >= d.cfg.PhiThreshold/2:
			return StateSuspect, age
		}
		return StateAlive, age
	}
	if age >= d.cfg.SuspectAfter || !d.heartbeat {
		// never heard from: not alive yet (a new target that is down must
		// not look recovered during its grace period)
		return StateSuspect, age
	}
	return StateAlive, age
}

// phi is −log10 of the probability that a heartbeat comes later than age,
// with inter-arrival times taken as normal (logistic approximation of the
// normal CDF, as Akka does).
func (d *detector) phi(age time.Duration) float64 {
	mean, sq := 0.0, 0.0
	for _, g := range d.gaps {
		mean += g
	}
	mean /= float64(len(d.gaps))
	for _, g := range d.gaps {
		sq += (g - mean) * (g - mean)
	}
	std := max(math.Sqrt(sq/float64(len(d.gaps))), d.cfg.MinStdDev.Seconds(), 1e-6)
	y := (age.Seconds() - mean) / std
	e := math.Exp(-y * (1.5976 + 0.070566*y*y))
	var pLater float64
	if age.Seconds() > mean {
		pLater = e / (1 + e)
	} else {
		pLater = 1 - 1/(1+e)
	}
	if pLater <= 0 {
		return math.Inf(1)
	}
	return -math.Log10(pLater)
}
