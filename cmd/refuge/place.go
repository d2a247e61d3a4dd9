package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// requestsDoc is the document `refuge place --requests` reads.
type requestsDoc struct {
	Requests []placement.Request `json:"requests"`
}

// placeResult is what `refuge place --json` prints.
type placeResult struct {
	Policy     string          `json:"policy"`
	Placements []placedVM      `json:"placements"`
	Failed     []failedVM      `json:"failed"`
	Stats      placement.Stats `json:"stats"`
}

type placedVM struct {
	Request string `json:"request"`
	Host    string `json:"host"`
	Site    string `json:"site"`
	Woken   bool   `json:"woken,omitempty"`
	// Consolidation (power-of-two): VMs moved from NilHost to Host, and
	// NilHost powered off.
	NilHost string   `json:"nil_host,omitempty"`
	Migrate []string `json:"migrate,omitempty"`
}

type failedVM struct {
	Request string `json:"request"`
	Error   string `json:"error"`
}

func newPlaceCmd() *cobra.Command {
	var fedPath, reqPath, policy, threatened, off string
	var one placement.Request
	var count int
	var seed uint64
	var headroom, overcommit, vmLoad float64
	var noCons, asJSON bool
	cmd := &cobra.Command{
		Use:   "place --federation F (--requests R | --vcpu N --memory-mib M) [--policy power-of-two] [--json]",
		Short: "Choose hosts for new VM requests with a placement policy (seed 004)",
		Long: `Places new VM requests, one after the other, on the federation's hosts with a
placement policy, as refuge's API would, and reports each decision: the host, a
powered-off host to wake, and for power-of-two the nil-host consolidation (VMs to
migrate and the host to power off). Existing VMs stay where the federation says.
Hosts on --threatened sites receive nothing. Requests that fit nowhere are
listed with the reason and make the command exit with status 2.

Policies: ` + strings.Join(placement.Names(), ", ") + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, err := model.LoadFederation(fedPath)
			if err != nil {
				return err
			}
			ix := model.NewIndex(fed)
			reqs, err := loadRequests(cmd, reqPath, one, count)
			if err != nil {
				return err
			}
			p, err := placement.New(policy, placement.Options{Seed: seed, NoConsolidation: noCons})
			if err != nil {
				return err
			}
			thr := map[int]bool{}
			for _, name := range splitList(threatened) {
				s, ok := ix.SiteByName[name]
				if !ok {
					return fmt.Errorf("--threatened: unknown site %q%s", name, validate.Suggest(name, siteNames(fed)))
				}
				thr[s] = true
			}
			offFlags := make([]bool, len(ix.Hosts))
			for _, name := range splitList(off) {
				h, ok := ix.HostByName[name]
				if !ok {
					return fmt.Errorf("--off: unknown host %q", name)
				}
				offFlags[h] = true
			}
			if !(vmLoad >= 0 && vmLoad <= 1) {
				return fmt.Errorf("--vm-load %g: want the share of their vCPUs existing VMs keep busy, within [0, 1]", vmLoad)
			}
			loads := make([]float64, len(fed.VMs))
			for v := range fed.VMs {
				loads[v] = vmLoad * float64(fed.VMs[v].VCPU)
			}
			st, err := placement.FromIndex(ix, placement.Config{VCPUOvercommit: overcommit, Headroom: headroom}, nil, loads, thr, nil, offFlags)
			if err != nil {
				return err
			}
			res := placeResult{Policy: policy, Placements: []placedVM{}, Failed: []failedVM{}}
			for _, r := range reqs {
				d, e, err := st.Place(p, r)
				if err != nil {
					res.Failed = append(res.Failed, failedVM{Request: r.Name, Error: err.Error()})
					continue
				}
				pv := placedVM{Request: r.Name, Host: st.Hosts[d.Host].Name, Site: fed.Sites[st.Hosts[d.Host].Site].Name, Woken: e.Woken}
				if e.PoweredOff >= 0 {
					pv.NilHost = st.Hosts[e.PoweredOff].Name
					for _, v := range e.Migrated {
						pv.Migrate = append(pv.Migrate, st.VMs[v].Name)
					}
				}
				res.Placements = append(res.Placements, pv)
			}
			res.Stats = st.Stats()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "REQUEST\tHOST\tSITE\tNOTE")
				for _, pv := range res.Placements {
					var note []string
					if pv.Woken {
						note = append(note, "host woken")
					}
					if pv.NilHost != "" {
						note = append(note, fmt.Sprintf("migrate %s from %s, then power %s off", strings.Join(pv.Migrate, ", "), pv.NilHost, pv.NilHost))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", pv.Request, pv.Host, pv.Site, strings.Join(note, "; "))
				}
				_ = tw.Flush()
				for _, f := range res.Failed {
					fmt.Fprintf(out, "not placed: %s\n", f.Error)
				}
				fmt.Fprintf(out, "%d placed, %d not placed; hosts on %d, off %d; utilisation mean %.1f %%, max %.1f %%\n",
					len(res.Placements), len(res.Failed), res.Stats.HostsOn, res.Stats.HostsOff, 100*res.Stats.MeanUtil, 100*res.Stats.MaxUtil)
			}
			if len(res.Failed) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("%d of %d requests fit nowhere", len(res.Failed), len(reqs))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&fedPath, "federation", "", "federation YAML file (required)")
	_ = cmd.MarkFlagRequired("federation")
	f.StringVar(&reqPath, "requests", "", `requests file: {"requests": [{"name", "vcpu", "memory_mib", "load"}]} (YAML or JSON; - for stdin)`)
	f.StringVar(&one.Name, "name", "vm", "name of the request given by flags (numbered with --count > 1)")
	f.IntVar(&one.VCPU, "vcpu", 0, "vCPUs of the request given by flags")
	f.Int64Var(&one.MemoryMiB, "memory-mib", 0, "memory of the request given by flags")
	f.Float64Var(&one.Load, "load", -1, "expected CPU load of the request given by flags, in cores (default: half its vCPUs)")
	f.IntVar(&count, "count", 1, "how many copies of the request given by flags")
	f.StringVar(&policy, "policy", placement.PowerOfTwo, "placement policy: "+strings.Join(placement.Names(), ", "))
	f.Uint64Var(&seed, "seed", 1, "seed of power-of-two's random choices")
	f.BoolVar(&noCons, "no-consolidation", false, "power-of-two without the nil-host consolidation")
	f.Float64Var(&headroom, "headroom", 0.2, "share of a host's cores consolidation keeps free")
	f.Float64Var(&overcommit, "vcpu-overcommit", 4, "allowed guest vCPUs per host core (memory is never overcommitted)")
	f.Float64Var(&vmLoad, "vm-load", 0.5, "share of their vCPUs the federation's existing VMs keep busy")
	f.StringVar(&threatened, "threatened", "", "comma-separated sites under threat (receive nothing)")
	f.StringVar(&off, "off", "", "comma-separated hosts that are powered off")
	jsonObjectFlag(cmd, &asJSON, "the decisions")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func siteNames(f *model.Federation) []string {
	out := make([]string, len(f.Sites))
	for i := range f.Sites {
		out[i] = f.Sites[i].Name
	}
	return out
}

// loadRequests reads the requests file or builds requests from the flags.
func loadRequests(cmd *cobra.Command, path string, one placement.Request, count int) ([]placement.Request, error) {
	var reqs []placement.Request
	switch {
	case path != "" && (one.VCPU != 0 || one.MemoryMiB != 0):
		return nil, errors.New("give either --requests or --vcpu/--memory-mib, not both")
	case path != "":
		var data []byte
		var err error
		if path == "-" {
			data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), strictyaml.MaxDocumentBytes+1))
		} else {
			data, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("read requests: %w", err)
		}
		var doc requestsDoc
		if err := strictyaml.Decode(data, &doc); err != nil {
			return nil, fmt.Errorf("requests %s: %w", path, err)
		}
		reqs = doc.Requests
	case one.VCPU != 0 || one.MemoryMiB != 0:
		if count < 1 {
			return nil, fmt.Errorf("--count %d, want >= 1", count)
		}
		if one.Load < 0 {
			one.Load = float64(one.VCPU) / 2
		}
		for i := range count {
			r := one
			if count > 1 {
				r.Name = fmt.Sprintf("%s-%d", one.Name, i+1)
			}
			reqs = append(reqs, r)
		}
	default:
		return nil, errors.New("nothing to place: give --requests FILE or --vcpu N --memory-mib M")
	}
	var errs validate.Errors
	seen := map[string]int{}
	for i, r := range reqs {
		p := validate.Index("requests", i)
		if r.Name == "" {
			errs.Addf(validate.Field(p, "name"), "is required")
		} else if j, dup := seen[r.Name]; dup {
			errs.Addf(validate.Field(p, "name"), "%q is already requests[%d]", r.Name, j)
		}
		seen[r.Name] = i
		if err := r.Check(); err != nil {
			errs.Addf(p, "%v", err)
		}
	}
	if len(reqs) == 0 {
		errs.Addf("requests", "is empty: nothing to place")
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return reqs, nil
}
