package netpath

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/model"
)

func TestAlongFollowsTheGivenLinks(t *testing.T) {
	ix := index(t)
	a1, c1 := ix.HostByName["a1"], ix.HostByName["c1"]
	ab, cb := ix.LinkByName["ab"], ix.LinkByName["cb"]
	p, err := Along(ix, a1, c1, []int{ab, cb}) // a → b → c, not the direct ac
	if err != nil {
		t.Fatal(err)
	}
	want := []Resource{{HostOut, a1, 0}, {Link, ab, 0}, {Link, cb, 1}, {HostIn, c1, 0}}
	if !slices.Equal(p.Resources, want) {
		t.Errorf("resources %v, want %v", p.Resources, want)
	}
	if p.RTT != LANRTT+12*time.Millisecond {
		t.Errorf("RTT %v, want LAN + 5 ms + 7 ms", p.RTT)
	}
	if got, want := Transit(ix, p), []int{ix.SiteByName["b"]}; !slices.Equal(got, want) {
		t.Errorf("a → b → c crosses %v, want %v (b)", got, want)
	}
	// The default route, given explicitly, is Between's path.
	def, _ := Between(ix, a1, c1)
	if got := Transit(ix, def); len(got) != 0 {
		t.Errorf("the direct route a → c crosses %v, want none", got)
	}
	if p, err := Along(ix, a1, c1, def.Links); err != nil || !slices.Equal(p.Resources, def.Resources) || p.RTT != def.RTT {
		t.Errorf("Along(default route) = %+v, %v; want %+v", p, err, def)
	}
	if p, err := Along(ix, a1, a1, nil); err != nil || len(p.Links) != 0 || p.RTT != LANRTT {
		t.Errorf("same-site route: %+v, %v", p, err)
	}
}

func TestAlongRejectsBadRoutes(t *testing.T) {
	ix := index(t)
	a1, b1, c1 := ix.HostByName["a1"], ix.HostByName["b1"], ix.HostByName["c1"]
	ab, cb, ac := ix.LinkByName["ab"], ix.LinkByName["cb"], ix.LinkByName["ac"]
	for _, tc := range []struct {
		name     string
		src, dst int
		links    []int
		mention  string
	}{
		{"no such link", a1, c1, []int{7}, "no link 7"},
		{"not from the source's site", a1, c1, []int{cb}, "link cb joins c and b, not site a"},
		{"not consecutive", a1, c1, []int{ab, ac}, "link ac joins a and c, not site b"},
		{"ends elsewhere", a1, c1, []int{ab}, "ends at site b, but c1 is at site c"},
		{"empty between sites", a1, b1, nil, "ends at site a, but b1 is at site b"},
		{"repeated site", a1, b1, []int{ac, ac}, "link ac returns to site a"},
		{"loop through the destination", a1, c1, []int{ac, cb, ab, ac}, "returns to site a"},
		{"no such host", a1, 99, nil, "no such host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Along(ix, tc.src, tc.dst, tc.links)
			if !errors.Is(err, ErrBadRoute) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Along = %v; want ErrBadRoute mentioning %q", err, tc.mention)
			}
		})
	}
}

func TestLinksNamed(t *testing.T) {
	ix := index(t)
	links, err := LinksNamed(ix, []string{"ab", "cb"})
	if err != nil || !slices.Equal(links, []int{ix.LinkByName["ab"], ix.LinkByName["cb"]}) {
		t.Fatalf("LinksNamed = %v, %v", links, err)
	}
	if names := LinkNames(ix, links); !slices.Equal(names, []string{"ab", "cb"}) {
		t.Errorf("LinkNames = %v", names)
	}
	if _, err := LinksNamed(ix, []string{"ab", "zz"}); !errors.Is(err, ErrBadRoute) || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("unknown name: %v", err)
	}
}

func TestRoutes(t *testing.T) {
	ix := index(t)
	a, c, d := ix.SiteByName["a"], ix.SiteByName["c"], ix.SiteByName["d"]
	ab, cb, ac := ix.LinkByName["ab"], ix.LinkByName["cb"], ix.LinkByName["ac"]
	if got := Routes(ix, a, c, nil, 5); !slices.EqualFunc(got, [][]int{{ac}, {ab, cb}}, slices.Equal) {
		t.Errorf("Routes(a, c) = %v, want [[ac] [ab cb]]", got)
	}
	if got := Routes(ix, a, c, nil, 1); !slices.EqualFunc(got, [][]int{{ac}}, slices.Equal) {
		t.Errorf("Routes(a, c, max 1) = %v", got)
	}
	noAC := func(l int) bool { return l != ac }
	if got := Routes(ix, a, c, noAC, 5); !slices.EqualFunc(got, [][]int{{ab, cb}}, slices.Equal) {
		t.Errorf("Routes(a, c) without ac = %v, want around it", got)
	}
	if got := Routes(ix, a, d, nil, 5); got != nil {
		t.Errorf("Routes to an isolated site = %v", got)
	}
	if got := Routes(ix, a, a, nil, 5); len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("Routes(a, a) = %v, want one empty route", got)
	}
	if got := Routes(ix, a, c, nil, 0); got != nil {
		t.Errorf("Routes(max 0) = %v", got)
	}
}

func TestRoutesOrderTwoHopsByNarrowestLink(t *testing.T) {
	// a–x–b and a–y–b and a–z–b: via y the narrowest link is widest; x and
	// z tie and are ordered by link index.
	ix := meshIndex(5, [][3]float64{
		{0, 2, 1000}, {2, 1, 1000}, // 0, 1: a–x–b
		{0, 3, 5000}, {3, 1, 4000}, // 2, 3: a–y–b
		{0, 4, 1000}, {4, 1, 9000}, // 4, 5: a–z–b
		{0, 1, 100}, // 6: direct, narrow
	})
	got := Routes(ix, 0, 1, nil, 10)
	want := [][]int{{6}, {2, 3}, {0, 1}, {4, 5}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Routes = %v, want %v", got, want)
	}
}

// meshIndex builds a federation of n sites (one host each) and the given
// links {a, b, Mbit/s}.
func meshIndex(n int, links [][3]float64) *model.Index {
	f := &model.Federation{Name: "mesh"}
	for s := range n {
		f.Sites = append(f.Sites, model.Site{Name: fmt.Sprintf("s%d", s), Fabrics: []model.Fabric{{Name: "f",
			Hosts: []model.Host{{Name: fmt.Sprintf("h%d", s), VCPU: 8, MemoryMiB: 8192, NICMbps: 1000}}}}})
	}
	for i, l := range links {
		f.Links = append(f.Links, model.Link{Name: fmt.Sprintf("l%d", i), A: fmt.Sprintf("s%d", int(l[0])), B: fmt.Sprintf("s%d", int(l[1])),
			BandwidthMbps: l[2], RTTMs: 1})
	}
	return model.NewIndex(f)
}

// allRoutes enumerates every simple route by brute force, in Routes' order.
func allRoutes(ix *model.Index, from, to int, usable func(int) bool) [][]int {
	var out [][]int
	seen := make([]bool, len(ix.Fed.Sites))
	var walk func(s int, path []int)
	walk = func(s int, path []int) {
		if s == to {
			out = append(out, slices.Clone(path))
			return
		}
		seen[s] = true
		for l := range ix.Fed.Links {
			lk := &ix.Fed.Links[l]
			a, b := ix.SiteByName[lk.A], ix.SiteByName[lk.B]
			if a == b || (a != s && b != s) || !usable(l) {
				continue
			}
			if next := ix.LinkPeer(l, s); !seen[next] {
				walk(next, append(path, l))
			}
		}
		seen[s] = false
	}
	walk(from, nil)
	narrowest := func(r []int) float64 {
		bw := math.Inf(1)
		for _, l := range r {
			bw = math.Min(bw, ix.Fed.Links[l].BandwidthMbps)
		}
		return bw
	}
	slices.SortFunc(out, func(x, y []int) int {
		if c := cmp.Compare(len(x), len(y)); c != 0 {
			return c
		}
		if c := cmp.Compare(narrowest(y), narrowest(x)); c != 0 {
			return c
		}
		return slices.Compare(x, y)
	})
	return out
}

func TestRoutesMatchBruteForce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 8).Draw(t, "sites")
		var links [][3]float64
		for range rapid.IntRange(0, 16).Draw(t, "links") {
			a := rapid.IntRange(0, n-1).Draw(t, "a")
			b := rapid.IntRange(0, n-1).Draw(t, "b")
			if a == b {
				continue
			}
			links = append(links, [3]float64{float64(a), float64(b), float64(rapid.SampledFrom([]int{100, 1000, 10000}).Draw(t, "mbps"))})
		}
		ix := meshIndex(n, links)
		from := rapid.IntRange(0, n-1).Draw(t, "from")
		to := rapid.IntRange(0, n-1).Draw(t, "to")
		cut := rapid.IntRange(-1, len(links)).Draw(t, "cut")
		usable := func(l int) bool { return l != cut }
		k := rapid.IntRange(1, 6).Draw(t, "k")
		got := Routes(ix, from, to, usable, k)
		want := allRoutes(ix, from, to, usable)
		if len(want) > k {
			want = want[:k]
		}
		if len(want) == 0 {
			want = nil
		}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("Routes(%d, %d, max %d) = %v, want %v", from, to, k, got, want)
		}
		for _, r := range got {
			if _, err := Along(ix, from, to, r); err != nil {
				t.Fatalf("route %v: %v", r, err)
			}
		}
		if def, ok := ix.Route(from, to); ok && cut < 0 && len(got) > 0 && len(got[0]) != len(def) {
			t.Fatalf("best route %v has %d hops, default route %v has %d", got[0], len(got[0]), def, len(def))
		}
	})
}

func TestRoutesBoundedOnADenseMesh(t *testing.T) {
	const n = 64
	var links [][3]float64
	for a := range n {
		for b := a + 1; b < n; b++ {
			links = append(links, [3]float64{float64(a), float64(b), float64(1000 * (1 + (a+b)%7))})
		}
	}
	ix := meshIndex(n, links)
	got := Routes(ix, 0, n-1, nil, 100)
	if len(got) != 100 {
		t.Fatalf("%d routes, want 100", len(got))
	}
	if len(got[0]) != 1 || len(got[1]) != 2 || len(got[99]) != 3 {
		t.Errorf("routes of %d, %d, …, %d links; want the direct one, then two-hop ones, then three-hop ones", len(got[0]), len(got[1]), len(got[99]))
	}
}
