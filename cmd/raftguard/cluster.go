package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "inspect and manage the cluster",
		Subcommands: []*cli.Command{
			{Name: "status", Usage: "nodes, roles, leader, term, indexes, VIP holder, interface state", Action: clusterStatus},
			{
				Name:   "transfer-leader",
				Usage:  "hand leadership over (planned maintenance); returns when the new leader serves",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "to", Usage: "node id of the new leader (default: any healthy follower)"}},
				Action: clusterTransfer,
			},
			{Name: "remove", Usage: "remove a node from the cluster", ArgsUsage: "ID", Action: clusterRemove},
			{
				Name:   "token",
				Usage:  "print the join token",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "rotate", Usage: "replace the join token; the old one stops working"}},
				Action: clusterToken,
			},
			adminTokenCommand(),
			snapshotCommand(),
			recoverCommand(),
		},
	}
}

func clusterStatus(c *cli.Context) error {
	out, err := output(c)
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	var st httpapi.ClusterStatus
	if _, err := cl.do(c.Context, http.MethodGet, "/v1/cluster", nil, &st); err != nil {
		return err
	}
	if out == "json" {
		return printJSON(c.App.Writer, st)
	}
	fmt.Fprint(c.App.Writer, formatCluster(st))
	return nil
}

func clusterTransfer(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	var resp httpapi.TransferResponse
	if _, err := cl.do(c.Context, http.MethodPost, "/v1/cluster/transfer-leader", httpapi.TransferRequest{To: c.String("to")}, &resp); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "leader is now %s\n", resp.LeaderID)
	return nil
}

func clusterRemove(c *cli.Context) error {
	id, err := oneArg(c, "the node ID")
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	if _, err := cl.do(c.Context, http.MethodDelete, "/v1/cluster/nodes/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "node %s removed\n", id)
	return nil
}

func clusterToken(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	var resp httpapi.JoinTokenResponse
	method, path := http.MethodGet, "/v1/cluster/token"
	if c.Bool("rotate") {
		method, path = http.MethodPost, "/v1/cluster/token/rotate"
	}
	if _, err := cl.do(c.Context, method, path, nil, &resp); err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, resp.Token)
	return nil
}
