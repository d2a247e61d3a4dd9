package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/validate"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:       "schema federation|scenario|policy",
		Short:     "Print the JSON Schema of a document type (for editors and CI validation)",
		Args:      cobra.ExactArgs(1),
		ValidArgs: model.SchemaNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := model.Schema(args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(s)
			return err
		},
	}
}

func newValidateCmd() *cobra.Command {
	var in inputFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate --federation F [--scenario S] [--policy-file P] [--json]",
		Short: "Check federation, scenario and policy files; print every problem found",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, sc, pol, err := in.load()
			out := cmd.OutOrStdout()
			if asJSON {
				res := validateResult{OK: err == nil}
				var list validate.List
				switch {
				case errors.As(err, &list):
					res.Problems = list
				case err != nil:
					res.Problems = validate.List{{Msg: err.Error()}}
				default:
					res.Federation, res.VMs = fed.Name, len(fed.VMs)
					res.Policy = pol.Name
					if sc != nil {
						res.Scenario = sc.Name
					}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if encErr := enc.Encode(res); encErr != nil {
					return encErr
				}
				if err != nil {
					return &exitError{code: 1, err: errors.New("invalid input")}
				}
				return nil
			}
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("ok: federation %q (%d sites, %d VMs)", fed.Name, len(fed.Sites), len(fed.VMs))
			if sc != nil {
				msg += fmt.Sprintf(", scenario %q (%d threats, %d events)", sc.Name, len(sc.Threats), len(sc.Events))
			}
			msg += fmt.Sprintf(", policy %q", pol.Name)
			fmt.Fprintln(out, msg)
			return nil
		},
	}
	in.register(cmd, false)
	cmd.Flags().StringVar(&in.scenario, "scenario", "", "scenario YAML file")
	jsonObjectFlag(cmd, &asJSON, "the result")
	return cmd
}

// validateResult is what `refuge validate --json` prints.
type validateResult struct {
	OK         bool          `json:"ok"`
	Problems   validate.List `json:"problems,omitempty"`
	Federation string        `json:"federation,omitempty"`
	Scenario   string        `json:"scenario,omitempty"`
	Policy     string        `json:"policy,omitempty"`
	VMs        int           `json:"vms,omitempty"`
}
