package netpath

import (
	"cmp"
	"math"
	"slices"

	"github.com/refuge-project/refuge/internal/model"
)

// RouteSearchBudget bounds the partial routes Routes explores. Federations
// of up to 64 sites with WAN-like (sparse) link graphs stay far below it;
// in a dense mesh the search stops at the budget and returns the best
// routes found until then.
const RouteSearchBudget = 1 << 18

// Routes returns up to maxRoutes simple routes (lists of link indices,
// as model.Index.Route returns them) from site fromSite to site toSite,
// using only the links for which usable returns true (nil: every link).
// They are ordered by number of links, then by the bandwidth of the
// narrowest link (model bandwidth_mbps, widest first), then as lists of
// link indices, smaller first (the order model.Index.Route chooses its
// default route by). fromSite == toSite gives the empty route; an
// unreachable site, none.
//
// The search deepens one hop count at a time and stops after the hop
// count at which maxRoutes routes are known; a depth-first search per hop
// count, pruned by each site's hop distance to toSite, visits only
// prefixes that can still arrive in time. It explores at most
// RouteSearchBudget prefixes.
func Routes(ix *model.Index, fromSite, toSite int, usable func(link int) bool, maxRoutes int) [][]int {
	n := len(ix.Fed.Sites)
	if maxRoutes <= 0 || fromSite < 0 || fromSite >= n || toSite < 0 || toSite >= n {
		return nil
	}
	if fromSite == toSite {
		return [][]int{{}}
	}
	r := router{ix: ix, to: toSite, budget: RouteSearchBudget, adj: make([][]hop, n)}
	for l := range ix.Fed.Links {
		a, okA := ix.SiteByName[ix.Fed.Links[l].A]
		b, okB := ix.SiteByName[ix.Fed.Links[l].B]
		if !okA || !okB || a == b || (usable != nil && !usable(l)) {
			continue
		}
		r.adj[a] = append(r.adj[a], hop{l, b})
		r.adj[b] = append(r.adj[b], hop{l, a})
	}
	r.distances()
	if r.dist[fromSite] < 0 {
		return nil
	}
	r.visited = make([]bool, n)
	var out [][]int
	for hops := r.dist[fromSite]; hops < n && len(out) < maxRoutes && r.budget > 0; hops++ {
		r.level = r.level[:0]
		r.visited[fromSite] = true
		r.walk(fromSite, hops)
		r.visited[fromSite] = false
		slices.SortFunc(r.level, func(x, y []int) int {
			if c := cmp.Compare(r.narrowest(y), r.narrowest(x)); c != 0 {
				return c
			}
			return slices.Compare(x, y)
		})
		out = append(out, r.level...)
	}
	if len(out) > maxRoutes {
		out = out[:maxRoutes]
	}
	return out
}

type hop struct{ link, to int }

type router struct {
	ix      *model.Index
	to      int
	adj     [][]hop
	dist    []int // hops from each site to `to`; -1 unreachable
	visited []bool
	stack   []int
	level   [][]int
	budget  int
}

// distances runs a breadth-first search from the target.
func (r *router) distances() {
	r.dist = make([]int, len(r.adj))
	for i := range r.dist {
		r.dist[i] = -1
	}
	r.dist[r.to] = 0
	queue := []int{r.to}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, h := range r.adj[s] {
			if r.dist[h.to] < 0 {
				r.dist[h.to] = r.dist[s] + 1
				queue = append(queue, h.to)
			}
		}
	}
}

// walk extends the route on the stack from site s by exactly left links.
func (r *router) walk(s, left int) {
	if r.budget <= 0 {
		return
	}
	r.budget--
	if left == 0 {
		if s == r.to {
			r.level = append(r.level, slices.Clone(r.stack))
		}
		return
	}
	for _, h := range r.adj[s] {
		if r.visited[h.to] || r.dist[h.to] < 0 || r.dist[h.to] > left-1 || (h.to == r.to && left > 1) {
			continue
		}
		r.visited[h.to] = true
		r.stack = append(r.stack, h.link)
		r.walk(h.to, left-1)
		r.stack = r.stack[:len(r.stack)-1]
		r.visited[h.to] = false
	}
}

// narrowest returns the smallest model bandwidth along a route.
func (r *router) narrowest(links []int) float64 {
	bw := math.Inf(1)
	for _, l := range links {
		bw = math.Min(bw, r.ix.Fed.Links[l].BandwidthMbps)
	}
	return bw
}
