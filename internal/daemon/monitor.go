package daemon

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/monitor"
)

// MonitorConfig sets up Monitor.
type MonitorConfig struct {
	// Controller is the monitoring controller's configuration; its Hosts
	// are named as the federation's hosts.
	Controller monitor.ControllerConfig
	Federation *model.Federation
	// HostDown is told the name of every host monitoring declares failed
	// (the controller service's HostDown: the running evacuations' executors
	// learn it).
	HostDown func(name string) error
	// HostUp, if not nil, is told the name of every host monitoring sees
	// recover (the controller service's HostUp).
	HostUp func(name string) error
}

// Monitor makes the n-queen monitoring controller of the federation's
// hosts (start it with Run or Start): every failure it declares reaches
// HostDown and every recovery HostUp, besides the configured OnEvent. A roster host that the
// federation does not have is refused, naming it.
func Monitor(cfg MonitorConfig) (*monitor.Controller, error) {
	if cfg.Federation == nil || cfg.HostDown == nil {
		return nil, errors.New("daemon: MonitorConfig.Federation and HostDown are required")
	}
	ix := model.NewIndex(cfg.Federation)
	for i, h := range cfg.Controller.Hosts {
		if _, ok := ix.HostByName[h.Name]; !ok {
			return nil, fmt.Errorf("monitor roster: hosts[%d].name: %q is not a host of federation %s", i, h.Name, cfg.Federation.Name)
		}
	}
	lg := cfg.Controller.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	mc := cfg.Controller
	next := mc.OnEvent
	mc.OnEvent = func(e monitor.Event) {
		switch {
		case e.Kind == monitor.EvFailed:
			if err := cfg.HostDown(e.Name); err != nil {
				lg.Warn("host failure not passed to the evacuations", "host", e.Name, "err", err)
			}
		case e.Kind == monitor.EvRecovered && cfg.HostUp != nil:
			if err := cfg.HostUp(e.Name); err != nil {
				lg.Warn("host recovery not passed on", "host", e.Name, "err", err)
			}
		}
		if next != nil {
			next(e)
		}
	}
	c, err := monitor.NewController(mc)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	return c, nil
}
