package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/raftguard/raftguard/internal/apiclient"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/pki"
)

const defaultAPI = "https://127.0.0.1:7443"

func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "api", Usage: "API URL of any node", EnvVars: envVar("api"), DefaultText: defaultAPI + ", or the node in --data-dir"},
		&cli.StringFlag{Name: "token", Usage: "admin API token", EnvVars: envVar("token"), DefaultText: "read from --data-dir"},
		&cli.StringFlag{Name: "ca", Usage: "cluster CA certificate file", EnvVars: envVar("ca"), DefaultText: "read from --data-dir"},
		&cli.StringFlag{Name: "data-dir", Usage: "a server's data dir to read the API address, token and CA from", EnvVars: envVar("data-dir"), DefaultText: agent.DefaultDataDir},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "table or json", EnvVars: envVar("output"), Value: "table"},
	}
}

// global returns a flag's value from the command or any parent (flags may
// be given before or after the command name).
func global(c *cli.Context, name string) string {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx.String(name)
		}
	}
	return c.String(name)
}

func newClient(c *cli.Context) (*apiclient.Client, error) {
	api, token, caFile := global(c, "api"), global(c, "token"), global(c, "ca")
	dir := global(c, "data-dir")
	if dir == "" {
		dir = agent.DefaultDataDir
	}
	if api == "" || token == "" || caFile == "" {
		info, err := agent.ReadNodeInfo(dir)
		switch {
		case err == nil:
			if api == "" && info.APIAdvertise != "" {
				api = "https://" + info.APIAdvertise
			}
			if token == "" {
				token = info.AdminToken
			}
			if caFile == "" {
				caFile = info.CACertFile
			}
		case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
			// Not on a server node (or not root): flags only.
		default:
			return nil, err
		}
	}
	if api == "" {
		api = defaultAPI
	}
	if !strings.Contains(api, "://") {
		api = "https://" + api
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		// Any node certificate of the cluster CA will do, whatever name
		// the API URL uses (a node's address, the VIP, a DNS name).
		if tc, err = pki.CAClientConfig(pem); err != nil {
			return nil, fmt.Errorf("--ca %s: %w", caFile, err)
		}
	}
	return &apiclient.Client{
		Base:  strings.TrimSuffix(api, "/"),
		Token: token,
		HTTP:  &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}},
	}, nil
}

// request is one API call made by a command: it builds the client, sends
// in, decodes the answer and prints it: JSON with -o json, else the text
// render makes of it.
func request[T any](c *cli.Context, method, path string, in any, render func(T) string) error {
	format, err := output(c)
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	var out T
	if _, err := cl.Do(c.Context, method, path, in, &out); err != nil {
		return err
	}
	if format == "json" {
		return printJSON(c.App.Writer, out)
	}
	fmt.Fprint(c.App.Writer, render(out))
	return nil
}

// output returns "table" or "json", or an error for anything else.
func output(c *cli.Context) (string, error) {
	o := global(c, "output")
	if o == "" {
		o = "table"
	}
	if o != "table" && o != "json" {
		return "", fmt.Errorf("-o %q: want table or json", o)
	}
	return o, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
