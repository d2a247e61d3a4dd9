// Package validate collects field-level validation errors so that a loader can
// report every problem in a document at once, each naming the field at fault
// by its path (for example "sites[1].hosts[3].memory_mib").
package validate

import (
	"fmt"
	"sort"
	"strings"
)

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
	list []FieldError
}

// Addf records a problem at path.
func (e *Errors) Addf(path, format string, args ...any) {
	e.list = append(e.list, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Len reports how many problems were recorded.
func (e *Errors) Len() int { return len(e.list) }

// Err returns nil when nothing was recorded, otherwise a *List holding every
// problem in the order found.
func (e *Errors) Err() error {
	if len(e.list) == 0 {
		return nil
	}
	out := make(List, len(e.list))
	copy(out, e.list)
	return out
}

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
	return fmt.Sprintf("%d problems:\n  %s", len(parts), strings.Join(parts, "\n  "))
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
