package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/client"
	"github.com/refuge-project/refuge/internal/server"
	"github.com/refuge-project/refuge/internal/store"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the controller's API tokens",
	}
	var role, name, dataDir, srv string
	var jsonOut bool
	create := &cobra.Command{
		Use:   "create --role viewer|operator|admin|alert-relay (--data-dir D | --server URL)",
		Short: "Create an API token; the token is printed on the last line, once",
		Long: `create makes a bearer token with a role and prints it on its last line; only its
hash is stored. With --data-dir it writes into the controller's embedded etcd
directly (the controller must not be running on that directory); with --server
(or REFUGE_SERVER) it asks a running controller, with an admin token in
REFUGE_TOKEN.

Roles: viewer reads; operator also plans, evacuates and runs drills; admin also
manages tokens and reads the audit log; alert-relay may only post alerts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := store.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if srv == "" && dataDir == "" {
				srv = os.Getenv(serverEnv)
			}
			var tok store.Token
			var secret string
			switch {
			case dataDir != "" && srv != "":
				return errors.New("give --data-dir or --server, not both")
			case dataDir != "":
				secret, tok, err = createLocalToken(dataDir, r, name)
			case srv != "":
				var c *client.Client
				if c, err = client.New(srv, os.Getenv(tokenEnv), nil); err != nil {
					return err
				}
				var t *server.TokenCreated
				t, err = c.CreateToken(cmd.Context(), string(r), name)
				if err == nil {
					secret, tok = t.Token, store.Token{ID: t.ID, Name: t.Name, Role: t.Role}
				}
			default:
				return errors.New("give --data-dir D (controller stopped) or --server URL (controller running; admin token in " + tokenEnv + ")")
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"token": secret, "id": tok.ID, "role": tok.Role, "name": tok.Name})
			}
			fmt.Fprintf(out, "token %s, role %s (shown once; keep it in REFUGE_TOKEN):\n%s\n", tok.ID, tok.Role, secret)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "viewer, operator, admin or alert-relay (required)")
	create.Flags().StringVar(&name, "name", "", "who or what will use the token")
	create.Flags().StringVar(&dataDir, "data-dir", "", "the controller's data directory")
	create.Flags().StringVar(&srv, "server", "", "a running controller's URL (default $"+serverEnv+")")
	jsonObjectFlag(create, &jsonOut, "the token")
	_ = create.MarkFlagRequired("role")
	cmd.AddCommand(create)
	return cmd
}

// createLocalToken starts the data directory's member, writes the token and
// stops it.
func createLocalToken(dir string, role store.Role, name string) (string, store.Token, error) {
	release, err := store.LockDataDir(dir)
	if err != nil {
		return "", store.Token{}, err
	}
	defer release()
	m, err := startDataDirMember(dir, serveFlags{})
	if err != nil {
		return "", store.Token{}, err
	}
	defer m.Close()
	st, err := store.Open([]string{m.ClientURL()})
	if err != nil {
		return "", store.Token{}, err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return st.CreateToken(ctx, role, name)
}
