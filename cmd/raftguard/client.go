package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
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

// apiClient talks to one node's API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
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

func newClient(c *cli.Context) (*apiClient, error) {
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
	return &apiClient{
		base:  strings.TrimSuffix(api, "/"),
		token: token,
		http:  &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}},
	}, nil
}

// apiStatusError is an error answer from the API.
type apiStatusError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiStatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("API answered %d", e.Status)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// do sends a request and decodes a JSON answer into out (if not nil). It
// returns the raw body for non-JSON answers.
func (cl *apiClient) do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, cl.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	if method != http.MethodGet && cl.http.Timeout > 0 {
		// Past this the CLI has given up: a write still in flight then
		// (on a cut link, say) must not take effect later.
		req.Header.Set(httpapi.HeaderDeadline, time.Now().Add(cl.http.Timeout).UTC().Format(time.RFC3339Nano))
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		if errors.As(err, &uerr) || errors.Is(err, pki.ErrUntrustedPeer) {
			return nil, fmt.Errorf("%s: the server's certificate is not from a known CA: pass --ca FILE (on a server node: DATA_DIR/tls/ca.crt)", cl.base)
		}
		return nil, fmt.Errorf("cannot reach %s: %w", cl.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, statusError(resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode answer: %w", err)
		}
	}
	return data, nil
}

// stream sends a request with a raw body and returns the response for the
// caller to read (2xx only; errors are decoded).
func (cl *apiClient) stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, cl.base+path, body)
	if err != nil {
		return nil, err
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	client := *cl.http
	client.Timeout = 0 // large snapshots
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", cl.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, statusError(resp.StatusCode, data)
	}
	return resp, nil
}

// statusError decodes an API error answer.
func statusError(status int, data []byte) error {
	var eb httpapi.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		return &apiStatusError{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return &apiStatusError{Status: status, Message: strings.TrimSpace(string(data))}
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
	if _, err := cl.do(c.Context, method, path, in, &out); err != nil {
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
