// Command refuge federates private-cloud sites and moves their VMs out of
// harm's way when a disaster is announced. See README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	root := newRoot(os.Stdout, os.Stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "refuge:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

type globalFlags struct {
	logLevel string
}

func (g *globalFlags) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "refuge",
		Short: "Move a federated private cloud's VMs out of harm's way before a disaster strikes",
		Long: `refuge federates private-cloud sites (KVM/libvirt) into one logical cloud.
When a disaster is announced it plans a deadline-aware evacuation, live-migrates
VMs to safe sites with adaptive WAN concurrency, and keeps services reachable.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error (logs go to stderr)")
	root.AddCommand(
		newDemoCmd(g),
		withSubcommands(newSimCmd(g), newSimExperimentCmd()),
		newPlanCmd(g),
		withSubcommands(newBenchCmd(), newBenchAlertCmd()),
		newSchemaCmd(),
		newValidateCmd(),
		withSubcommands(newAlertCmd(), newAlertAssessCmd()),
		newWatchCmd(g),
		newEvacuateCmd(g),
		newPlaceCmd(),
		newAgentCmd(g),
	)
	return root
}
