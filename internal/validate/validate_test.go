package validate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestErrors(t *testing.T) {
	var e Errors
	if e.Err() != nil || e.Len() != 0 {
		t.Fatal("zero Errors is not empty")
	}
	e.Addf("b.c", "bad %d", 1)
	e.Addf("", "whole document")
	e.Addf("a", "worse")
	err := e.Err()
	var list List
	if !errors.As(err, &list) || len(list) != 3 {
		t.Fatalf("Err() = %#v", err)
	}
	if got, want := list.Paths(), []string{"", "a", "b.c"}; !slices.Equal(got, want) {
		t.Fatalf("Paths() = %q, want %q", got, want)
	}
	want := "3 problems:\n  b.c: bad 1\n  whole document\n  a: worse"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
	e.Addf("z", "later")
	if len(list) != 3 {
		t.Fatal("Err() result shares storage with the Errors")
	}
	var one Errors
	one.Addf("x", "only")
	if got := one.Err().Error(); got != "x: only" {
		t.Fatalf("single error = %q", got)
	}
}

func TestMaxErrors(t *testing.T) {
	var e Errors
	for range MaxErrors + 5 {
		e.Addf("p", "x")
	}
	if e.Len() != MaxErrors+5 {
		t.Fatalf("Len() = %d", e.Len())
	}
	list := e.Err().(List)
	if len(list) != MaxErrors+1 || list[MaxErrors].Path != "" || !strings.Contains(list[MaxErrors].Msg, "5 more problems") {
		t.Fatalf("got %d entries, last %+v", len(list), list[len(list)-1])
	}
	if msg := list.Error(); !strings.HasPrefix(msg, fmt.Sprintf("%d problems:\n", MaxErrors+5)) {
		t.Fatalf("Error() starts %.40q", msg)
	}
}

func TestPathHelpers(t *testing.T) {
	if got := Field(Index(Field("", "sites"), 1), "name"); got != "sites[1].name" {
		t.Fatalf("got %q", got)
	}
}

type dur time.Duration

func (d dur) String() string { return time.Duration(d).String() }

func TestRangeHelpers(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		msg  string
		run  func(e *Errors) bool
	}{
		{"greater ok", true, "", func(e *Errors) bool { return Greater(e, "p", 1, 0) }},
		{"greater equal", false, "must be > 0, got 0", func(e *Errors) bool { return Greater(e, "p", 0, 0) }},
		{"greater nan", false, "must be a finite number, got NaN", func(e *Errors) bool { return Greater(e, "p", math.NaN(), 0) }},
		{"greater inf", false, "must be a finite number, got +Inf", func(e *Errors) bool { return Greater(e, "p", math.Inf(1), 0) }},
		{"at least ok", true, "", func(e *Errors) bool { return AtLeast(e, "p", 1.0, 1) }},
		{"at least", false, "must be >= 1, got 0.5", func(e *Errors) bool { return AtLeast(e, "p", 0.5, 1) }},
		{"at least duration", false, "must be >= 0s, got -5s", func(e *Errors) bool { return AtLeast(e, "p", dur(-5*time.Second), 0) }},
		{"within ok", true, "", func(e *Errors) bool { return Within(e, "p", 1000, 0, 1000) }},
		{"within", false, "must be within [0, 1000], got 1001", func(e *Errors) bool { return Within(e, "p", 1001, 0, 1000) }},
		{"within nan", false, "must be a finite number, got NaN", func(e *Errors) bool { return Within(e, "p", math.NaN(), 0, 1) }},
		{"between ok", true, "", func(e *Errors) bool { return Between(e, "p", 0.7, 0, 1) }},
		{"between edge", false, "must be strictly between 0 and 1, got 1", func(e *Errors) bool { return Between(e, "p", 1.0, 0, 1) }},
		{"required ok", true, "", func(e *Errors) bool { return Required(e, "p", "x") }},
		{"required", false, "is required", func(e *Errors) bool { return Required(e, "p", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e Errors
			if got := tc.run(&e); got != tc.ok {
				t.Fatalf("returned %v, want %v", got, tc.ok)
			}
			if tc.ok {
				if e.Len() != 0 {
					t.Fatalf("recorded %v", e.Err())
				}
				return
			}
			list := e.Err().(List)
			if len(list) != 1 || list[0].Path != "p" || list[0].Msg != tc.msg {
				t.Fatalf("recorded %v, want p: %s", list, tc.msg)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"memory_mib", "name", "nic_mbps", "vcpu", "disk_gib"}
	for in, want := range map[string]string{
		"nmae":                   "name",
		"memory_mb":              "memory_mib",
		"memory":                 "",
		"vcpus":                  "vcpu",
		"cpu":                    "vcpu",
		"x":                      "",
		"nic_mbit":               "nic_mbps",
		"":                       "",
		strings.Repeat("a", 100): "",
	} {
		if got := Suggest(in, names); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSuggestPrefersLongerSharedPrefix(t *testing.T) {
	if got := Suggest("kochi-b2", []string{"kochi-a1", "kochi-a2", "kochi-b1"}); got != "kochi-b1" {
		t.Fatalf("got %q", got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"ab", "ba", 1}, {"name", "nmae", 1}, {"abc", "abc", 0}, {"ca", "abc", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
		if got := editDistance(tc.b, tc.a); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.d)
		}
	}
}

func TestJoin(t *testing.T) {
	list := func(paths ...string) error {
		var e Errors
		for _, p := range paths {
			e.Addf(p, "bad")
		}
		return e.Err()
	}
	plain := errors.New("plain")
	for _, tc := range []struct {
		name          string
		first, second error
		want          []string // paths, or nil for a nil error
		wantErr       error
	}{
		{"both nil", nil, nil, nil, nil},
		{"first only", list("a"), nil, []string{"a"}, nil},
		{"second only", nil, list("b"), []string{"b"}, nil},
		{"same path hidden", list("a.b"), list("a.b", "c"), []string{"a.b", "c"}, nil},
		{"path under hidden", list("a[1]"), list("a[1].x", "a[10].x", "a[1]x", "a"), []string{"a", "a[10].x", "a[1]", "a[1]x"}, nil},
		{"field under hidden", list("a"), list("a.b", "ab"), []string{"a", "ab"}, nil},
		{"document problem hides all", list(""), list("a", "b"), []string{""}, nil},
		{"plain first", plain, list("a"), nil, plain},
		{"plain second", list("a"), plain, nil, plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Join(tc.first, tc.second)
			if tc.wantErr != nil {
				if err != tc.wantErr {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var l List
			if !errors.As(err, &l) {
				t.Fatalf("got %v", err)
			}
			if got := l.Paths(); !slices.Equal(got, tc.want) {
				t.Fatalf("paths %q, want %q", got, tc.want)
			}
		})
	}
}
