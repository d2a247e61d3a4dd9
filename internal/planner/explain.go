package planner

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/refuge-project/refuge/internal/model"
)

// Explain writes a readable account of plan p (for `refuge plan
// --explain`): a summary — VMs at risk, planned and unsaved, the predicted
// makespan, the lower bound and its bottleneck, the upper bound — then the
// warnings, one line per move in queue order, one per unsaved VM and the
// busiest resources. ix names the links of each move's route; it may be
// nil.
func Explain(w io.Writer, ix *model.Index, p *Plan) error {
	if p == nil {
		return errors.New("explain: no plan")
	}
	ew := &errWriter{w: w}
	ew.printf("Plan %q: %d VMs at risk, %d planned, %d unsaved%s.\n",
		p.Policy, p.AtRisk, len(p.Moves), len(p.Unsaved), codeCounts(p.Unsaved))
	ew.printf("Predicted makespan %s; lower bound %s", short(p.Makespan), short(p.LowerBound))
	if p.Bottleneck != "" {
		ew.printf(" (bottleneck %s)", p.Bottleneck)
	}
	ew.printf("; at most %d of the %d VMs at risk can be saved at all (upper bound).\n", p.UpperBound, p.AtRisk)
	if len(p.Warnings) > 0 {
		ew.printf("\nWarnings:\n")
		for _, s := range p.Warnings {
			ew.printf("  - %s\n", s)
		}
	}
	if len(p.Moves) > 0 {
		ew.printf("\nMoves, in queue order:\n")
		width := len(fmt.Sprint(len(p.Moves)))
		for i, m := range p.Moves {
			ew.printf("%*d. %s: %s → %s (%s → %s via %s), %s, start %s, finish %s, deadline %s\n%*s  %s\n",
				width, i+1, m.Name, m.FromHost, m.ToHost, m.FromSite, m.ToSite, routeNames(ix, m.Route), bytesStr(m.Bytes),
				short(m.PredStart), short(m.PredFinish), short(m.Deadline), width, "", m.Reason)
		}
	}
	if len(p.Unsaved) > 0 {
		ew.printf("\nUnsaved:\n")
		for _, u := range p.Unsaved {
			ew.printf("  - %s on %s (priority %d) [%s]: %s\n", u.Name, u.Site, u.Priority, u.Code, u.Reason)
		}
	}
	if len(p.Resources) > 0 {
		ew.printf("\nBusiest resources:\n")
		for _, r := range p.Resources[:min(5, len(p.Resources))] {
			ew.printf("  - %s: %s at %s/s, busy until %s after now\n", r.Name, bytesStr(r.Bytes), bytesStr(r.CapacityBps), short(r.Time))
		}
	}
	if ew.err != nil {
		return fmt.Errorf("explain: %w", ew.err)
	}
	return nil
}

// codeCounts summarises unsaved VMs by code, e.g. " (deadline 3, no-capacity 1)".
func codeCounts(us []Unsaved) string {
	if len(us) == 0 {
		return ""
	}
	n := map[string]int{}
	for _, u := range us {
		n[u.Code]++
	}
	codes := make([]string, 0, len(n))
	for c := range n {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s %d", c, n[c])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// routeNames names the links of a route.
func routeNames(ix *model.Index, route []int) string {
	if len(route) == 0 {
		return "the local fabric"
	}
	parts := make([]string, len(route))
	for i, l := range route {
		if ix != nil && ix.Fed != nil && l >= 0 && l < len(ix.Fed.Links) {
			parts[i] = ix.Fed.Links[l].Name
		} else {
			parts[i] = fmt.Sprintf("link #%d", l)
		}
	}
	return strings.Join(parts, ", ")
}

// errWriter remembers the first write error and skips later writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
