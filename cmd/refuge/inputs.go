package main

import (
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/examples"
	"github.com/refuge-project/refuge/internal/model"
)

// inputFlags are the flags naming a federation, a scenario and a policy.
type inputFlags struct {
	federation string
	scenario   string
	policy     string
	policyFile string
}

// register adds --federation, --policy and --policy-file (an evacuation
// policy in every command; a threat policy is --threat-policy) and, if
// needScenario, a required --scenario.
func (f *inputFlags) register(cmd *cobra.Command, needScenario bool) {
	cmd.Flags().StringVar(&f.federation, "federation", "", "federation YAML file (required)")
	cmd.Flags().StringVar(&f.policy, "policy", "refuge", fmt.Sprintf("built-in evacuation policy: %v", model.PolicyNames()))
	cmd.Flags().StringVar(&f.policyFile, "policy-file", "", "evacuation policy YAML file (overrides --policy; docs/federation.md)")
	_ = cmd.MarkFlagRequired("federation")
	if needScenario {
		cmd.Flags().StringVar(&f.scenario, "scenario", "", "scenario YAML file (required)")
		_ = cmd.MarkFlagRequired("scenario")
	}
}

// registerThreatPolicy adds --threat-policy, the threat policy file
// (docs/threat.md), to cmd.
func registerThreatPolicy(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "threat-policy", "", "threat policy YAML file (docs/threat.md; default: the built-in policy)")
}

// The two kinds of --json output (docs/cli.md): a command that reports
// once prints one JSON object; a command that streams events prints JSON
// lines, one object per line.
func jsonObjectFlag(cmd *cobra.Command, v *bool, what string) {
	cmd.Flags().BoolVar(v, "json", false, "print "+what+" as one JSON object")
}

func jsonLinesFlag(cmd *cobra.Command, v *bool, what string) {
	cmd.Flags().BoolVar(v, "json", false, "print "+what+" as JSON lines (one object per line)")
}

func (f *inputFlags) loadPolicy() (model.Policy, error) {
	if f.policyFile != "" {
		return model.LoadPolicy(f.policyFile)
	}
	return model.PolicyByName(f.policy)
}

// load reads the federation and scenario files and the policy.
func (f *inputFlags) load() (*model.Federation, *model.Scenario, model.Policy, error) {
	pol, err := f.loadPolicy()
	if err != nil {
		return nil, nil, pol, err
	}
	fed, err := model.LoadFederation(f.federation)
	if err != nil {
		return nil, nil, pol, err
	}
	if f.scenario == "" {
		return fed, nil, pol, nil
	}
	sc, err := model.LoadScenario(f.scenario, fed)
	if err != nil {
		return nil, nil, pol, err
	}
	return fed, sc, pol, nil
}

// loadExample reads the bundled example federation and scenario.
func loadExample(name string) (*model.Federation, *model.Scenario, error) {
	fedData, err := fs.ReadFile(examples.FS, name+"/federation.yaml")
	if err != nil {
		return nil, nil, fmt.Errorf("bundled example %s: %w", name, err)
	}
	fed, err := model.ParseFederation(fedData)
	if err != nil {
		return nil, nil, fmt.Errorf("bundled example %s federation: %w", name, err)
	}
	scData, err := fs.ReadFile(examples.FS, name+"/scenario.yaml")
	if err != nil {
		return nil, nil, fmt.Errorf("bundled example %s: %w", name, err)
	}
	sc, err := model.ParseScenario(scData, fed)
	if err != nil {
		return nil, nil, fmt.Errorf("bundled example %s scenario: %w", name, err)
	}
	return fed, sc, nil
}
