// Command refuge federates private-cloud sites and moves their VMs out of
// harm's way when a disaster is announced. See README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

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
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs refuge with args and returns the exit status. Cobra prints no
// error itself (the root's SilenceErrors holds for every subcommand); run
// prints it, once, as "refuge: …" on stderr.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "refuge:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

type globalFlags struct {
	logLevel logLevel
}

func (g *globalFlags) logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: g.logLevel.Level}))
}

// logLevel is the --log-level flag: a slog level by name; any other value
// is refused when the flags are parsed.
type logLevel struct{ slog.Level }

// logLevels are the names --log-level takes, in help order.
var logLevels = []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}

func (l *logLevel) String() string { return strings.ToLower(l.Level.String()) }

func (l *logLevel) Set(s string) error {
	for _, lv := range logLevels {
		if strings.EqualFold(s, lv.String()) {
			l.Level = lv
			return nil
		}
	}
	return errors.New("want debug, info, warn or error")
}

func (l *logLevel) Type() string { return "level" }

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
	g.logLevel.Level = slog.LevelWarn
	root.PersistentFlags().Var(&g.logLevel, "log-level", "log level: debug, info, warn, error (logs go to stderr)")
	root.AddCommand(
		newDemoCmd(g),
		withSubcommands(newSimCmd(g), newSimExperimentCmd()),
		newPlanCmd(g),
		withSubcommands(newBenchCmd(), newBenchAlertCmd()),
		newSchemaCmd(),
		newValidateCmd(),
		withSubcommands(newAlertCmd(), newAlertAssessCmd()),
		newWatchCmd(g),
		withRemoteEvacuate(newEvacuateCmd(g)),
		newPlaceCmd(),
		newAgentCmd(g),
		newGatewayCmd(g),
		newServeCmd(g),
		newTokenCmd(),
		newStatusCmd(),
		newOperationsCmd(),
		newDrillCmd(),
	)
	// pflag writes its warnings (a deprecated flag used) to the flag set's
	// output, which cobra prints to the command's output: stdout, where
	// --json goes. Send them to stderr.
	forEachCommand(root, func(c *cobra.Command) { c.Flags().SetOutput(stderr) })
	return root
}

// forEachCommand calls f on cmd and every command below it.
func forEachCommand(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, c := range cmd.Commands() {
		forEachCommand(c, f)
	}
}
