package fedgen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/refuge-project/refuge/internal/model"
)

// Ranges of the scheduling benchmark's cases (Case).
const (
	CaseMinSites, CaseMaxSites              = 3, 6
	CaseMaxThreatened                       = 3
	CaseLinkMbpsMin, CaseLinkMbpsMax        = 500, 10000
	CaseMinDeadline, CaseMaxDeadline        = 3 * time.Minute, 20 * time.Minute
	caseMinHostsPerSite                     = 2
	defaultCaseHostsPerSite                 = 4
	defaultCaseVMsPerHost                   = 12
	caseSeedStream                   uint64 = 0x62656e6368 // "bench"
	// caseAttempts bounds the draws Case makes looking for a federation
	// whose safe sites have room for every threatened VM.
	caseAttempts = 16
)

// CaseNICMbps are the host NIC speeds the cases draw from: 1 Gbit/s NICs
// among 10 and 25 Gbit/s ones, so that some migrations are bound by their
// hosts rather than by the WAN.
var CaseNICMbps = []float64{1000, 10000, 25000}

// CaseOptions size a scheduling benchmark case. Zero values pick the
// benchmark's defaults; tests use smaller cases.
type CaseOptions struct {
	// Seed selects the case; equal options give equal cases.
	Seed uint64
	// MaxHostsPerSite bounds the hosts per site, drawn from 2 to this
	// (0 means 4; values below 2 are raised to 2).
	MaxHostsPerSite int
	// VMsPerHost is the number of VMs per host on average (0 means 12).
	VMsPerHost int
}

// Case generates one case of the scheduling benchmark (`refuge bench
// saved`) from o.Seed: 3–6 sites joined in one of the Topologies (so that
// some site pairs are several hops apart), WAN links of 0.5–10 Gbit/s,
// host NICs of 1, 10 or 25 Gbit/s, a few hosts per site with tens of VMs
// each (the workload's guests dirty memory as Generate draws it), and a
// scenario threatening 1–3 sites (always sparing one) with deadlines of
// 3–20 minutes. The hosts are lightly filled, so that in most cases the
// bandwidth to move the VMs, not the room to put them, is what binds.
func Case(o CaseOptions) (*model.Federation, *model.Scenario, error) {
	if o.MaxHostsPerSite < 0 || o.VMsPerHost < 0 {
		return nil, nil, fmt.Errorf("fedgen: case seed %d: hosts per site (%d) and VMs per host (%d) must be >= 0 (0 picks a default)",
			o.Seed, o.MaxHostsPerSite, o.VMsPerHost)
	}
	maxHosts := o.MaxHostsPerSite
	if maxHosts == 0 {
		maxHosts = defaultCaseHostsPerSite
	}
	maxHosts = max(maxHosts, caseMinHostsPerSite)
	perHost := o.VMsPerHost
	if perHost == 0 {
		perHost = defaultCaseVMsPerHost
	}
	r := rand.New(rand.NewPCG(o.Seed, caseSeedStream))
	var fed *model.Federation
	var sc *model.Scenario
	for range caseAttempts {
		var err error
		fed, sc, err = drawCase(r, maxHosts, perHost)
		if err != nil {
			return nil, nil, fmt.Errorf("fedgen: case seed %d: %w", o.Seed, err)
		}
		if roomy(fed, sc) {
			break
		}
	}
	fed.Name = fmt.Sprintf("bench-case-%d", o.Seed)
	sc.Name = fmt.Sprintf("bench-case-%d-threats", o.Seed)
	if err := sc.Validate(fed); err != nil {
		return nil, nil, fmt.Errorf("fedgen: case seed %d: generated scenario is invalid (a bug in fedgen): %w", o.Seed, err)
	}
	return fed, sc, nil
}

// drawCase draws one candidate case from r.
func drawCase(r *rand.Rand, maxHosts, perHost int) (*model.Federation, *model.Scenario, error) {
	sites := CaseMinSites + r.IntN(CaseMaxSites-CaseMinSites+1)
	hosts := 0
	for range sites {
		hosts += caseMinHostsPerSite + r.IntN(maxHosts-caseMinHostsPerSite+1)
	}
	threatened := 1 + r.IntN(min(CaseMaxThreatened, sites-1))
	fed, err := Generate(Options{
		Sites:        sites,
		Hosts:        hosts,
		VMs:          hosts * perHost,
		Seed:         r.Uint64(),
		MemoryFill:   0.3,
		LocalStorage: 0.1,
		Topology:     Topologies[r.IntN(len(Topologies))],
		LinkMbpsMin:  CaseLinkMbpsMin,
		LinkMbpsMax:  CaseLinkMbpsMax,
		NICMbps:      CaseNICMbps,
	})
	if err != nil {
		return nil, nil, err
	}
	sc := Threaten(fed, ThreatOptions{
		Fraction:    float64(threatened) / float64(sites),
		MinDeadline: CaseMinDeadline,
		MaxDeadline: CaseMaxDeadline,
		Seed:        r.Uint64(),
	})
	return fed, sc, nil
}

// roomMargin is how much more free memory than the threatened VMs need
// the safe sites must have, so that packing (vCPU, anti-affinity, local
// disk) rarely keeps a VM from moving.
const roomMargin = 1.5

// roomy reports whether the free memory of the sites sc spares holds
// roomMargin times the memory of every VM on the sites it threatens.
func roomy(f *model.Federation, sc *model.Scenario) bool {
	ix := model.NewIndex(f)
	threatened := make([]bool, len(f.Sites))
	for _, t := range sc.Threats {
		threatened[ix.SiteByName[t.Site]] = true
	}
	var free, need float64
	for h := range ix.Hosts {
		if !threatened[ix.HostSite(h)] {
			free += float64(ix.Host(h).MemoryMiB) * model.MiB
		}
	}
	for v, h := range ix.VMHost {
		if threatened[ix.HostSite(h)] {
			need += f.VMs[v].MemoryBytes()
		} else {
			free -= f.VMs[v].MemoryBytes()
		}
	}
	return roomMargin*need <= free
}
