// Package apiclient speaks raftguard's HTTP API as a client: the base URL,
// the bearer token, the cluster CA (through the caller's TLS config), the
// write deadline header, JSON bodies and the error body. The command line
// client, a joining node, the nodes' calls to each other (status, writes
// forwarded to the leader, audit records) and the tests use it.
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

// Answer is an answer of the API, whatever its status.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Err is nil for a 2xx answer and the answer's *Error otherwise.
func (a *Answer) Err() error {
	if a.Status/100 == 2 {
		return nil
	}
	return ErrorFrom(a.Status, a.Body)
}

// Do sends a request (in, if not nil, as JSON) and decodes a JSON answer
// into out (if not nil). It returns the raw body, for answers that are not
// JSON. An answer other than 2xx is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	ans, err := c.Call(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	if err := ans.Err(); err != nil {
		return nil, err
	}
	if out != nil && len(ans.Body) > 0 {
		if err := json.Unmarshal(ans.Body, out); err != nil {
			return nil, fmt.Errorf("decode answer: %w", err)
		}
	}
	return ans.Body, nil
}

// Call sends a request as Do does and returns the answer whatever its
// status. An error means no answer: the request may or may not have
// reached the node.
func (c *Client) Call(ctx context.Context, method, path string, in any) (*Answer, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	h := http.Header{}
	if in != nil {
		h.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet && c.HTTP.Timeout > 0 {
		// Past this the caller has given up: a write still in flight then
		// (on a cut link, say) must not take effect later.
		h.Set(HeaderDeadline, time.Now().Add(c.HTTP.Timeout).UTC().Format(time.RFC3339Nano))
	}
	resp, err := c.Send(ctx, method, path, h, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Answer{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// Stream sends a request with a raw body and no time limit (large
// snapshots) and returns a 2xx response for the caller to read and close.
func (c *Client) Stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	hc := *c.HTTP
	hc.Timeout = 0
	untimed := *c
	untimed.HTTP = &hc
	resp, err := untimed.Send(ctx, method, path, http.Header{"Content-Type": {"application/octet-stream"}}, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, ErrorFrom(resp.StatusCode, data)
	}
	return resp, nil
}

// Send sends a request as it is given: header and body unchanged (no JSON,
// no deadline added), and returns the answer whatever its status, for the
// caller to read and close. A node that forwards a request to the leader
// relays that answer to its own caller as it came.
func (c *Client) Send(ctx context.Context, method, path string, header http.Header, body io.Reader) (*http.Response, error) {
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
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	return resp, nil
}

func (c *Client) transportError(err error) error {
	var uerr x509.UnknownAuthorityError
	if errors.As(err, &uerr) || errors.Is(err, pki.ErrUntrustedPeer) {
		return fmt.Errorf("%s: the server's certificate is not from a known CA: pass --ca FILE (on a server node: DATA_DIR/tls/ca.crt)", c.Base)
	}
	return fmt.Errorf("cannot reach %s: %w", c.Base, err)
}
