package evacsim

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
)

func TestZZDebug(t *testing.T) {
	seed, _ := strconv.Atoi(os.Getenv("SEED"))
	if seed == 0 {
		t.Skip()
	}
	fed, sc, err := fedgen.Case(fedgen.CaseOptions{Seed: uint64(seed)})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("FAR") != "" {
		for i := range sc.Threats {
			sc.Threats[i].Deadline = model.Duration(24 * time.Hour)
		}
	}
	if os.Getenv("FED") != "" {
		for _, s := range fed.Sites {
			fmt.Printf("site %s hosts:", s.Name)
			for _, f := range s.Fabrics {
				for _, h := range f.Hosts {
					fmt.Printf(" %s(%.0f)", h.Name, h.NICMbps)
				}
			}
			fmt.Println()
		}
		for _, l := range fed.Links {
			fmt.Printf("link %s %s-%s %.0f Mbps rtt %.1f bg %.0f\n", l.Name, l.A, l.B, l.BandwidthMbps, l.RTTMs, l.BackgroundMbps)
		}
		fmt.Printf("threats %+v\n", sc.Threats)
	}
	pol, _ := model.PolicyByName(os.Getenv("POL"))
	verbose := os.Getenv("V") != ""
	r, err := Run(Options{Federation: fed, Scenario: sc, Policy: pol, OnEvent: func(ev executor.Event) {
		if verbose || ev.Kind == "plan" || ev.Kind == "window" || ev.Kind == "mode" || ev.Kind == "abort" || ev.Kind == "deadline" {
			fmt.Printf("%8.1f %-8s %-22s %s→%s %s\n", ev.At.Seconds(), ev.Kind, ev.VM, ev.From, ev.To, ev.Detail)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%+v\n", r.Summary)
	if os.Getenv("CMP") != "" {
		byName := map[string]executor.VMRecord{}
		for _, v := range r.Report.VMs {
			byName[v.Name] = v
		}
		for _, m := range r.Plan.Moves {
			v := byName[m.Name]
			fmt.Printf("%-24s %-6s %-30s pred %7.1f actual %7.1f (%s) start %6.1f dl %v bytes %.1fG %s\n", m.Name, m.Mode, m.FromHost+"→"+m.ToHost, m.PredFinish.Seconds(), v.Finished.Seconds(), v.Status, v.Started.Seconds(), m.Deadline, m.Bytes/1e9, m.Bottleneck)
		}
	}
	if os.Getenv("PLAN") != "" {
		for _, m := range r.Plan.Moves {
			fmt.Printf("MOVE %s %s→%s %s pred %v: %s\n", m.Name, m.FromHost, m.ToHost, m.Mode, m.PredFinish, m.Reason)
		}
		for _, u := range r.Plan.Unsaved {
			fmt.Printf("UNSAVED %s %s %s: %s\n", u.Name, u.Site, u.Code, u.Reason)
		}
	}
}
