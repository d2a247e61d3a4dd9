package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/server"
)

func newDrillCmd() *cobra.Command {
	var f clientFlags
	var site string
	var deadline time.Duration
	var wait bool
	cmd := &cobra.Command{
		Use:   "drill --site S [--deadline D] [--wait] [--json]",
		Short: "Play an evacuation of a site on a simulated copy of the federation, through a controller",
		Long: `drill asks the controller to play an evacuation of the site on a simulated copy
of the federation, with the VMs where they run now; nothing real moves. It prints
the operation's id (--json: {"operation_id": …}); with --wait it follows the
operation and prints its outcome.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if site == "" {
				return fmt.Errorf("--site is required")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.Drill(cmd.Context(), server.SitesRequest{Site: site, Deadline: deadline.String()})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !wait {
				if f.json {
					return printJSON(out, a)
				}
				fmt.Fprintf(out, "drill %s started; follow it with: refuge operations watch %s\n", a.OperationID, a.OperationID)
				return nil
			}
			if !f.json {
				return watchOperation(cmd.Context(), c, a.OperationID, 200*time.Millisecond, false, out)
			}
			if err := watchOperation(cmd.Context(), c, a.OperationID, 200*time.Millisecond, true, io.Discard); err != nil {
				return err
			}
			d, err := c.Operation(cmd.Context(), a.OperationID)
			if err != nil {
				return err
			}
			return printJSON(out, d)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&site, "site", "", "the site to evacuate (required)")
	cmd.Flags().DurationVar(&deadline, "deadline", 30*time.Minute, "time left before the site is lost")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the drill until it ends")
	jsonObjectFlag(cmd, &f.json, "the operation (with --wait: once it has ended)")
	return cmd
}
