package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent"
)

func adminTokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "admin-token",
		Usage: "admin API tokens",
		Subcommands: []*cli.Command{
			{
				Name:   "create",
				Usage:  "create an admin token (printed once)",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "name", Usage: "a label for the token"}},
				Action: adminTokenCreate,
			},
			{Name: "list", Usage: "list admin tokens (ids and labels, never the secrets)", Action: adminTokenList},
			{Name: "revoke", Usage: "revoke an admin token by id", ArgsUsage: "ID", Action: adminTokenRevoke},
		},
	}
}

func adminTokenCreate(c *cli.Context) error {
	return request(c, http.MethodPost, "/v1/cluster/admin-tokens", map[string]string{"name": c.String("name")}, func(r httpapi.NewTokenResponse) string {
		fmt.Fprintf(c.App.ErrWriter, "created admin token %s; it is shown only now:\n", r.ID)
		return r.Token + "\n"
	})
}

func adminTokenList(c *cli.Context) error {
	type list struct {
		Tokens []httpapi.TokenView `json:"tokens"`
	}
	return request(c, http.MethodGet, "/v1/cluster/admin-tokens", nil, func(l list) string { return formatTokens(l.Tokens) })
}

func adminTokenRevoke(c *cli.Context) error {
	id, err := oneArg(c, "the token ID")
	if err != nil {
		return err
	}
	return request(c, http.MethodDelete, "/v1/cluster/admin-tokens/"+url.PathEscape(id), nil, func(struct{}) string { return "admin token " + id + " revoked\n" })
}

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "backup and restore of the replicated state",
		Subcommands: []*cli.Command{
			{Name: "save", Usage: "write the replicated state to FILE (mode 0600: it holds the cluster's secrets)", ArgsUsage: "FILE", Action: snapshotSave},
			{
				Name:      "restore",
				Usage:     "replace the replicated state of the whole cluster with FILE",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "restore a snapshot of another cluster (its CA, tokens and server key replace this cluster's)"}},
				Action:    snapshotRestore,
			},
		},
	}
}

func snapshotSave(c *cli.Context) error {
	file, err := oneArg(c, "the FILE to write")
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	resp, err := cl.Stream(c.Context, http.MethodGet, "/v1/cluster/snapshot", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "saved %d bytes to %s (it holds the cluster's private keys: keep it safe)\n", n, file)
	return nil
}

func snapshotRestore(c *cli.Context) error {
	file, err := oneArg(c, "the snapshot FILE")
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	path := "/v1/cluster/snapshot/restore"
	if c.Bool("force") {
		path += "?force=true"
	}
	resp, err := cl.Stream(c.Context, http.MethodPost, path, bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return err
	}
	resp.Body.Close()
	fmt.Fprintf(c.App.Writer, "restored the cluster state from %s\n", file)
	return nil
}

func recoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "recover",
		Usage: "offline, on the survivors of a lost majority: force a new cluster configuration",
		Description: "Stop raftguard on every surviving node, run this on each of them with the same\n" +
			"--servers (their node ids and Raft addresses), then start them again.",
		Flags: []cli.Flag{
			// Also accepted here, after the command (the form SPEC.md gives);
			// the global --data-dir before the command still works.
			&cli.StringFlag{Name: "data-dir", Usage: "the stopped node's data dir", EnvVars: envVar("data-dir"), DefaultText: agent.DefaultDataDir},
			&cli.StringFlag{Name: "servers", Usage: "the new voters: ID=RAFT_HOST:PORT[,ID=RAFT_HOST:PORT...]", Required: true},
		},
		Action: func(c *cli.Context) error {
			servers, err := agent.ParseServers(c.String("servers"))
			if err != nil {
				return err
			}
			dir := global(c, "data-dir")
			if dir == "" {
				dir = agent.DefaultDataDir
			}
			if err := agent.Recover(dir, servers); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "recovered %s: the cluster configuration is now %s; start the node again\n", dir, c.String("servers"))
			return nil
		},
	}
}
