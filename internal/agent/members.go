package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/apiclient"
)

// memberStatusTimeout bounds one call for another node's status.
const memberStatusTimeout = 1500 * time.Millisecond

// newPeerClient returns the client for this node's calls to other nodes'
// APIs, over the nodes' mutual TLS.
func newPeerClient(tc *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// MemberStatus asks node id, through its API, for its own status.
func (a *Agent) MemberStatus(ctx context.Context, id string) (httpapi.NodeStatus, error) {
	if id == a.node.NodeID {
		st := a.Status()
		st.StateIndex, st.StateDigest = a.state.Digest()
		return st, nil
	}
	n, ok := a.state.Node(id)
	if !ok || n.APIAddr == "" {
		return httpapi.NodeStatus{}, fmt.Errorf("node %s has no registered API address", id)
	}
	return a.NodeStatusAt(ctx, n.APIAddr)
}

// NodeStatusAt asks the node whose API is at addr for its own status,
// briefly (memberStatusTimeout).
func (a *Agent) NodeStatusAt(ctx context.Context, addr string) (httpapi.NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, memberStatusTimeout)
	defer cancel()
	c := apiclient.Client{Base: "https://" + addr, HTTP: a.peers}
	var st httpapi.NodeStatus
	_, err := c.Do(ctx, http.MethodGet, "/v1/node", nil, &st)
	var ae *apiclient.Error
	switch {
	case err == nil:
		return st, nil
	case errors.As(err, &ae):
		return st, fmt.Errorf("answered %d %s", ae.Status, http.StatusText(ae.Status))
	}
	return st, fmt.Errorf("unreachable: %w", err)
}
