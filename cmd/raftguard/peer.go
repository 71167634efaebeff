package main

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent"
)

func peerCommand() *cli.Command {
	return &cli.Command{
		Name:  "peer",
		Usage: "manage WireGuard peers (clients)",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "create a peer; without --public-key a key pair is generated and the client config printed once",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "public-key", Usage: "the client's public key (base64)"},
					&cli.StringSliceFlag{Name: "ip", Usage: "tunnel address (repeatable); default: the next free address of each pool"},
					&cli.StringSliceFlag{Name: "allowed-ips", Usage: "extra routes behind the peer (site-to-site), CIDR[,CIDR...]"},
					&cli.BoolFlag{Name: "no-psk", Usage: "do not generate a preshared key"},
					&cli.BoolFlag{Name: "disabled", Usage: "create the peer disabled"},
					&cli.StringFlag{Name: "expires", Usage: expiresUsage},
					&cli.BoolFlag{Name: "qr", Usage: "also draw the client config as a QR code (for the WireGuard phone app)"},
				},
				Action: peerAdd,
			},
			{Name: "list", Usage: "list peers", Action: peerList},
			peerImportCommand(),
			{Name: "show", Usage: "show one peer", ArgsUsage: "NAME", Action: peerShow},
			{Name: "rm", Aliases: []string{"delete"}, Usage: "delete a peer", ArgsUsage: "NAME", Action: peerRemove},
			{Name: "enable", Usage: "enable a peer (an expired one only after peer set --expires)", ArgsUsage: "NAME", Action: peerSetEnabled(true)},
			{
				Name: "set", Usage: "change a peer's expiry (an expired peer gets enabled again with peer enable)", ArgsUsage: "NAME",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "expires", Usage: expiresUsage}},
				Action: peerSet,
			},
			{Name: "disable", Usage: "disable a peer (it keeps its address and leaves the interface)", ArgsUsage: "NAME", Action: peerSetEnabled(false)},
			{
				Name:      "config",
				Usage:     "print a peer's client config (the private key is a placeholder)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "qr", Usage: "draw it as a QR code"}},
				Action:    peerConfig,
			},
		},
	}
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("want exactly one argument: %s", what)
	}
	return c.Args().First(), nil
}

func peerPath(name string) string { return "/v1/peers/" + url.PathEscape(name) }

func peerAdd(c *cli.Context) error {
	name, err := oneArg(c, "the peer's NAME")
	if err != nil {
		return err
	}
	out, err := output(c)
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	req := httpapi.CreatePeerRequest{Name: name, Addresses: c.StringSlice("ip"), AllowedIPs: agent.SplitList(c.StringSlice("allowed-ips"))}
	if k := c.String("public-key"); k != "" {
		req.PublicKey = &k
	}
	if c.Bool("no-psk") {
		empty := ""
		req.PresharedKey = &empty
	}
	if c.Bool("disabled") {
		f := false
		req.Enabled = &f
	}
	if c.IsSet("expires") {
		exp, err := expiryArg(c.String("expires"), time.Now())
		if err != nil {
			return err
		}
		req.ExpiresAt = &exp
	}
	var resp httpapi.CreatePeerResponse
	if _, err := cl.Do(c.Context, http.MethodPost, "/v1/peers", req, &resp); err != nil {
		return err
	}
	if out == "json" {
		return printJSON(c.App.Writer, resp)
	}
	stdout, note := formatCreatedPeer(resp)
	fmt.Fprint(c.App.ErrWriter, note)
	if c.Bool("qr") && resp.Config != "" {
		writeQR(c.App.Writer, qrText(resp.Config))
	}
	fmt.Fprint(c.App.Writer, stdout)
	return nil
}

func peerList(c *cli.Context) error {
	type list struct {
		Peers []httpapi.PeerView `json:"peers"`
	}
	return request(c, http.MethodGet, "/v1/peers", nil, func(l list) string { return formatPeers(l.Peers) })
}

func peerShow(c *cli.Context) error {
	name, err := oneArg(c, "the peer's NAME")
	if err != nil {
		return err
	}
	return request(c, http.MethodGet, peerPath(name), nil, formatPeer)
}

func peerRemove(c *cli.Context) error {
	name, err := oneArg(c, "the peer's NAME")
	if err != nil {
		return err
	}
	return request(c, http.MethodDelete, peerPath(name), nil, func(struct{}) string { return "peer " + name + " deleted\n" })
}

func peerSetEnabled(enabled bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		name, err := oneArg(c, "the peer's NAME")
		if err != nil {
			return err
		}
		return request(c, http.MethodPatch, peerPath(name), httpapi.UpdatePeerRequest{Enabled: &enabled}, func(p httpapi.PeerView) string {
			if p.Enabled {
				return "peer " + name + " enabled\n"
			}
			return "peer " + name + " disabled\n"
		})
	}
}

func peerConfig(c *cli.Context) error {
	name, err := oneArg(c, "the peer's NAME")
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	data, err := cl.Do(c.Context, http.MethodGet, peerPath(name)+"/config", nil, nil)
	if err != nil {
		return err
	}
	if c.Bool("qr") {
		writeQR(c.App.Writer, qrText(string(data)))
		return nil
	}
	_, err = c.App.Writer.Write(data)
	return err
}
