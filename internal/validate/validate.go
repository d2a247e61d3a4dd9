// Package validate collects field-level validation errors so that a loader can
// report every problem in a document at once, each naming the field at fault
// by its path (for example "sites[1].fabrics[0].hosts[3].memory_mib").
//
// Errors accumulates problems; the range helpers (Greater, AtLeast, Within,
// Between) and Required record the usual ones with uniform messages; Suggest
// finds the closest known name for "did you mean" hints.
package validate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// MaxErrors bounds how many problems one Errors records, so that a hostile
// or badly broken document cannot produce an unbounded report. Problems
// beyond the limit are counted and summarised by a last entry with an empty
// path.
const MaxErrors = 1000

// FieldError is one problem found at one field path.
type FieldError struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is a list of field errors; its zero value is ready to use.
type Errors struct {
	list    []FieldError
	dropped int
}

// Addf records a problem at path.
func (e *Errors) Addf(path, format string, args ...any) {
	if len(e.list) >= MaxErrors {
		e.dropped++
		return
	}
	e.list = append(e.list, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Len reports how many problems were recorded, including any beyond
// MaxErrors.
func (e *Errors) Len() int { return len(e.list) + e.dropped }

// Err returns nil when nothing was recorded, otherwise a List holding every
// problem in the order found (at most MaxErrors of them, followed by a
// summary of the rest).
func (e *Errors) Err() error {
	if len(e.list) == 0 {
		return nil
	}
	out := make(List, len(e.list), len(e.list)+1)
	copy(out, e.list)
	if e.dropped > 0 {
		out = append(out, FieldError{Msg: fmt.Sprintf(moreFormat, e.dropped)})
	}
	return out
}

// moreFormat is the message of the entry that summarises the problems
// beyond MaxErrors.
const moreFormat = "… and %d more problems not shown"

// List is the error returned by Errors.Err.
type List []FieldError

func (l List) Error() string {
	parts := make([]string, len(l))
	for i, fe := range l {
		parts[i] = fe.Error()
	}
	if len(parts) == 1 {
		return parts[0]
	}
	total := len(l)
	var more int
	if last := l[len(l)-1]; last.Path == "" {
		if n, err := fmt.Sscanf(last.Msg, moreFormat, &more); n == 1 && err == nil {
			total += more - 1
		}
	}
	return fmt.Sprintf("%d problems:\n  %s", total, strings.Join(parts, "\n  "))
}

// Paths returns the sorted field paths of the list, for tests and tools.
func (l List) Paths() []string {
	out := make([]string, len(l))
	for i, fe := range l {
		out[i] = fe.Path
	}
	sort.Strings(out)
	return out
}

// Index formats a path element for the i-th item of a list field.
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// Field appends a field name to a path.
func Field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Required records "is required" at path when s is empty and reports
// whether s is set.
func Required(e *Errors, path, s string) bool {
	if s == "" {
		e.Addf(path, "is required")
		return false
	}
	return true
}

// Number is any numeric field type, including named ones such as a
// duration; a type with a String method is printed with it.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64
}

// finite records a problem when v is NaN or infinite (only possible for
// floating-point types) and reports whether v is finite.
func finite[T Number](e *Errors, path string, v T) bool {
	if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
		e.Addf(path, "must be a finite number, got %v", v)
		return false
	}
	return true
}

// Greater records a problem unless v > lo, and reports whether v is valid.
func Greater[T Number](e *Errors, path string, v, lo T) bool {
	if !finite(e, path, v) {
		return false
	}
	if !(v > lo) {
		e.Addf(path, "must be > %v, got %v", lo, v)
		return false
	}
	return true
}

// AtLeast records a problem unless v >= lo, and reports whether v is valid.
func AtLeast[T Number](e *Errors, path string, v, lo T) bool {
	if !finite(e, path, v) {
		return false
	}
	if !(v >= lo) {
		e.Addf(path, "must be >= %v, got %v", lo, v)
		return false
	}
	return true
}

// Within records a problem unless lo <= v <= hi, and reports whether v is
// valid.
func Within[T Number](e *Errors, path string, v, lo, hi T) bool {
	if !finite(e, path, v) {
		return false
	}
	if !(v >= lo && v <= hi) {
		e.Addf(path, "must be within [%v, %v], got %v", lo, hi, v)
		return false
	}
	return true
}

// Between records a problem unless lo < v < hi, and reports whether v is
// valid.
func Between[T Number](e *Errors, path string, v, lo, hi T) bool {
	if !finite(e, path, v) {
		return false
	}
	if !(v > lo && v < hi) {
		e.Addf(path, "must be strictly between %v and %v, got %v", lo, hi, v)
		return false
	}
	return true
}

// Suggest returns the candidate closest to name when it is close enough to
// be a likely typo (at most a third of the name's length in edits, and at
// most 3), or "" when none is. Of equally close candidates it prefers the
// one sharing the longest prefix with name, then the first.
func Suggest(name string, candidates []string) string {
	limit := min(3, max(1, len(name)/3))
	best, bestDist, bestPrefix := "", limit+1, -1
	for _, c := range candidates {
		if len(c) > len(name)+limit || len(name) > len(c)+limit {
			continue // too many insertions or deletions
		}
		d := editDistance(name, c)
		if d > limit {
			continue
		}
		if p := commonPrefix(name, c); d < bestDist || d == bestDist && p > bestPrefix {
			best, bestDist, bestPrefix = c, d, p
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// editDistance is the optimal-string-alignment distance between a and b
// (insertions, deletions, substitutions and swaps of adjacent bytes; names
// are ASCII). Long inputs are not compared, to bound the cost.
func editDistance(a, b string) int {
	const maxLen = 64
	if len(a) > maxLen || len(b) > maxLen {
		if a == b {
			return 0
		}
		return maxLen
	}
	// rows[i%3] holds row i of the dynamic-programming table.
	var rows [3][maxLen + 1]int
	for j := 0; j <= len(b); j++ {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur, prev, prev2 := &rows[i%3], &rows[(i-1)%3], &rows[(i+1)%3]
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
	}
	return rows[len(a)%3][len(b)]
}

// Join reports the problems of two stages of checking one document
// together: those of first (typically decoding), then those of second
// (typically validating the decoded value) that are not at or under a path
// first already reported, since a field that could not be decoded is left
// empty and would only be reported again. A problem of first at the empty
// path (the whole document) hides all of second. Either may be nil; an
// error that is not a List is returned as it is (first's if both are).
func Join(first, second error) error {
	var a, b List
	if first != nil && !errors.As(first, &a) {
		return first
	}
	if second != nil && !errors.As(second, &b) {
		return second
	}
	out := append(List(nil), a...)
	for _, fe := range b {
		if !slices.ContainsFunc(a, func(d FieldError) bool { return under(fe.Path, d.Path) }) {
			out = append(out, fe)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// under reports whether path is base or inside it.
func under(path, base string) bool {
	if base == "" || path == base {
		return true
	}
	rest, ok := strings.CutPrefix(path, base)
	return ok && (rest[0] == '.' || rest[0] == '[')
}
