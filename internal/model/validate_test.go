package model

import (
	"errors"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/validate"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testFederation returns a fresh copy of testdata/federation.yaml.
func testFederation(t testing.TB) *Federation {
	t.Helper()
	f, err := ParseFederation(readTestdata(t, "federation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testScenario(t testing.TB) *Scenario {
	t.Helper()
	s, err := ParseScenario(readTestdata(t, "scenario.yaml"), testFederation(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// schemaWant says what the JSON schema must make of a value that validation
// rejects: rejectedBySchema when the broken rule is one the schema states,
// acceptedBySchema when it is one only refuge checks (references,
// uniqueness, capacity, relations between fields), skipSchema when the value
// cannot be written as JSON (NaN).
type schemaWant int

const (
	acceptedBySchema schemaWant = iota
	rejectedBySchema
	skipSchema
)

// checkProblems asserts that err is a validate.List with exactly the given
// paths (in any order) and that msg, if set, appears in one of its messages.
func checkProblems(t *testing.T, err error, paths []string, msg string) {
	t.Helper()
	var list validate.List
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not a validate.List", err, err)
	}
	want := slices.Clone(paths)
	slices.Sort(want)
	if got := list.Paths(); !slices.Equal(got, want) {
		t.Fatalf("paths %q, want %q; problems:\n%v", got, want, err)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Fatalf("no problem says %q:\n%v", msg, err)
	}
}

func checkSchema(t *testing.T, name string, v any, want schemaWant) {
	t.Helper()
	if want == skipSchema {
		return
	}
	ok, probs := loadSchema(t, name).conforms(v)
	switch {
	case want == rejectedBySchema && ok:
		t.Errorf("the %s schema accepts what validation rejects", name)
	case want == acceptedBySchema && !ok:
		t.Errorf("the %s schema rejects what only refuge should check: %v", name, probs)
	}
}

func TestTestdataIsValid(t *testing.T) {
	f := testFederation(t)
	s := testScenario(t)
	p, err := ParsePolicy(readTestdata(t, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.VMs) != 5 || len(s.Events) != 5 || p.Name != "refuge-cautious" {
		t.Fatalf("unexpected test data: %d VMs, %d events, policy %q", len(f.VMs), len(s.Events), p.Name)
	}
}

func TestFederationRules(t *testing.T) {
	const (
		kochiA1 = "sites[0].fabrics[0].hosts[0]"
		osakaA1 = "sites[1].fabrics[0].hosts[0]"
		tsuA2   = "sites[2].fabrics[0].hosts[1]"
	)
	for _, tc := range []struct {
		name   string
		mut    func(f *Federation)
		paths  []string
		msg    string
		schema schemaWant
	}{
		{"name required", func(f *Federation) { f.Name = "" }, []string{"name"}, "is required", rejectedBySchema},
		{"name syntax", func(f *Federation) { f.Name = "Nankai Trough" }, []string{"name"}, "is not a valid name", rejectedBySchema},
		{"name too long", func(f *Federation) { f.Name = strings.Repeat("n", 64) }, []string{"name"}, "is not a valid name", rejectedBySchema},

		{"power model reserved", func(f *Federation) { f.PowerModels[0].Name = DefaultPowerModelName },
			[]string{"power_models[0].name", osakaA1 + ".power_model"}, "is the built-in power model", acceptedBySchema},
		{"power model duplicate", func(f *Federation) { f.PowerModels = append(f.PowerModels, f.PowerModels[0]) },
			[]string{"power_models[1].name"}, `duplicate power model name "dell-r650" (first defined at power_models[0].name)`, acceptedBySchema},
		{"power model points", func(f *Federation) { f.PowerModels[0].Watts = f.PowerModels[0].Watts[:10] },
			[]string{"power_models[0].watts"}, "must list 11 values", rejectedBySchema},
		{"power model negative", func(f *Federation) { f.PowerModels[0].Watts[0] = -1 },
			[]string{"power_models[0].watts[0]"}, "must be >= 0, got -1", rejectedBySchema},
		{"power model decreasing", func(f *Federation) { f.PowerModels[0].Watts[5] = 100 },
			[]string{"power_models[0].watts[5]"}, "must not be below the previous value (230)", acceptedBySchema},
		{"power model unknown", func(f *Federation) { f.Sites[1].Fabrics[0].Hosts[0].PowerModel = "dell-r640" },
			[]string{osakaA1 + ".power_model"}, `unknown power model "dell-r640" (did you mean "dell-r650"?)`, acceptedBySchema},

		{"sites required", func(f *Federation) { f.Sites, f.Links, f.VMs = nil, nil, nil },
			[]string{"sites"}, "at least one site is required", rejectedBySchema},
		{"site duplicate", func(f *Federation) {
			f.Sites = append(f.Sites, Site{Name: "kochi", Fabrics: []Fabric{{Name: "x", Hosts: []Host{{Name: "x1", VCPU: 1, MemoryMiB: 1, NICMbps: 1}}}}})
		}, []string{"sites[3].name"}, `duplicate site name "kochi" (first defined at sites[0].name)`, acceptedBySchema},
		{"site lat", func(f *Federation) { f.Sites[0].Lat = 91 }, []string{"sites[0].lat"}, "must be within [-90, 90], got 91", rejectedBySchema},
		{"site lon", func(f *Federation) { f.Sites[0].Lon = -180.5 }, []string{"sites[0].lon"}, "must be within [-180, 180], got -180.5", rejectedBySchema},
		{"site lat NaN", func(f *Federation) { f.Sites[0].Lat = math.NaN() }, []string{"sites[0].lat"}, "must be a finite number", skipSchema},
		{"site ups", func(f *Federation) { f.Sites[0].UPSMinutes = -1 }, []string{"sites[0].ups_minutes"}, "must be >= 0", rejectedBySchema},
		{"site generator", func(f *Federation) { f.Sites[0].GeneratorMinutes = -1 }, []string{"sites[0].generator_minutes"}, "must be >= 0", rejectedBySchema},
		{"site seismic area unknown", func(f *Federation) { f.Sites[0].SeismicArea = "633" }, []string{"sites[0].seismic_area"},
			`unknown JMA seismic intensity area code "633"`, rejectedBySchema},
		{"site seismic area name", func(f *Federation) { f.Sites[0].SeismicArea = "高知県中部" }, []string{"sites[0].seismic_area"},
			`is the name of a JMA seismic intensity area; give its code "631"`, rejectedBySchema},
		{"site gateway not an address", func(f *Federation) { f.Sites[1].Gateway = []string{"192.0.2.1", "gw.osaka"} }, []string{"sites[1].gateway[1]"},
			`"gw.osaka" is not an IP address`, acceptedBySchema},
		{"site gateway twice", func(f *Federation) { f.Sites[1].Gateway = []string{"2001:db8::1", "2001:db8:0::1"} }, []string{"sites[1].gateway[1]"},
			"is listed twice", acceptedBySchema},
		{"fabrics required", func(f *Federation) { f.Sites[2].Fabrics = nil }, []string{"sites[2].fabrics"}, "at least one fabric", rejectedBySchema},
		{"fabric duplicate", func(f *Federation) { f.Sites[1].Fabrics[0].Name = "kochi-a" },
			[]string{"sites[1].fabrics[0].name"}, `duplicate fabric name "kochi-a"`, acceptedBySchema},
		{"hosts required", func(f *Federation) { f.Sites[1].Fabrics[0].Hosts = nil },
			[]string{"sites[1].fabrics[0].hosts", "vms[4].host"}, "at least one host", rejectedBySchema},
		{"host duplicate", func(f *Federation) { f.Sites[2].Fabrics[0].Hosts[1].Name = "tsukuba-a1" },
			[]string{tsuA2 + ".name"}, `duplicate host name "tsukuba-a1" (first defined at sites[2].fabrics[0].hosts[0].name)`, acceptedBySchema},
		{"host name syntax", func(f *Federation) { f.Sites[2].Fabrics[0].Hosts[1].Name = "-x" }, []string{tsuA2 + ".name"}, "not a valid name", rejectedBySchema},
		{"host vcpu", func(f *Federation) { f.Sites[2].Fabrics[0].Hosts[1].VCPU = 0 }, []string{tsuA2 + ".vcpu"}, "must be > 0, got 0", rejectedBySchema},
		{"host memory", func(f *Federation) { f.Sites[2].Fabrics[0].Hosts[1].MemoryMiB = -1 }, []string{tsuA2 + ".memory_mib"}, "must be > 0, got -1", rejectedBySchema},
		{"host disk", func(f *Federation) { f.Sites[2].Fabrics[0].Hosts[1].DiskGiB = -1 }, []string{tsuA2 + ".disk_gib"}, "must be >= 0", rejectedBySchema},
		{"host nic", func(f *Federation) { f.Sites[2].Fabrics[0].Hosts[1].NICMbps = 0 }, []string{tsuA2 + ".nic_mbps"}, "must be > 0", rejectedBySchema},
		{"host nic inf", func(f *Federation) { f.Sites[2].Fabrics[0].Hosts[1].NICMbps = math.Inf(1) }, []string{tsuA2 + ".nic_mbps"}, "finite", skipSchema},

		{"link duplicate", func(f *Federation) { f.Links[1].Name = "kochi-osaka" }, []string{"links[1].name"}, `duplicate link name "kochi-osaka"`, acceptedBySchema},
		{"link end unknown", func(f *Federation) { f.Links[0].A = "kouchi" }, []string{"links[0].a"}, `unknown site "kouchi" (did you mean "kochi"?)`, acceptedBySchema},
		{"link end unknown list", func(f *Federation) { f.Links[0].A = "nagoya" }, []string{"links[0].a"}, `unknown site "nagoya" (known: kochi, osaka, tsukuba)`, acceptedBySchema},
		{"link end required", func(f *Federation) { f.Links[0].B = "" }, []string{"links[0].b"}, "is required", rejectedBySchema},
		{"link loop", func(f *Federation) { f.Links[0].B = "kochi" }, []string{"links[0].b"}, "two different sites", acceptedBySchema},
		{"link parallel", func(f *Federation) { f.Links[2].B = "osaka" }, []string{"links[2]"}, `sites "kochi" and "osaka" are already joined by links[0]`, acceptedBySchema},
		{"link parallel reversed", func(f *Federation) { f.Links[2].A, f.Links[2].B = "osaka", "kochi" }, []string{"links[2]"}, "already joined", acceptedBySchema},
		{"link bandwidth", func(f *Federation) { f.Links[0].BandwidthMbps = 0 }, []string{"links[0].bandwidth_mbps"}, "must be > 0", rejectedBySchema},
		{"link rtt", func(f *Federation) { f.Links[0].RTTMs = -1 }, []string{"links[0].rtt_ms"}, "must be >= 0", rejectedBySchema},
		{"link mode", func(f *Federation) { f.Links[0].Mode = "fast" }, []string{"links[0].mode"}, `must be one of "dedicated", "shared", got "fast"`, rejectedBySchema},
		{"link background on dedicated", func(f *Federation) { f.Links[0].BackgroundMbps = 10 }, []string{"links[0].background_mbps"}, "only a shared link", acceptedBySchema},
		{"link background negative", func(f *Federation) { f.Links[1].BackgroundMbps = -1 }, []string{"links[1].background_mbps"}, "must be >= 0", rejectedBySchema},
		{"link background too high", func(f *Federation) { f.Links[1].BackgroundMbps = 10000 }, []string{"links[1].background_mbps"}, "must be below bandwidth_mbps (10000)", acceptedBySchema},
		{"link tunnel high", func(f *Federation) { f.Links[0].TunnelOverheadBytes = 401 }, []string{"links[0].tunnel_overhead_bytes"}, "within [0, 400]", rejectedBySchema},
		{"link tunnel negative", func(f *Federation) { f.Links[0].TunnelOverheadBytes = -1 }, []string{"links[0].tunnel_overhead_bytes"}, "within [0, 400]", rejectedBySchema},

		{"service duplicate", func(f *Federation) { f.Services = append(f.Services, Service{Name: "moodle-db"}) },
			[]string{"services[3].name"}, `duplicate service name "moodle-db"`, acceptedBySchema},
		{"service name required", func(f *Federation) { f.Services = append(f.Services, Service{}) }, []string{"services[3].name"}, "is required", rejectedBySchema},
		{"dependency unknown", func(f *Federation) { f.Services[0].DependsOn = []string{"moodle-cache"} },
			[]string{"services[0].depends_on[0]"}, `unknown service "moodle-cache"`, acceptedBySchema},
		{"dependency on itself", func(f *Federation) { f.Services[0].DependsOn = []string{"moodle-db"} },
			[]string{"services[0].depends_on[0]"}, "cannot depend on itself", acceptedBySchema},
		{"dependency twice", func(f *Federation) { f.Services[2].DependsOn = []string{"moodle-app", "moodle-app"} },
			[]string{"services[2].depends_on[1]"}, `"moodle-app" is listed twice`, rejectedBySchema},
		{"dependency cycle", func(f *Federation) { f.Services[0].DependsOn = []string{"moodle-web"} },
			[]string{"services[1].depends_on[0]"}, "dependency cycle: moodle-db → moodle-web → moodle-app → moodle-db", acceptedBySchema},
		{"two dependency cycles", func(f *Federation) {
			f.Services[0].DependsOn = []string{"moodle-app"}
			f.Services = append(f.Services, Service{Name: "a", DependsOn: []string{"b"}}, Service{Name: "b", DependsOn: []string{"a"}})
		}, []string{"services[1].depends_on[0]", "services[4].depends_on[0]"}, "dependency cycle: a → b → a", acceptedBySchema},

		{"vm duplicate", func(f *Federation) { f.VMs[1].Name = "db1" }, []string{"vms[1].name"}, `duplicate VM name "db1" (first defined at vms[0].name)`, acceptedBySchema},
		{"vm host unknown", func(f *Federation) { f.VMs[1].Host = "kochi-a3" }, []string{"vms[1].host"}, `unknown host "kochi-a3" (did you mean "kochi-a1"?)`, acceptedBySchema},
		{"vm host unknown many", func(f *Federation) { f.VMs[1].Host = "nagoya-1" }, []string{"vms[1].host"}, `unknown host "nagoya-1"`, acceptedBySchema},
		{"vm host required", func(f *Federation) { f.VMs[1].Host = "" }, []string{"vms[1].host"}, "is required", rejectedBySchema},
		{"vm vcpu", func(f *Federation) { f.VMs[1].VCPU = 0 }, []string{"vms[1].vcpu"}, "must be > 0", rejectedBySchema},
		{"vm memory", func(f *Federation) { f.VMs[1].MemoryMiB = 0 }, []string{"vms[1].memory_mib"}, "must be > 0", rejectedBySchema},
		{"vm disk", func(f *Federation) { f.VMs[1].DiskGiB = -1 }, []string{"vms[1].disk_gib"}, "must be >= 0", rejectedBySchema},
		{"vm storage", func(f *Federation) { f.VMs[1].Storage = "nfs" }, []string{"vms[1].storage"}, `must be one of "shared", "local", got "nfs"`, rejectedBySchema},
		{"vm local without disk", func(f *Federation) { f.VMs[0].DiskGiB = 0 }, []string{"vms[0].disk_gib"}, "must be > 0 for storage local", acceptedBySchema},
		{"vm dirty rate", func(f *Federation) { f.VMs[1].DirtyRateMiBps = -1 }, []string{"vms[1].dirty_rate_mibps"}, "must be >= 0", rejectedBySchema},
		{"vm working set above memory", func(f *Federation) { f.VMs[0].WorkingSetMiB = 16385 }, []string{"vms[0].working_set_mib"}, "must be within [0, 16384], got 16385", acceptedBySchema},
		{"vm working set negative", func(f *Federation) { f.VMs[0].WorkingSetMiB = -1 }, []string{"vms[0].working_set_mib"}, "must be within", rejectedBySchema},
		{"vm priority high", func(f *Federation) { f.VMs[0].Priority = 1001 }, []string{"vms[0].priority"}, "must be within [0, 1000]", rejectedBySchema},
		{"vm priority negative", func(f *Federation) { f.VMs[0].Priority = -1 }, []string{"vms[0].priority"}, "must be within [0, 1000]", rejectedBySchema},
		{"vm service unknown", func(f *Federation) { f.VMs[0].Service = "moodle" }, []string{"vms[0].service"}, `unknown service "moodle"`, acceptedBySchema},
		{"vm fqdn", func(f *Federation) { f.VMs[0].FQDN = "db_1.example" }, []string{"vms[0].fqdn"}, "is not a valid DNS name", rejectedBySchema},
		{"vm fqdn long", func(f *Federation) { f.VMs[0].FQDN = strings.Repeat("a.", 127) + "a" }, []string{"vms[0].fqdn"}, "is not a valid DNS name", rejectedBySchema},
		{"service fqdn", func(f *Federation) { f.Services[0].FQDN = "moodle_web.example.ac.jp" }, []string{"services[0].fqdn"}, "is not a valid DNS name", rejectedBySchema},
		{"service port", func(f *Federation) { f.Services[0].Port = 65536 }, []string{"services[0].port"}, "must be within [0, 65535], got 65536", rejectedBySchema},
		{"vm anti-affinity", func(f *Federation) { f.VMs[1].AntiAffinity = "moodle app" }, []string{"vms[1].anti_affinity"}, "is not a valid name", rejectedBySchema},

		{"vm fits no host", func(f *Federation) { f.VMs[4].VCPU = 65 }, []string{"vms[4]"}, "fits no host: no host has at least 65 vCPUs, 32768 MiB of memory and 0 GiB of local disk", acceptedBySchema},
		{"vm fits no single host", func(f *Federation) {
			// Enough vCPUs on tsukuba and enough disk on osaka, but not both on one host.
			f.Sites[1].Fabrics[0].Hosts[0].DiskGiB = 8000
			f.VMs[4].VCPU, f.VMs[4].Storage, f.VMs[4].DiskGiB = 40, StorageLocal, 5000
		}, []string{"vms[4]"}, "fits no host", acceptedBySchema},
		{"host memory overcommitted", func(f *Federation) {
			f.VMs[1].MemoryMiB = 60000
			f.VMs = append(f.VMs, VM{Name: "more", Host: "kochi-a1", VCPU: 1, MemoryMiB: 1024})
		}, []string{"vms[1].host"}, `host "kochi-a1" is overcommitted: the VMs placed on it up to here need 10848 MiB of memory more than its 65536 MiB`, acceptedBySchema},
		{"host overcommitted without overflow", func(f *Federation) {
			h := &f.Sites[2].Fabrics[0].Hosts[1]
			h.MemoryMiB, h.DiskGiB = math.MaxInt64, math.MaxInt64
			for i := range 3 {
				f.VMs = append(f.VMs, VM{Name: "big" + strconv.Itoa(i), Host: h.Name, VCPU: 1, MemoryMiB: math.MaxInt64 / 2, DiskGiB: math.MaxInt64 / 2, Storage: StorageLocal})
			}
		}, []string{"vms[7].host", "vms[7].host"}, "need 4611686018427387902 MiB of memory more than its 9223372036854775807 MiB", acceptedBySchema},
		{"host disk overcommitted", func(f *Federation) { f.VMs[0].DiskGiB = 600 }, []string{"vms[0].host"}, `host "kochi-a1" is overcommitted: the local-storage VMs placed on it up to here need 100 GiB of disk more than its 500 GiB`, acceptedBySchema},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFederation(t)
			tc.mut(f)
			checkProblems(t, f.Validate(), tc.paths, tc.msg)
			checkSchema(t, "federation", f, tc.schema)
		})
	}
}

func TestValidateAcceptsEmptyDefaults(t *testing.T) {
	f := testFederation(t)
	f.Links[0].Mode, f.VMs[1].Storage = "", ""
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	f.ApplyDefaults()
	if f.Links[0].Mode != LinkDedicated || f.VMs[1].Storage != StorageShared {
		t.Fatalf("ApplyDefaults left %q, %q", f.Links[0].Mode, f.VMs[1].Storage)
	}
}

func TestLongServiceChain(t *testing.T) {
	f := testFederation(t)
	const n = 100000
	f.Services = make([]Service, n)
	for i := range f.Services {
		f.Services[i].Name = "s" + strconv.Itoa(i)
		if i > 0 {
			f.Services[i].DependsOn = []string{"s" + strconv.Itoa(i-1)}
		}
	}
	for i := range f.VMs {
		f.VMs[i].Service = ""
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	f.Services[0].DependsOn = []string{"s" + strconv.Itoa(n-1)}
	checkProblems(t, f.Validate(), []string{"services[1].depends_on[0]"}, "dependency cycle: s0 → s99999 → s99998")
}

func TestScenarioRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mut    func(s *Scenario)
		paths  []string
		msg    string
		schema schemaWant
	}{
		{"name required", func(s *Scenario) { s.Name = "" }, []string{"name"}, "is required", rejectedBySchema},
		{"threat site unknown", func(s *Scenario) { s.Threats[0].Site = "kouchi" }, []string{"threats[0].site"}, `unknown site "kouchi" (did you mean "kochi"?)`, acceptedBySchema},
		{"threat site required", func(s *Scenario) { s.Threats[0].Site = "" }, []string{"threats[0].site"}, "is required", rejectedBySchema},
		{"threat duplicate", func(s *Scenario) { s.Threats[1].Site = "kochi" }, []string{"threats[1].site"}, `site "kochi" is already threatened at threats[0]`, acceptedBySchema},
		{"threat deadline zero", func(s *Scenario) { s.Threats[0].Deadline = 0 }, []string{"threats[0].deadline"}, "must be > 0s, got 0s", acceptedBySchema},
		{"threat deadline negative", func(s *Scenario) { s.Threats[0].Deadline = Duration(-time.Minute) }, []string{"threats[0].deadline"}, "must be > 0s, got -1m0s", rejectedBySchema},
		{"event at negative", func(s *Scenario) { s.Events[0].At = Duration(-time.Second) }, []string{"events[0].at"}, "must be >= 0s", rejectedBySchema},
		{"events out of order", func(s *Scenario) { s.Events[2].At = Duration(time.Minute) }, []string{"events[2].at"}, "events must be in time order: 1m0s is before the previous event's 5m0s", acceptedBySchema},
		{"event kind", func(s *Scenario) { s.Events[0].Kind = "flood" }, []string{"events[0].kind"}, `must be one of "site_lost", "host_failed", "link_degraded", "link_cut", "deadline_changed", got "flood"`, rejectedBySchema},
		{"site_lost without site", func(s *Scenario) { s.Events[3].Site = "" }, []string{"events[3].site"}, "is required", rejectedBySchema},
		{"site_lost unknown site", func(s *Scenario) { s.Events[3].Site = "nagoya" }, []string{"events[3].site"}, `unknown site "nagoya"`, acceptedBySchema},
		{"site_lost with host", func(s *Scenario) { s.Events[3].Host = "kochi-a1" }, []string{"events[3].host"}, "is not used by site_lost events", rejectedBySchema},
		{"host_failed unknown host", func(s *Scenario) { s.Events[1].Host = "kochi-b2" }, []string{"events[1].host"}, `unknown host "kochi-b2" (did you mean "kochi-b1"?)`, acceptedBySchema},
		{"host_failed with site", func(s *Scenario) { s.Events[1].Site = "kochi" }, []string{"events[1].site"}, "is not used by host_failed events", rejectedBySchema},
		{"link_degraded without bandwidth", func(s *Scenario) { s.Events[0].BandwidthMbps = 0 }, []string{"events[0].bandwidth_mbps"}, "is required for link_degraded events (use a link_cut event", rejectedBySchema},
		{"link_degraded negative bandwidth", func(s *Scenario) { s.Events[0].BandwidthMbps = -5 }, []string{"events[0].bandwidth_mbps"}, "must be > 0, got -5", rejectedBySchema},
		{"link_degraded unknown link", func(s *Scenario) { s.Events[0].Link = "kochi-nagoya" }, []string{"events[0].link"}, `unknown link "kochi-nagoya"`, acceptedBySchema},
		{"link_cut without link", func(s *Scenario) { s.Events[4].Link = "" }, []string{"events[4].link"}, "is required", rejectedBySchema},
		{"link_cut with bandwidth", func(s *Scenario) { s.Events[4].BandwidthMbps = 10 }, []string{"events[4].bandwidth_mbps"}, "is not used by link_cut events", rejectedBySchema},
		{"link_cut with deadline", func(s *Scenario) { s.Events[4].Deadline = Duration(time.Hour) }, []string{"events[4].deadline"}, "is not used by link_cut events", rejectedBySchema},
		{"deadline_changed without deadline", func(s *Scenario) { s.Events[2].Deadline = 0 }, []string{"events[2].deadline"}, "must be > 0s, got 0s", rejectedBySchema},
		{"deadline_changed before the event", func(s *Scenario) { s.Events[2].Deadline = Duration(time.Minute) }, []string{"events[2].deadline"}, "is 1m0s, before the event itself (at 8m0s)", acceptedBySchema},
		{"deadline_changed with link", func(s *Scenario) { s.Events[2].Link = "kochi-osaka" }, []string{"events[2].link"}, "is not used by deadline_changed events", rejectedBySchema},
		{"several", func(s *Scenario) {
			s.Events[1].Host, s.Events[1].Link, s.Events[3].At = "", "x", Duration(time.Minute)
		}, []string{"events[1].host", "events[1].link", "events[3].at"}, "", rejectedBySchema},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testScenario(t)
			tc.mut(s)
			checkProblems(t, s.Validate(testFederation(t)), tc.paths, tc.msg)
			checkSchema(t, "scenario", s, tc.schema)
		})
	}
}

func TestScenarioWithoutFederation(t *testing.T) {
	s := testScenario(t)
	if err := s.Validate(nil); err != nil {
		t.Fatalf("valid scenario rejected without a federation: %v", err)
	}
	s.Threats[0].Site = "nowhere"   // unknown, but there is nothing to check it against
	s.Events[1].Host = "not a name" // still a malformed name
	checkProblems(t, s.Validate(nil), []string{"events[1].host"}, "is not a valid name")
}

func TestPolicyRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mut    func(p *Policy)
		paths  []string
		msg    string
		schema schemaWant
	}{
		{"name", func(p *Policy) { p.Name = "my policy" }, []string{"name"}, "is not a valid name", rejectedBySchema},
		{"overcommit", func(p *Policy) { p.VCPUOvercommit = 0.5 }, []string{"vcpu_overcommit"}, "must be >= 1, got 0.5", rejectedBySchema},
		{"safety margin", func(p *Policy) { p.SafetyMargin = Duration(-time.Second) }, []string{"safety_margin"}, "must be >= 0s, got -1s", rejectedBySchema},
		{"order", func(p *Policy) { p.Order = "lifo" }, []string{"order"}, `must be one of "priority", "deadline", "fifo", got "lifo"`, rejectedBySchema},
		{"bandwidth cap", func(p *Policy) { p.Migration.MaxBandwidthMiBps = -1 }, []string{"migration.max_bandwidth_mibps"}, "must be >= 0", rejectedBySchema},
		{"downtime", func(p *Policy) { p.Migration.MaxDowntime = 0 }, []string{"migration.max_downtime"}, "must be > 0s, got 0s", acceptedBySchema},
		{"parallel connections", func(p *Policy) { p.Migration.ParallelConnections = 256 }, []string{"migration.parallel_connections"}, "must be within [0, 255]", rejectedBySchema},
		{"global", func(p *Policy) { p.Concurrency.Global = -1 }, []string{"concurrency.global"}, "must be >= 0, got -1", rejectedBySchema},
		{"per fabric", func(p *Policy) { p.Concurrency.PerFabric = -1 }, []string{"concurrency.per_fabric"}, "must be >= 0", rejectedBySchema},
		{"per host out", func(p *Policy) { p.Concurrency.PerHostOut = -1 }, []string{"concurrency.per_host_out"}, "must be >= 0", rejectedBySchema},
		{"per host in", func(p *Policy) { p.Concurrency.PerHostIn = -1 }, []string{"concurrency.per_host_in"}, "must be >= 0", rejectedBySchema},
		{"per link", func(p *Policy) { p.Concurrency.PerLinkLimit = -1 }, []string{"concurrency.per_link"}, "must be >= 0", rejectedBySchema},
		{"gain threshold", func(p *Policy) { p.Concurrency.GainThreshold = -0.1 }, []string{"concurrency.gain_threshold"}, "must be >= 0", rejectedBySchema},
		{"adaptive interval", func(p *Policy) { p.Concurrency.Interval = 0 }, []string{"concurrency.interval"}, "must be > 0s", acceptedBySchema},
		{"adaptive initial", func(p *Policy) { p.Concurrency.InitialPerLink = 0 }, []string{"concurrency.initial_per_link"}, "must be >= 1, got 0", acceptedBySchema},
		{"adaptive initial above ceiling", func(p *Policy) { p.Concurrency.InitialPerLink = 65 }, []string{"concurrency.initial_per_link"}, "must not exceed per_link (64), got 65", acceptedBySchema},
		{"adaptive decrease zero", func(p *Policy) { p.Concurrency.DecreaseFactor = 0 }, []string{"concurrency.decrease_factor"}, "must be strictly between 0 and 1, got 0", acceptedBySchema},
		{"adaptive decrease one", func(p *Policy) { p.Concurrency.DecreaseFactor = 1 }, []string{"concurrency.decrease_factor"}, "must be strictly between 0 and 1, got 1", rejectedBySchema},
		{"static decrease one", func(p *Policy) { p.Concurrency.Adaptive, p.Concurrency.DecreaseFactor = false, 1 }, []string{"concurrency.decrease_factor"}, "must be below 1", rejectedBySchema},
		{"static interval negative", func(p *Policy) { p.Concurrency.Adaptive, p.Concurrency.Interval = false, Duration(-time.Second) }, []string{"concurrency.interval"}, "must be >= 0s", rejectedBySchema},
		{"static initial negative", func(p *Policy) { p.Concurrency.Adaptive, p.Concurrency.InitialPerLink = false, -1 }, []string{"concurrency.initial_per_link"}, "must be >= 0", rejectedBySchema},
		{"adaptive all missing", func(p *Policy) { p.Concurrency = ConcurrencyPolicy{Adaptive: true} },
			[]string{"concurrency.interval", "concurrency.initial_per_link", "concurrency.decrease_factor"}, "", acceptedBySchema},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := RefugePolicy()
			tc.mut(&p)
			checkProblems(t, p.Validate(), tc.paths, tc.msg)
			checkSchema(t, "policy", p, tc.schema)
		})
	}
}

func TestStaticPolicyIgnoresAdaptiveFields(t *testing.T) {
	p := SequentialPolicy()
	if p.Concurrency.Adaptive || p.Validate() != nil {
		t.Fatalf("sequential policy: %+v, %v", p.Concurrency, p.Validate())
	}
}

// TestAllProblemsAtOnce checks that one document with many kinds of problem
// reports each of them, decoding and validation problems together.
func TestAllProblemsAtOnce(t *testing.T) {
	doc := `
name: broken federation
colour: blue
sites:
  - name: kochi
    lat: 95
    fabrics:
      - name: kochi-a
        hosts:
          - {name: h1, vcpu: many, memory_mib: 0, nic_mbps: 1000}
          - {name: h1, vcpu: 8, memory_mib: 4096, nic_mbps: 1000, powr_model: x}
          - {name: h3, vcpu: 8, memory_mib: 4096, nic_mbps: 1000}
links:
  - {name: l1, a: kochi, b: osaka, bandwidth_mbps: 1000, mode: shared, background_mbps: 2000}
services:
  - {name: a, depends_on: [b]}
  - {name: b, depends_on: [a]}
vms:
  - {name: v1, host: h2, vcpu: 2, memory_mib: 2048, service: c}
  - {name: v1, host: h3, vcpu: 64, memory_mib: 2048, priority: 5000}
  - {name: v3, host: h3, vcpu: 1, memory_mib: 4000}
`
	_, err := ParseFederation([]byte(doc))
	checkProblems(t, err, []string{
		"colour",                                  // unknown field
		"sites[0].fabrics[0].hosts[0].vcpu",       // wrong type (validation's "must be > 0" is not repeated)
		"sites[0].fabrics[0].hosts[1].powr_model", // unknown field with a suggestion
		"name",         // malformed name
		"sites[0].lat", // out of range
		"sites[0].fabrics[0].hosts[0].memory_mib", // must be > 0
		"sites[0].fabrics[0].hosts[1].name",       // duplicate
		"links[0].b",                              // unknown site
		"links[0].background_mbps",                // not below bandwidth
		"services[1].depends_on[0]",               // cycle
		"vms[0].host", "vms[0].service",           // unknown references
		"vms[1].name", "vms[1].priority", "vms[1]", // duplicate, range, fits no host
		"vms[2].host", // overcommitted memory
	}, `did you mean "power_model"?`)
}

func TestParseErrorsAreNotValidated(t *testing.T) {
	for _, doc := range []string{"", "- a\n", "name: [\n"} {
		_, err := ParseFederation([]byte(doc))
		var list validate.List
		if err == nil {
			t.Fatalf("%q accepted", doc)
		}
		if errors.As(err, &list) && len(list) != 1 {
			t.Errorf("%q: validation problems reported beside a document-level one: %v", doc, err)
		}
	}
}
