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

func (f *inputFlags) register(cmd *cobra.Command, needScenario bool) {
	cmd.Flags().StringVar(&f.federation, "federation", "", "federation YAML file (required)")
	cmd.Flags().StringVar(&f.policy, "policy", "refuge", fmt.Sprintf("built-in policy: %v", model.PolicyNames()))
	cmd.Flags().StringVar(&f.policyFile, "policy-file", "", "policy YAML file (overrides --policy)")
	_ = cmd.MarkFlagRequired("federation")
	if needScenario {
		cmd.Flags().StringVar(&f.scenario, "scenario", "", "scenario YAML file (required)")
		_ = cmd.MarkFlagRequired("scenario")
	}
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
