// Package apiclient speaks raftguard's HTTP API as a client: the base URL,
// the bearer token, the cluster CA (through the caller's TLS config), the
// write deadline header, JSON bodies and the error body. The command line
// client, a joining node and the nodes' status calls to each other use it.
package apiclient

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/raftguard/raftguard/internal/pki"
)

// HeaderDeadline is the time (RFC 3339, UTC) after which the sender no
// longer waits for a write's answer; a node neither applies nor forwards
// the write after it.
const HeaderDeadline = "X-Raftguard-Deadline"

// Client is a client of one API address.
type Client struct {
	// Base is the API's URL, https://HOST:PORT.
	Base string
	// Token is the admin token sent as a bearer token ("" sends none).
	Token string
	// HTTP sends the requests. Its Timeout, if any, bounds each request
	// and is sent with writes as their deadline (HeaderDeadline).
	HTTP *http.Client
	// Header is added to every request (a joining node's protocol).
	Header http.Header
}

// Error is an error answer of the API: its status and the code and message
// of the error body.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("API answered %d", e.Status)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ErrorFrom decodes an error answer of the API.
func ErrorFrom(status int, data []byte) *Error {
	var eb errorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		return &Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return &Error{Status: status, Message: strings.TrimSpace(string(data))}
}

// Do sends a request (in, if not nil, as JSON) and decodes a JSON answer
// into out (if not nil). It returns the raw body, for answers that are not
// JSON. An answer other than 2xx is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet && c.HTTP.Timeout > 0 {
		// Past this the caller has given up: a write still in flight then
		// (on a cut link, say) must not take effect later.
		req.Header.Set(HeaderDeadline, time.Now().Add(c.HTTP.Timeout).UTC().Format(time.RFC3339Nano))
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, ErrorFrom(resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode answer: %w", err)
		}
	}
	return data, nil
}

// Stream sends a request with a raw body and no time limit (large
// snapshots) and returns a 2xx response for the caller to read and close.
func (c *Client) Stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	hc := *c.HTTP
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, ErrorFrom(resp.StatusCode, data)
	}
	return resp, nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

func (c *Client) transportError(err error) error {
	var uerr x509.UnknownAuthorityError
	if errors.As(err, &uerr) || errors.Is(err, pki.ErrUntrustedPeer) {
		return fmt.Errorf("%s: the server's certificate is not from a known CA: pass --ca FILE (on a server node: DATA_DIR/tls/ca.crt)", c.Base)
	}
	return fmt.Errorf("cannot reach %s: %w", c.Base, err)
}
