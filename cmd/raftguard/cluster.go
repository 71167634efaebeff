package main

import (
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
	return request(c, http.MethodGet, "/v1/cluster", nil, formatCluster)
}

func clusterTransfer(c *cli.Context) error {
	return request(c, http.MethodPost, "/v1/cluster/transfer-leader", httpapi.TransferRequest{To: c.String("to")},
		func(r httpapi.TransferResponse) string { return "leader is now " + r.LeaderID + "\n" })
}

func clusterRemove(c *cli.Context) error {
	id, err := oneArg(c, "the node ID")
	if err != nil {
		return err
	}
	return request(c, http.MethodDelete, "/v1/cluster/nodes/"+url.PathEscape(id), nil, func(struct{}) string { return "node " + id + " removed\n" })
}

func clusterToken(c *cli.Context) error {
	method, path := http.MethodGet, "/v1/cluster/token"
	if c.Bool("rotate") {
		method, path = http.MethodPost, "/v1/cluster/token/rotate"
	}
	return request(c, method, path, nil, func(r httpapi.JoinTokenResponse) string { return r.Token + "\n" })
}
