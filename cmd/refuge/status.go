package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/client"
	"github.com/refuge-project/refuge/internal/controller"
)

// The controller's address and token come from the environment (the
// token never from the command line, docs/cli.md); --server overrides the
// address.
const (
	serverEnv = "REFUGE_SERVER"
	tokenEnv  = "REFUGE_TOKEN"
)

// clientFlags are the flags of commands that talk to a controller.
type clientFlags struct {
	server string
	caFile string
	json   bool
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "", "controller URL (default $"+serverEnv+"); the token comes from $"+tokenEnv)
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "PEM file of the CA that signed an https:// controller's certificate (default $"+client.EnvCAFile+")")
}

func (f *clientFlags) serverURL() string {
	if f.server != "" {
		return f.server
	}
	return os.Getenv(serverEnv)
}

func (f *clientFlags) client() (*client.Client, error) {
	if f.caFile == "" {
		return client.New(f.serverURL(), os.Getenv(tokenEnv), nil) // $REFUGE_CA_FILE
	}
	hc, err := client.HTTPClient(f.caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	return client.New(f.serverURL(), os.Getenv(tokenEnv), hc)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newStatusCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "status [--server URL] [--json]",
		Short: "Show the federation and the controllers, from a running controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	f.register(cmd)
	jsonObjectFlag(cmd, &f.json, "the status")
	return cmd
}

func printStatus(w io.Writer, st *controller.Status) {
	leader := st.Leader
	if leader == "" {
		leader = "none (election under way)"
	}
	fmt.Fprintf(w, "controller %s; leader %s; time %s\n", st.Controller, leader, st.Time.Format("2006-01-02 15:04:05"))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tHOSTS UP\tVMS\tDEADLINE\tOPERATION")
	for _, s := range st.Sites {
		dl := "-"
		if s.Deadline != nil {
			dl = s.Deadline.Format("15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%s\t%s\n", s.Name, s.HostsUp, s.Hosts, s.VMs, dl, s.Operation)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d VMs, %d lost; %d live operation(s)\n", st.VMs, st.VMsLost, len(st.Operations))
}
