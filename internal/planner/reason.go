package planner

import (
	"math"
	"strconv"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
)

// reasonBuf builds the reasons of moves and of VMs left behind, one per
// at-risk VM, without fmt: one buffer reused for every reason, one string
// allocated per reason (a large plan formats tens of thousands).
type reasonBuf struct{ b []byte }

// start empties the buffer for a new reason.
func (w *reasonBuf) start() *reasonBuf { w.b = w.b[:0]; return w }

func (w *reasonBuf) str(s string) *reasonBuf { w.b = append(w.b, s...); return w }

func (w *reasonBuf) int(i int) *reasonBuf { w.b = strconv.AppendInt(w.b, int64(i), 10); return w }

// dur appends d as short formats it.
func (w *reasonBuf) dur(d time.Duration) *reasonBuf { w.b = appendShort(w.b, d); return w }

// appendShort appends what short(d) returns without allocating: d rounded
// to whole seconds from a minute up, to tenths below, in
// time.Duration.String's format.
func appendShort(b []byte, d time.Duration) []byte {
	if d >= time.Minute || d <= -time.Minute {
		d = d.Round(time.Second)
	} else {
		d = d.Round(100 * time.Millisecond)
	}
	const tenth = 100 * time.Millisecond
	if d%tenth != 0 || d == math.MinInt64 {
		// Rounding saturated at the range's end: not worth a fast path.
		return append(b, d.String()...)
	}
	if d < 0 {
		b, d = append(b, '-'), -d
	}
	switch {
	case d == 0:
		return append(b, "0s"...)
	case d < time.Second:
		return append(strconv.AppendInt(b, int64(d/time.Millisecond), 10), "ms"...)
	}
	tenths := int64(d / tenth)
	secs := tenths / 10
	h, m, sec := secs/3600, secs/60%60, secs%60
	if h > 0 {
		b = append(strconv.AppendInt(b, h, 10), 'h')
	}
	if h > 0 || m > 0 {
		b = append(strconv.AppendInt(b, m, 10), 'm')
	}
	b = strconv.AppendInt(b, sec, 10)
	if f := tenths % 10; f > 0 {
		b = append(b, '.', byte('0'+f))
	}
	return append(b, 's')
}

// bytes appends a byte count as bytesStr formats it.
func (w *reasonBuf) bytes(b float64) *reasonBuf { w.b = appendBytes(w.b, b); return w }

// whole appends x rounded to an integer (%.0f).
func (w *reasonBuf) whole(x float64) *reasonBuf {
	w.b = strconv.AppendFloat(w.b, x, 'f', 0, 64)
	return w
}

func (w *reasonBuf) String() string { return string(w.b) }

// bytesStr formats a byte count with binary units.
func bytesStr(b float64) string { return string(appendBytes(nil, b)) }

// appendBytes appends b with binary units: one decimal from KiB up, whole
// bytes below.
func appendBytes(dst []byte, b float64) []byte {
	units := [...]struct {
		size float64
		name string
	}{{1 << 40, " TiB"}, {1 << 30, " GiB"}, {1 << 20, " MiB"}, {1 << 10, " KiB"}}
	for _, u := range units {
		if b >= u.size {
			return append(strconv.AppendFloat(dst, b/u.size, 'f', 1, 64), u.name...)
		}
	}
	return append(strconv.AppendFloat(dst, b, 'f', 0, 64), " B"...)
}

// resName names dense resource r (netpath.Name), formatting each name once.
func (p *planner) resName(r int) string {
	if p.resNames == nil {
		p.resNames = make([]string, len(p.capR))
	}
	if p.resNames[r] == "" {
		p.resNames[r] = netpath.Name(p.ix, p.resource(r))
	}
	return p.resNames[r]
}

// whyFirst appends why VM v is at position pos of the queue.
func (p *planner) whyFirst(w *reasonBuf, v, pos int) {
	pi := p.prio[v]
	switch p.in.Policy.Order {
	case model.OrderFIFO:
		w.str("queue position ").int(pos + 1).str(" (inventory order), priority ").int(pi.eff)
		return
	case model.OrderDeadline:
		w.str("queue position ").int(pos + 1).str(" (earliest deadline, then priority per byte), priority ").int(pi.eff)
	default:
		w.str("priority ").int(pi.eff)
	}
	if pi.from >= 0 {
		w.str(" (inherited from ").str(p.fed.VMs[pi.from].Name).str(")")
	}
}
