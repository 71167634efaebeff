package main

import (
	"errors"
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
			settingsCommand(),
			adminTokenCommand(),
			snapshotCommand(),
			auditCommand(),
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

func settingsCommand() *cli.Command {
	return &cli.Command{
		Name:   "settings",
		Usage:  "show the cluster settings; `settings set` changes them",
		Action: clusterSettings,
		Subcommands: []*cli.Command{{
			Name:  "set",
			Usage: "change cluster settings (validated as at bootstrap); client configs fetched afterwards show the change",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "endpoint", Usage: "host:port written into client configs"},
				&cli.StringSliceFlag{Name: "client-allowed-ips", Usage: "AllowedIPs written into client configs (comma-separated or repeated)"},
				&cli.StringSliceFlag{Name: "client-dns", Usage: "DNS written into client configs (comma-separated or repeated; \"\" clears it)"},
				&cli.IntFlag{Name: "keepalive", Usage: "PersistentKeepalive written into client configs (0: off)"},
				&cli.IntFlag{Name: "mtu", Usage: "interface MTU (1280-9000)"},
				&cli.BoolFlag{Name: "nat", Usage: "masquerade the pools' traffic leaving the leader (--nat=true or --nat=false)"},
				&cli.StringFlag{Name: "vip-mode", Usage: "how the VIP reaches the leader: arp, bgp, hook, hetzner or aws (each node needs that mode's own flags)"},
			},
			Action: clusterSettingsSet,
		}},
	}
}

func clusterSettings(c *cli.Context) error {
	return request(c, http.MethodGet, "/v1/cluster/settings", nil, formatSettings)
}

func clusterSettingsSet(c *cli.Context) error {
	p, err := settingsPatch(c)
	if err != nil {
		return err
	}
	return request(c, http.MethodPatch, "/v1/cluster/settings", p, formatSettings)
}

// settingsPatch holds the flags given, and only those.
func settingsPatch(c *cli.Context) (httpapi.SettingsPatch, error) {
	var p httpapi.SettingsPatch
	if c.IsSet("endpoint") {
		v := c.String("endpoint")
		p.Endpoint = &v
	}
	if c.IsSet("client-allowed-ips") {
		v := c.StringSlice("client-allowed-ips")
		p.ClientAllowedIPs = &v
	}
	if c.IsSet("client-dns") {
		v := c.StringSlice("client-dns")
		p.ClientDNS = &v
	}
	if c.IsSet("keepalive") {
		v := c.Int("keepalive")
		p.Keepalive = &v
	}
	if c.IsSet("mtu") {
		v := c.Int("mtu")
		p.MTU = &v
	}
	if c.IsSet("nat") {
		v := c.Bool("nat")
		p.NAT = &v
	}
	if c.IsSet("vip-mode") {
		v := c.String("vip-mode")
		p.VIPMode = &v
	}
	if p == (httpapi.SettingsPatch{}) {
		return p, errors.New("nothing to change: give at least one of --endpoint, --client-allowed-ips, --client-dns, --keepalive, --mtu, --nat, --vip-mode")
	}
	return p, nil
}
