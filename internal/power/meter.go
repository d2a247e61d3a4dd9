package power

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refuge-project/refuge/internal/clock"
)

// Meter integrates every host's power draw over time: a host draws its
// curve's value at its current utilisation while on, and OffWatts while
// off. Utilisation and power state change through Set, SetUtil and SetOn;
// energy accrues between changes at the constant draw in force. Meter is
// safe for concurrent use and implements prometheus.Collector, computing
// energy up to the moment of the scrape.
type Meter struct {
	clk    clock.Clock
	names  []string
	curves []Curve
	off    float64

	mu    sync.Mutex
	hosts []meterHost
}

type meterHost struct {
	on     bool
	util   float64
	since  time.Time
	joules float64
}

// MeterConfig sets up a Meter.
type MeterConfig struct {
	Clock clock.Clock
	// Hosts names the hosts; Curves gives each host's curve (same length).
	Hosts  []string
	Curves []Curve
	// OffWatts is what a powered-off host still draws (BMC, standby); seed
	// 004 counts 0.
	OffWatts float64
	// Off marks hosts that start powered off (nil: all on). Every host
	// starts idle.
	Off []bool
}

// NewMeter returns a meter whose hosts start idle (and on, unless Off says
// otherwise) at the clock's current time.
func NewMeter(cfg MeterConfig) (*Meter, error) {
	switch {
	case cfg.Clock == nil:
		return nil, fmt.Errorf("power meter: a clock is required")
	case len(cfg.Hosts) != len(cfg.Curves):
		return nil, fmt.Errorf("power meter: %d hosts but %d curves", len(cfg.Hosts), len(cfg.Curves))
	case cfg.Off != nil && len(cfg.Off) != len(cfg.Hosts):
		return nil, fmt.Errorf("power meter: %d off flags for %d hosts", len(cfg.Off), len(cfg.Hosts))
	case !(cfg.OffWatts >= 0) || math.IsInf(cfg.OffWatts, 0):
		return nil, fmt.Errorf("power meter: off draw %g W, want a finite value >= 0", cfg.OffWatts)
	}
	now := cfg.Clock.Now()
	m := &Meter{
		clk:    cfg.Clock,
		names:  append([]string(nil), cfg.Hosts...),
		curves: append([]Curve(nil), cfg.Curves...),
		off:    cfg.OffWatts,
		hosts:  make([]meterHost, len(cfg.Hosts)),
	}
	for h := range m.hosts {
		m.hosts[h] = meterHost{on: cfg.Off == nil || !cfg.Off[h], since: now}
	}
	return m, nil
}

// NumHosts returns the number of hosts metered.
func (m *Meter) NumHosts() int { return len(m.hosts) }

func (m *Meter) draw(h int) float64 {
	s := &m.hosts[h]
	if !s.on {
		return m.off
	}
	return m.curves[h].Watts(s.util)
}

// accrue integrates host h's energy up to now.
func (m *Meter) accrue(h int, now time.Time) {
	s := &m.hosts[h]
	if dt := now.Sub(s.since); dt > 0 {
		s.joules += m.draw(h) * dt.Seconds()
	}
	s.since = now
}

func (m *Meter) check(h int) error {
	if h < 0 || h >= len(m.hosts) {
		return fmt.Errorf("power meter: no host %d (have %d)", h, len(m.hosts))
	}
	return nil
}

// Set records host h's power state and utilisation (clamped to [0, 1])
// from now on.
func (m *Meter) Set(h int, on bool, util float64) error {
	if err := m.check(h); err != nil {
		return err
	}
	if math.IsNaN(util) {
		return fmt.Errorf("power meter: host %s utilisation is NaN", m.names[h])
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accrue(h, m.clk.Now())
	m.hosts[h].on = on
	m.hosts[h].util = min(max(util, 0), 1)
	return nil
}

// SetUtil records host h's utilisation, keeping its power state.
func (m *Meter) SetUtil(h int, util float64) error {
	if err := m.check(h); err != nil {
		return err
	}
	m.mu.Lock()
	on := m.hosts[h].on
	m.mu.Unlock()
	return m.Set(h, on, util)
}

// SetOn records host h's power state, keeping its utilisation (a host
// switched off is idle when it comes back).
func (m *Meter) SetOn(h int, on bool) error {
	if err := m.check(h); err != nil {
		return err
	}
	m.mu.Lock()
	u := m.hosts[h].util
	m.mu.Unlock()
	if !on {
		u = 0
	}
	return m.Set(h, on, u)
}

// HostReport is one host's power figures.
type HostReport struct {
	Name   string  `json:"name"`
	On     bool    `json:"on"`
	Util   float64 `json:"utilization"`
	Watts  float64 `json:"watts"`
	Joules float64 `json:"joules"`
}

// Report is the meter's reading at one moment.
type Report struct {
	Hosts       []HostReport `json:"hosts"`
	TotalWatts  float64      `json:"total_watts"`
	TotalJoules float64      `json:"total_joules"`
	KWh         float64      `json:"kwh"`
	HostsOn     int          `json:"hosts_on"`
	HostsOff    int          `json:"hosts_off"`
}

// Read integrates every host up to now and reports.
func (m *Meter) Read() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	r := Report{Hosts: make([]HostReport, len(m.hosts))}
	for h := range m.hosts {
		m.accrue(h, now)
		s := &m.hosts[h]
		w := m.draw(h)
		r.Hosts[h] = HostReport{Name: m.names[h], On: s.on, Util: s.util, Watts: w, Joules: s.joules}
		r.TotalWatts += w
		r.TotalJoules += s.joules
		if s.on {
			r.HostsOn++
		} else {
			r.HostsOff++
		}
	}
	r.KWh = r.TotalJoules / 3.6e6
	return r
}

// Metric descriptors.
var (
	descHostWatts = prometheus.NewDesc("refuge_host_power_watts",
		"Current power draw of a host (from its power curve and CPU utilisation; 0 or the standby draw when off).", []string{"host"}, nil)
	descHostJoules = prometheus.NewDesc("refuge_host_energy_joules_total",
		"Energy a host has drawn since metering began.", []string{"host"}, nil)
	descHostOn = prometheus.NewDesc("refuge_host_powered_on",
		"1 when the host is powered on, 0 when off.", []string{"host"}, nil)
	descTotalWatts = prometheus.NewDesc("refuge_power_watts",
		"Current power draw of all metered hosts.", nil, nil)
	descTotalJoules = prometheus.NewDesc("refuge_energy_joules_total",
		"Energy drawn by all metered hosts since metering began.", nil, nil)
	descHostsOff = prometheus.NewDesc("refuge_hosts_powered_off",
		"Hosts currently powered off.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Meter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHostWatts, descHostJoules, descHostOn, descTotalWatts, descTotalJoules, descHostsOff} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Meter) Collect(ch chan<- prometheus.Metric) {
	r := m.Read()
	for _, h := range r.Hosts {
		on := 0.0
		if h.On {
			on = 1
		}
		ch <- prometheus.MustNewConstMetric(descHostWatts, prometheus.GaugeValue, h.Watts, h.Name)
		ch <- prometheus.MustNewConstMetric(descHostJoules, prometheus.CounterValue, h.Joules, h.Name)
		ch <- prometheus.MustNewConstMetric(descHostOn, prometheus.GaugeValue, on, h.Name)
	}
	ch <- prometheus.MustNewConstMetric(descTotalWatts, prometheus.GaugeValue, r.TotalWatts)
	ch <- prometheus.MustNewConstMetric(descTotalJoules, prometheus.CounterValue, r.TotalJoules)
	ch <- prometheus.MustNewConstMetric(descHostsOff, prometheus.GaugeValue, float64(r.HostsOff))
}
