package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/internal/agent"
)

func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:  "cleanup",
		Usage: "offline, on one node: remove the VIPs, WireGuard interface, routing, fence and NAT table its data dir records as claimed",
		Description: "Run it after the node's raftguard process has ended (the systemd unit runs it as\n" +
			"ExecStopPost, also after a crash or SIGKILL). It removes what the data dir records\n" +
			"as claimed on this host: every VIP on the VIP interface, the WireGuard interface,\n" +
			"the kernel data plane's source routing (fwmark rules and routing table) and source\n" +
			"fence (nftables inet raftguard_fence), a stale control socket, and the NAT table\n" +
			"(nftables inet raftguard). It is idempotent and exits 0 when nothing is left; it\n" +
			"refuses to run while a raftguard process uses the data dir.",
		Flags: []cli.Flag{
			// Also accepted after the command; the global --data-dir works too.
			&cli.StringFlag{Name: "data-dir", Usage: "the node's data dir", EnvVars: envVar("data-dir"), DefaultText: agent.DefaultDataDir},
		},
		Action: func(c *cli.Context) error {
			dir := global(c, "data-dir")
			if dir == "" {
				dir = agent.DefaultDataDir
			}
			log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
			removed, err := agent.Cleanup(dir, log)
			fmt.Fprint(c.App.Writer, formatCleanup(dir, removed))
			return err
		},
	}
}

// formatCleanup says what cleanup removed.
func formatCleanup(dir string, removed []string) string {
	if len(removed) == 0 {
		return fmt.Sprintf("cleanup %s: nothing left to remove\n", dir)
	}
	out := fmt.Sprintf("cleanup %s: removed\n", dir)
	for _, r := range removed {
		out += "  " + r + "\n"
	}
	return out
}
