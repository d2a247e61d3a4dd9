// Package power models hosts' electrical power and controls their power
// state.
//
// A Curve gives a host type's draw at 0, 10, …, 100 % CPU utilisation with
// linear interpolation in between (SPECpower-style tables; the default is
// the IBM x3250 / Xeon X3470 table seed 004 uses). A Meter integrates every
// host's draw over an injected clock and reports per-host and total energy,
// also as Prometheus metrics. A Controller switches hosts off and on; Sim is
// the simulated implementation (IPMI and Redfish implementations come later
// behind the same interface).
package power

import (
	"errors"
	"fmt"
	"math"

	"github.com/refuge-project/refuge/internal/model"
)

// Points is the number of values in a curve: watts at 0, 10, …, 100 % CPU.
const Points = model.PowerModelPoints

// Curve is one host type's power draw as a function of CPU utilisation.
type Curve struct {
	Name  string
	watts [Points]float64
}

// ErrBadCurve reports a table that is not a usable power curve.
var ErrBadCurve = errors.New("invalid power curve")

// NewCurve checks a table of Points values (watts at 0, 10, …, 100 % CPU):
// finite, non-negative and non-decreasing.
func NewCurve(name string, watts []float64) (Curve, error) {
	c := Curve{Name: name}
	if len(watts) != Points {
		return c, fmt.Errorf("power curve %q: %d values, want %d (watts at 0, 10, …, 100 %% CPU): %w", name, len(watts), Points, ErrBadCurve)
	}
	for i, w := range watts {
		if !(w >= 0) || math.IsInf(w, 0) {
			return c, fmt.Errorf("power curve %q: value %d is %g W, want a finite value >= 0: %w", name, i, w, ErrBadCurve)
		}
		if i > 0 && w < watts[i-1] {
			return c, fmt.Errorf("power curve %q: value %d (%g W) is below the previous one (%g W): %w", name, i, w, watts[i-1], ErrBadCurve)
		}
		c.watts[i] = w
	}
	return c, nil
}

// Default is the IBM x3250 / Xeon X3470 curve (model.DefaultPowerModel).
func Default() Curve {
	c, err := NewCurve(model.DefaultPowerModel.Name, model.DefaultPowerModel.Watts)
	if err != nil {
		panic(err) // the built-in table is valid; tests pin it
	}
	return c
}

// Watts returns the draw at utilisation u in [0, 1] (clamped; NaN counts as
// idle), interpolating linearly between the table's points.
func (c Curve) Watts(u float64) float64 {
	switch {
	case !(u > 0):
		return c.watts[0]
	case u >= 1:
		return c.watts[Points-1]
	}
	x := u * (Points - 1)
	i := int(x)
	f := x - float64(i)
	return c.watts[i] + f*(c.watts[i+1]-c.watts[i])
}

// Idle returns the draw of a powered-on host doing nothing.
func (c Curve) Idle() float64 { return c.watts[0] }

// Peak returns the draw at 100 % utilisation.
func (c Curve) Peak() float64 { return c.watts[Points-1] }

// Table returns a copy of the table.
func (c Curve) Table() []float64 { return append([]float64(nil), c.watts[:]...) }

// HostCurves returns every host's curve, indexed like ix.Hosts: the model
// a host names, or Default for hosts that name none. It fails on a name the
// federation does not define (model.Validate rejects those too).
func HostCurves(ix *model.Index) ([]Curve, error) {
	byName := map[string]Curve{model.DefaultPowerModelName: Default()}
	for _, pm := range ix.Fed.PowerModels {
		c, err := NewCurve(pm.Name, pm.Watts)
		if err != nil {
			return nil, err
		}
		byName[pm.Name] = c
	}
	out := make([]Curve, len(ix.Hosts))
	for h := range ix.Hosts {
		name := ix.Host(h).PowerModel
		if name == "" {
			name = model.DefaultPowerModelName
		}
		c, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("host %s names power model %q, which the federation does not define: %w", ix.Host(h).Name, name, ErrBadCurve)
		}
		out[h] = c
	}
	return out, nil
}
