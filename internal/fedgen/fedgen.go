// Package fedgen generates synthetic federations for benchmarks, property
// tests and `refuge bench plan`: sites with several fabrics of identical
// hosts, WAN links in a ring with chords (or, by option, a ring, a chain or a
// star), applications made of dependent services (web → app → db) on top of
// shared infrastructure, and standalone VMs. Case builds a whole scheduling
// benchmark case (federation and threats) from one seed. Generation is seeded and deterministic: equal Options give equal
// federations, and every federation passes model.Validate — in particular no
// host's memory or local disk is ever overcommitted by the placement.
package fedgen

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/refuge-project/refuge/internal/model"
)

// Options shape a generated federation. Zero values pick defaults;
// negative counts are errors.
type Options struct {
	// Sites is the number of sites; 0 means max(2, Hosts/25). It is capped
	// at Hosts, since every site needs a host.
	Sites int
	// Hosts is the total number of hosts; 0 means 12.
	Hosts int
	// VMs is the number of VMs wanted; 0 means 20 per host. Fewer are
	// generated only when the hosts cannot hold them even at the smallest
	// size (256 MiB each).
	VMs int
	// Seed selects the federation; equal options give equal federations.
	Seed uint64
	// MemoryFill is the share of the hosts' memory the VMs should use, in
	// (0, 1] (0 means 0.5). When the sampled VM sizes need more, they are
	// scaled down, never below 1 GiB. vCPUs are scaled the same way (never
	// below 1) to use at most the same share of 4x the hosts' vCPUs.
	MemoryFill float64
	// LocalStorage is the share of VMs whose disks live on their host and are
	// copied when they migrate (0 means 0.2; negative means none).
	LocalStorage float64
	// SharedLinks is the share of WAN links that also carry background
	// traffic (0 means 0.3; negative means none).
	SharedLinks float64
	// InServices is the share of VMs that belong to services (0 means 0.7;
	// negative means none).
	InServices float64
	// Topology is the shape of the WAN (the zero value is TopologyRingChords).
	Topology Topology
	// LinkMbpsMin and LinkMbpsMax, when set (0 < min <= max), draw each
	// link's bandwidth log-uniformly from that range, rounded to 100 Mbit/s
	// (and kept within the range); both 0 keep the default choice among 1,
	// 10, 20, 40 and 100 Gbit/s.
	LinkMbpsMin, LinkMbpsMax float64
	// NICMbps, when not empty, lists the host NIC speeds (Mbit/s) each
	// fabric draws its NIC from uniformly; empty keeps the default of 10 or
	// 25 Gbit/s, the latter mostly on larger hosts.
	NICMbps []float64
}

// Topology is the shape of the WAN links between sites.
type Topology string

// Topologies. With two sites every topology is one link; with one, none.
const (
	// TopologyRingChords joins the sites in a ring plus about Sites/2
	// random chords (the default; "" means the same).
	TopologyRingChords Topology = "ring-chords"
	// TopologyRing joins the sites in a ring: opposite sites are several
	// hops apart and every pair has two disjoint routes.
	TopologyRing Topology = "ring"
	// TopologyChain joins the sites in a line: a single route between any
	// two sites, through every site in between.
	TopologyChain Topology = "chain"
	// TopologyStar joins every site to the first one: every route between
	// two other sites transits through it.
	TopologyStar Topology = "star"
)

// Topologies lists every topology, default first.
var Topologies = []Topology{TopologyRingChords, TopologyRing, TopologyChain, TopologyStar}

// withDefaults checks o, fills in zero fields and clamps the rest to
// usable ranges.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Sites < 0 || o.Hosts < 0 || o.VMs < 0:
		return o, fmt.Errorf("sites (%d), hosts (%d) and VMs (%d) must be >= 0 (0 picks a default)", o.Sites, o.Hosts, o.VMs)
	case !(o.MemoryFill >= 0 && o.MemoryFill <= 1):
		return o, fmt.Errorf("memory fill %g must be within (0, 1] (0 picks 0.5)", o.MemoryFill)
	case (o.LinkMbpsMin != 0 || o.LinkMbpsMax != 0) && !(o.LinkMbpsMin > 0 && o.LinkMbpsMin <= o.LinkMbpsMax && !math.IsInf(o.LinkMbpsMax, 1)):
		return o, fmt.Errorf("link bandwidth range [%g, %g] Mbit/s must have 0 < min <= max < +Inf (both 0 pick the default speeds)", o.LinkMbpsMin, o.LinkMbpsMax)
	}
	for i, nic := range o.NICMbps {
		if !(nic > 0) || math.IsInf(nic, 1) {
			return o, fmt.Errorf("NIC speed %d (%g Mbit/s) must be a positive, finite number", i+1, nic)
		}
	}
	switch o.Topology {
	case "":
		o.Topology = TopologyRingChords
	case TopologyRingChords, TopologyRing, TopologyChain, TopologyStar:
	default:
		return o, fmt.Errorf("unknown topology %q (want one of %v)", o.Topology, Topologies)
	}
	if o.Hosts == 0 {
		o.Hosts = 12
	}
	if o.VMs == 0 {
		o.VMs = 20 * o.Hosts
	}
	if o.Sites == 0 {
		o.Sites = max(2, o.Hosts/25)
	}
	o.Sites = min(o.Sites, o.Hosts)
	if o.MemoryFill == 0 {
		o.MemoryFill = 0.5
	}
	o.LocalStorage = share(o.LocalStorage, 0.2)
	o.SharedLinks = share(o.SharedLinks, 0.3)
	o.InServices = share(o.InServices, 0.7)
	return o, nil
}

// share maps a user-given fraction to [0, 1]: 0 (or NaN) means def,
// negative means none.
func share(v, def float64) float64 {
	switch {
	case v == 0 || math.IsNaN(v):
		return def
	case v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}

// siteSeed is a real location used for the first sites: name, coordinates
// and JMA tsunami forecast area ("" for inland sites).
type siteSeed struct {
	name     string
	lat, lon float64
	area     string
}

var siteSeeds = []siteSeed{
	{"sendai", 38.260, 140.870, "220"},
	{"tokyo", 35.713, 139.762, "312"},
	{"osaka", 34.822, 135.524, "510"},
	{"kochi", 33.548, 133.678, "610"},
	{"nagoya", 35.154, 136.967, "391"},
	{"kyoto", 35.026, 135.781, ""},
	{"fukuoka", 33.595, 130.218, ""},
	{"sapporo", 43.075, 141.341, ""},
	{"tsukuba", 36.111, 140.104, ""},
	{"kagawa", 34.343, 134.047, "590"},
	{"wakayama", 34.226, 135.167, "530"},
	{"shizuoka", 34.965, 138.433, "380"},
	{"tokushima", 34.074, 134.552, "580"},
	{"miyazaki", 31.838, 131.412, "760"},
	{"kobe", 34.726, 135.235, "521"},
	{"okayama", 34.686, 133.921, "560"},
	{"mito", 36.378, 140.474, "300"},
	{"chiba", 35.627, 140.103, "311"},
	{"yokohama", 35.475, 139.593, "330"},
	{"kumamoto", 32.814, 130.726, "712"},
	{"kagoshima", 31.570, 130.546, "773"},
	{"oita", 33.183, 131.616, "750"},
	{"nagasaki", 32.786, 129.866, "730"},
	{"naha", 26.249, 127.766, "800"},
	{"hakodate", 41.840, 140.767, "102"},
	{"morioka", 39.710, 141.135, ""},
	{"niigata", 37.868, 138.942, ""},
	{"kanazawa", 36.545, 136.706, ""},
	{"nagano", 36.630, 138.187, ""},
	{"hiroshima", 34.402, 132.713, ""},
	{"matsuyama", 33.850, 132.790, ""},
	{"tsu", 34.744, 136.522, "391"},
}

// hostModel is the hardware of one fabric.
type hostModel struct {
	vcpu    int
	memGiB  int64
	diskGiB int64
	nicMbps float64
}

// gen holds the generator's state.
type gen struct {
	o   Options
	r   *rand.Rand
	fed *model.Federation
	// Per host, flattened in document order.
	hostName          []string
	hostMemMiB        []int64
	freeMem, freeDisk []int64 // MiB, GiB
	freeVCPU          []int   // at 4x overcommit
	groupsOn          []map[string]bool
	// Per site: its hosts and its share of the federation's memory.
	siteHosts   [][]int
	siteWeight  []float64
	totalWeight float64
}

// Generate returns a synthetic federation shaped by o. It fails only for
// invalid options; the federation it returns has passed Validate.
func Generate(o Options) (*model.Federation, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("fedgen: %w", err)
	}
	g := &gen{
		o: o,
		r: rand.New(rand.NewPCG(o.Seed, 0x72656675676521)),
		fed: &model.Federation{
			Name: fmt.Sprintf("synthetic-s%d-h%d-v%d-seed%d", o.Sites, o.Hosts, o.VMs, o.Seed),
			Description: "Synthetic federation generated by internal/fedgen; " +
				"sites, hosts, links and VMs are random but realistic.",
		},
	}
	g.sites()
	g.links()
	vms := g.workload()
	g.scaleToFill(vms)
	g.place(vms)
	if err := g.fed.Validate(); err != nil {
		return nil, fmt.Errorf("fedgen: generated federation %s is invalid (a bug in fedgen): %w", g.fed.Name, err)
	}
	return g.fed, nil
}

// sites creates the sites, their fabrics and hosts.
func (g *gen) sites() {
	r := g.r
	counts := split(r, g.o.Hosts, g.o.Sites)
	for si := range g.o.Sites {
		var s model.Site
		if si < len(siteSeeds) {
			ss := siteSeeds[si]
			s = model.Site{Name: ss.name, Lat: ss.lat, Lon: ss.lon, TsunamiArea: ss.area}
		} else {
			s = model.Site{
				Name: fmt.Sprintf("site-%03d", si),
				Lat:  round(31+r.Float64()*12, 3),
				Lon:  round(130+r.Float64()*12, 3),
			}
			if r.IntN(2) == 0 {
				s.TsunamiArea = siteSeeds[r.IntN(len(siteSeeds))].area
			}
		}
		s.UPSMinutes = float64(5 + 5*r.IntN(12))
		if r.IntN(10) < 7 {
			s.GeneratorMinutes = float64(60 * (1 + r.IntN(24)))
		}
		nf := 1 + r.IntN(min(4, counts[si]))
		perFabric := split(nil, counts[si], nf)
		var hosts []int
		for fi := range nf {
			m := randomHostModel(r, g.o.NICMbps)
			fb := model.Fabric{Name: fmt.Sprintf("%s-f%d", s.Name, fi+1)}
			for hi := range perFabric[fi] {
				name := fmt.Sprintf("%s-f%d-h%03d", s.Name, fi+1, hi+1)
				fb.Hosts = append(fb.Hosts, model.Host{
					Name:      name,
					VCPU:      m.vcpu,
					MemoryMiB: m.memGiB * 1024,
					DiskGiB:   m.diskGiB,
					NICMbps:   m.nicMbps,
					URI:       fmt.Sprintf("qemu+tls://%s.%s.example.ac.jp/system", name, s.Name),
				})
				hosts = append(hosts, len(g.hostName))
				g.hostName = append(g.hostName, name)
				g.hostMemMiB = append(g.hostMemMiB, m.memGiB*1024)
				g.freeMem = append(g.freeMem, m.memGiB*1024)
				g.freeDisk = append(g.freeDisk, m.diskGiB)
				g.freeVCPU = append(g.freeVCPU, 4*m.vcpu)
				g.groupsOn = append(g.groupsOn, nil)
			}
			s.Fabrics = append(s.Fabrics, fb)
		}
		g.siteHosts = append(g.siteHosts, hosts)
		var w float64
		for _, h := range hosts {
			w += float64(g.hostMemMiB[h])
		}
		g.siteWeight = append(g.siteWeight, w)
		g.totalWeight += w
		g.fed.Sites = append(g.fed.Sites, s)
	}
}

// randomHostModel draws one fabric's hardware: 32–128 vCPU, 128–1024 GiB,
// 10 or 25 Gbit/s NICs (or one of nics, when given), 1.9–15.4 TB of local
// disk.
func randomHostModel(r *rand.Rand, nics []float64) hostModel {
	vcpus := []int{32, 48, 64, 96, 128}
	v := vcpus[r.IntN(len(vcpus))]
	mem := int64(v) * int64(4<<r.IntN(2)) // 4 or 8 GiB per vCPU
	mem = min(max(mem, 128), 1024)
	disks := []int64{1920, 3840, 7680, 15360}
	// Newer, larger hosts mostly have 25 Gbit/s NICs.
	nic := 10000.0
	if p := r.Float64(); (v >= 64 && p < 0.7) || p < 0.25 {
		nic = 25000
	}
	if len(nics) > 0 {
		nic = nics[r.IntN(len(nics))]
	}
	return hostModel{vcpu: v, memGiB: mem, diskGiB: disks[r.IntN(len(disks))], nicMbps: nic}
}

// links joins the sites as the topology says: a ring plus about Sites/2
// chords by default.
func (g *gen) links() {
	n := len(g.fed.Sites)
	joined := map[[2]int]bool{}
	add := func(a, b int) {
		if a == b {
			return
		}
		key := [2]int{min(a, b), max(a, b)}
		if joined[key] {
			return
		}
		joined[key] = true
		g.fed.Links = append(g.fed.Links, g.link(key[0], key[1]))
	}
	switch {
	case n == 2:
		add(0, 1)
	case g.o.Topology == TopologyStar:
		for i := 1; i < n; i++ {
			add(0, i)
		}
	case g.o.Topology == TopologyChain:
		for i := 1; i < n; i++ {
			add(i-1, i)
		}
	case n >= 3:
		for i := range n {
			add(i, (i+1)%n)
		}
		if g.o.Topology == TopologyRingChords {
			for range n / 2 {
				add(g.r.IntN(n), g.r.IntN(n))
			}
		}
	}
}

// link draws the parameters of the link between sites a and b: 1–100
// Gbit/s (or within the options' range), an RTT of 2–40 ms that grows with
// distance, and sometimes background traffic or VPN encapsulation.
func (g *gen) link(a, b int) model.Link {
	r := g.r
	sa, sb := &g.fed.Sites[a], &g.fed.Sites[b]
	l := model.Link{
		Name:          sa.Name + "-" + sb.Name,
		A:             sa.Name,
		B:             sb.Name,
		BandwidthMbps: g.linkMbps(),
		// Light in fibre covers about 100 km of route per millisecond of
		// round trip; routes are longer than great circles.
		RTTMs: round(min(40, 2+1.5*distanceKm(sa.Lat, sa.Lon, sb.Lat, sb.Lon)/100+r.Float64()*3), 1),
		Mode:  model.LinkDedicated,
	}
	if r.Float64() < g.o.SharedLinks {
		l.Mode = model.LinkShared
		l.BackgroundMbps = round(l.BandwidthMbps*(0.1+0.4*r.Float64()), 0)
	}
	if r.IntN(10) < 3 {
		l.TunnelOverheadBytes = 74 // EtherIP in IPsec ESP (tunnel mode)
	}
	return l
}

// linkMbps draws a link's bandwidth.
func (g *gen) linkMbps() float64 {
	lo, hi := g.o.LinkMbpsMin, g.o.LinkMbpsMax
	if lo == 0 {
		bws := []float64{1000, 10000, 10000, 20000, 40000, 100000}
		return bws[g.r.IntN(len(bws))]
	}
	v := round(lo*math.Pow(hi/lo, g.r.Float64()), -2)
	return min(max(v, lo), hi)
}

// distanceKm is the great-circle distance between two points.
func distanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * 6371 * math.Asin(math.Min(1, math.Sqrt(h)))
}

// split divides n into k positive parts (n >= k), randomly when r is not
// nil and evenly otherwise.
func split(r *rand.Rand, n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = 1
	}
	rest := n - k
	if r == nil {
		for i := range rest {
			out[i%k]++
		}
		return out
	}
	w := make([]float64, k)
	var sum float64
	for i := range w {
		w[i] = 0.5 + r.Float64()
		sum += w[i]
	}
	given := 0
	for i := range w {
		add := int(float64(rest) * w[i] / sum)
		out[i] += add
		given += add
	}
	for i := 0; given < rest; i++ {
		out[i%k]++
		given++
	}
	return out
}

// round rounds v to the given number of decimals.
func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}
