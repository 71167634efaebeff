// Command raftguard is the highly available WireGuard server: `raftguard
// server` runs a node; every other command is a client of the HTTP API.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/internal/version"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "raftguard:", err)
		os.Exit(1)
	}
}

// envVar is the environment variable that also sets a flag.
func envVar(flag string) []string {
	return []string{"RAFTGUARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "raftguard",
		Usage: "a highly available WireGuard VPN server replicated with Raft",
		Description: "Run `raftguard server` on three or more Linux servers. Every other command talks to\n" +
			"the HTTP API of a node; on a server node it finds the API address, token and CA in\n" +
			"the data dir by itself.",
		Flags:                clientFlags(),
		Commands:             []*cli.Command{serverCommand(), peerCommand(), clusterCommand(), versionCommand()},
		EnableBashCompletion: true,
		HideHelpCommand:      true,
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit and Go version",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, version.String())
			return nil
		},
	}
}
