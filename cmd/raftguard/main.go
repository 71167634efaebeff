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
	app := newApp()
	if err := app.Run(flagsFirst(app, os.Args)); err != nil {
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
		Commands:             []*cli.Command{serverCommand(), peerCommand(), clusterCommand(), cleanupCommand(), demoCommand(), versionCommand()},
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

// flagsFirst lets flags follow positional arguments (`peer add laptop --qr`):
// urfave/cli stops parsing flags at the first positional argument, so the
// leaf command's arguments are reordered, flags (with their values) first.
func flagsFirst(app *cli.App, args []string) []string {
	cmds, flags := app.Commands, app.Flags
	i := 1
	var leaf *cli.Command
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if a == "--" {
				return args
			}
			if takesValue(flags, a) && !strings.Contains(a, "=") {
				i++
			}
			i++
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		leaf, cmds, flags = next, next.Subcommands, append(flags, next.Flags...)
		i++
		if len(cmds) == 0 {
			break
		}
	}
	if leaf == nil || len(leaf.Subcommands) > 0 {
		return args
	}
	// Global flags go before the command path, the leaf's own flags after
	// it, then the positional arguments.
	var glob, fl, pos []string
	for j := i; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			pos = append(pos, args[j:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			dst := &fl
			if !hasFlag(leaf.Flags, a) && hasFlag(app.Flags, a) {
				dst = &glob
			}
			*dst = append(*dst, a)
			if takesValue(flags, a) && !strings.Contains(a, "=") && j+1 < len(args) {
				j++
				*dst = append(*dst, args[j])
			}
			continue
		}
		pos = append(pos, a)
	}
	out := append([]string{args[0]}, glob...)
	out = append(out, args[1:i]...)
	return append(append(out, fl...), pos...)
}

// hasFlag reports whether flags defines the flag named by arg.
func hasFlag(flags []cli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether the flag named by arg (-x, --name) expects a
// value.
func takesValue(flags []cli.Flag, arg string) bool {
	for _, f := range flags {
		if hasFlag([]cli.Flag{f}, arg) {
			_, isBool := f.(*cli.BoolFlag)
			return !isBool
		}
	}
	return false
}
