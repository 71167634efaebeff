package main

import (
	"fmt"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/wgconf"
)

func peerImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "add the peers of a wg-quick server config (all or nothing; names from the comments wg-easy and similar tools write, else peer-N)",
		ArgsUsage: "FILE",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "check every peer against the cluster and report, change nothing"}},
		Action:    peerImport,
	}
}

func peerImport(c *cli.Context) error {
	file, err := oneArg(c, "the wg-quick config FILE")
	if err != nil {
		return err
	}
	req, err := importRequest(file)
	if err != nil {
		return err
	}
	req.DryRun = c.Bool("dry-run")
	return request(c, http.MethodPost, "/v1/peers/bulk", req, formatImport)
}

// importRequest reads FILE's [Peer] sections into a bulk create.
func importRequest(file string) (httpapi.BulkCreateRequest, error) {
	conf, err := wgconf.ReadFile(file)
	if err != nil {
		return httpapi.BulkCreateRequest{}, err
	}
	if len(conf.Peers) == 0 {
		return httpapi.BulkCreateRequest{}, fmt.Errorf("%s: no [Peer] section", file)
	}
	return httpapi.ImportRequest(conf), nil
}

func formatImport(r httpapi.BulkCreateResponse) string {
	if r.DryRun {
		return fmt.Sprintf("dry run: %d peers would be created, %d exist already; nothing changed\n", r.Created, r.Existing)
	}
	return fmt.Sprintf("imported: %d peers created, %d existed already\n", r.Created, r.Existing)
}
