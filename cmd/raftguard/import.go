package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/wgconf"
)

func peerImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "add the peers of a wg-quick server config (all or nothing; names from '# Name = ...' comments, else peer-N)",
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
	var req httpapi.BulkCreateRequest
	f, err := os.Open(file)
	if err != nil {
		return req, err
	}
	defer f.Close()
	conf, err := wgconf.Parse(f)
	if err != nil {
		return req, fmt.Errorf("%s: %w", file, err)
	}
	if len(conf.Peers) == 0 {
		return req, fmt.Errorf("%s: no [Peer] section", file)
	}
	for _, p := range conf.Peers {
		pk, psk := p.PublicKey, p.PresharedKey
		cp := httpapi.CreatePeerRequest{Name: p.Name, PublicKey: &pk, PresharedKey: &psk}
		for _, a := range p.Addresses {
			cp.Addresses = append(cp.Addresses, a.String())
		}
		for _, r := range p.Routes {
			cp.AllowedIPs = append(cp.AllowedIPs, r.String())
		}
		req.Peers = append(req.Peers, cp)
	}
	return req, nil
}

func formatImport(r httpapi.BulkCreateResponse) string {
	if r.DryRun {
		return fmt.Sprintf("dry run: %d peers would be created, %d exist already; nothing changed\n", r.Created, r.Existing)
	}
	return fmt.Sprintf("imported: %d peers created, %d existed already\n", r.Created, r.Existing)
}
