package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/model"
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
	cmd := &cobra.Command{
		Use:   "validate --federation F [--scenario S] [--policy-file P]",
		Short: "Check federation, scenario and policy files; print every problem found",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, sc, pol, err := in.load()
			if err != nil {
				return err
			}
			vms := len(fed.VMs)
			msg := fmt.Sprintf("ok: federation %q (%d sites, %d VMs)", fed.Name, len(fed.Sites), vms)
			if sc != nil {
				msg += fmt.Sprintf(", scenario %q (%d threats, %d events)", sc.Name, len(sc.Threats), len(sc.Events))
			}
			msg += fmt.Sprintf(", policy %q", pol.Name)
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	in.register(cmd, false)
	cmd.Flags().StringVar(&in.scenario, "scenario", "", "scenario YAML file")
	return cmd
}
