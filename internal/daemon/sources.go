// Package daemon holds what the long-running commands (refuge watch and
// refuge serve) share beyond the world they act on (package world): the
// alert sources that feed their pipeline, built from KIND:ADDRESS specs
// with the relay secrets of the webhook receiver, and the monitoring
// whose failure events reach the running evacuations.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert/webhook"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/clock"
)

// RelaySecretsEnv is the environment variable relay secrets are read
// from: ID=SECRET entries separated by white space.
const RelaySecretsEnv = "REFUGE_RELAY_SECRETS"

// RelaySecrets reads the relay secrets of the webhook receiver: the lines
// of file (if not empty; # starts a comment), then entries, then
// RelaySecretsEnv. Each is ID=SECRET.
func RelaySecrets(file string, entries []string) (map[string][]byte, error) {
	var lines []string
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err // names the file
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
	}
	lines = append(lines, entries...)
	lines = append(lines, strings.Fields(os.Getenv(RelaySecretsEnv))...)
	m := map[string][]byte{}
	for _, l := range lines {
		id, secret, ok := strings.Cut(l, "=")
		if !ok || id == "" || secret == "" {
			return nil, fmt.Errorf("relay secret %q: want ID=SECRET", redact(l))
		}
		m[id] = []byte(secret)
	}
	return m, nil
}

func redact(s string) string {
	if id, _, ok := strings.Cut(s, "="); ok {
		return id + "=…"
	}
	if len(s) > 4 {
		return s[:4] + "…"
	}
	return s
}

// SourceConfig sets up the sources of Sources.
type SourceConfig struct {
	// Specs are KIND:ADDRESS (alertsource.FromSpec).
	Specs []string
	// Options are every source's settings; Secret is filled from Secrets.
	Options alertsource.SpecOptions
	Secrets map[string][]byte
	// PaceClock, if not nil, paces file sources (the world's clock:
	// documents arrive at their own pace in simulated time).
	PaceClock clock.Clock
	// OnListen, if not nil, is told the webhook receivers' addresses.
	OnListen func(net.Addr)
	// OnFailed, if not nil, is told when a source ends with an error
	// before the run's context ends (the other sources go on).
	OnFailed func(name string, err error)
}

// Sources builds the sources and checks what can be checked before a run
// (a file that is missing, a listen address in use): a source that cannot
// work fails here, naming its spec.
func Sources(cfg SourceConfig) ([]alertsource.Source, error) {
	o := cfg.Options
	if len(cfg.Secrets) > 0 {
		var err error
		if o.Secret, err = webhook.StaticSecrets(cfg.Secrets); err != nil {
			return nil, err
		}
	}
	var out []alertsource.Source
	for _, spec := range cfg.Specs {
		src, err := alertsource.FromSpec(spec, o)
		if err != nil {
			return nil, err
		}
		if c, ok := src.(alertsource.Checker); ok {
			if err := c.Check(); err != nil {
				return nil, fmt.Errorf("source %q: %w", spec, err)
			}
		}
		if fs, ok := src.(*alertsource.File); ok && cfg.PaceClock != nil {
			fs.Clock = cfg.PaceClock
		}
		if wh, ok := src.(*alertsource.Webhook); ok && cfg.OnListen != nil {
			wh.OnListen = cfg.OnListen
		}
		if cfg.OnFailed != nil {
			src = reporting{src, cfg.OnFailed}
		}
		out = append(out, src)
	}
	return out, nil
}

// reporting tells the error that ends a source when it happens.
type reporting struct {
	alertsource.Source
	onFailed func(string, error)
}

func (s reporting) Run(ctx context.Context, sink alertsource.Sink) error {
	err := s.Source.Run(ctx, sink)
	if err != nil && ctx.Err() == nil {
		s.onFailed(s.Name(), err)
	}
	return err
}

// DefaultMaxAge is how old an Atom feed's entries may be to be read.
const DefaultMaxAge = time.Hour

// KeepApplying calls retry (pipeline.Pipeline.Retry) every interval until
// ctx ends, so that what the alerts want and a controller refused (it did
// not lead yet; an evacuation was in the way) is carried out once it can.
// Refusals are logged at debug level: a controller that does not lead
// refuses every time.
func KeepApplying(ctx context.Context, retry func() error, every time.Duration, lg *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := retry(); err != nil {
				lg.Debug("alerts not carried out yet", "err", err)
			}
		}
	}
}
