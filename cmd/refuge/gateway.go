package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/continuity/gateway"
)

const gatewayLong = `Run a site gateway: a TCP reverse proxy that forwards each service's public
port to the address its VM answers on now, wherever the VM runs. Listeners
route by port (tcp), by TLS server name with the TLS session passed through
untouched (tls), or by the HTTP Host of the first request (http). When the
controller reports a switchover, new connections go to the new address at
once and existing ones drain (closed after drain_timeout).

Setting up service continuity, step by step:

1. A TSIG key for the organization's zone (on the DNS server):
     Knot:  keymgr -t refuge-update hmac-sha256      # prints a key: block for knot.conf
            then in knot.conf:  acl: [{id: refuge, key: refuge-update, action: update}]
                                zone: [{domain: example.ac.jp, acl: refuge, ...}]
     BIND:  tsig-keygen -a hmac-sha256 refuge-update >> /etc/bind/named.conf.keys
            zone "example.ac.jp" { ...; allow-update { key "refuge-update"; }; };
   Give refuge the key name and its base64 secret; refuge signs every
   update with it (RFC 2136 + TSIG) and lowers, switches and restores the
   service's A/AAAA records at each switchover.

2. A gateway per site, each with its own address (e.g. 192.0.2.10 at
   osaka, 198.51.100.10 at tokyo), started with a configuration like:
     site: osaka
     admin: 127.0.0.1:9180               # /metrics, /healthz, /v1/routes
     admin_token_file: /etc/refuge/gateway.token
     drain_timeout: 30s
     health: {interval: 2s, timeout: 1s}
     listeners:
       - {name: https, listen: "0.0.0.0:443", protocol: tls}
       - {name: http,  listen: "0.0.0.0:80",  protocol: http}
     services:
       - {name: moodle-https, listener: https, hosts: [moodle.example.ac.jp], backend: "10.10.1.5:443"}
       - {name: moodle-http,  listener: http,  hosts: [moodle.example.ac.jp], backend: "10.10.1.5:80"}
       - {name: wiki, listener: http, hosts: [wiki.example.ac.jp], backends: ["10.10.1.6:80", "10.10.1.7:80"]}
   A service with several backends (backends: [...]) sends each new
   connection to the next one whose health check passed.

3. The service record points at the gateway of the site the VM runs at:
     moodle.example.ac.jp. 300 IN A 192.0.2.10
   At a switchover refuge tells both gateways the VM's new address
     curl -X PUT -H "Authorization: Bearer $(cat /etc/refuge/gateway.token)" \
          -d '{"backend":"10.20.1.5:443"}' http://127.0.0.1:9180/v1/routes/moodle-https
   (or {"backends": ["10.20.1.6:80", "10.20.1.7:80"]} for several)
   and replaces the record by the new site's gateway (198.51.100.10) in one
   update whose prerequisite is the old record. Clients that still hold the
   old record reach the old site's gateway, which forwards to the new site.

See docs/continuity.md for the measurements and the L2 (VXLAN) alternative.`

func newGatewayCmd(g *globalFlags) *cobra.Command {
	var configPath string
	var check bool
	cmd := &cobra.Command{
		Use:   "gateway --config FILE",
		Short: "Run a site gateway that follows evacuated VMs (TCP, TLS by SNI, HTTP by Host)",
		Long:  gatewayLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required (see refuge gateway --help for an example)")
			}
			cfg, err := gateway.LoadConfig(configPath)
			if err != nil {
				return err
			}
			if check {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d listeners, %d services)\n", configPath, len(cfg.Listeners), len(cfg.Services))
				return nil
			}
			return runGateway(cmd, g, cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "gateway configuration file (YAML)")
	cmd.Flags().BoolVar(&check, "check", false, "only validate the configuration")
	return cmd
}

func runGateway(cmd *cobra.Command, g *globalFlags, cfg *gateway.Config) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := g.logger(cmd.ErrOrStderr())
	gw, err := gateway.New(*cfg, gateway.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	defer gw.Close()
	for _, l := range cfg.Listeners {
		fmt.Fprintf(cmd.OutOrStdout(), "gateway %s: %s (%s) on %s\n", cfg.Site, l.Name, l.Protocol, gw.Addr(l.Name))
	}
	if cfg.Admin != "" {
		token := ""
		if cfg.AdminTokenFile != "" {
			if token, err = gateway.ReadToken(cfg.AdminTokenFile); err != nil {
				return err
			}
		} else if host, _, _ := net.SplitHostPort(cfg.Admin); !isLoopback(host) {
			return fmt.Errorf("admin %s is not a loopback address: set admin_token_file so that only the controller can change routes", cfg.Admin)
		}
		ln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		srv := &http.Server{Handler: gw.AdminHandler(token), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		fmt.Fprintf(cmd.OutOrStdout(), "gateway %s: admin on %s\n", cfg.Site, ln.Addr())
	}
	<-ctx.Done()
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
