package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// CommandType is the first byte of every Raft log entry raftguard writes.
// Numbers are only ever appended; a number is never reused or renumbered.
type CommandType uint8

// Command types. A type with IgnorableFlag set may be skipped by a node that
// does not know it; any other unknown type stops the node (see Apply).
const (
	CmdInit             CommandType = 1
	CmdRegisterNode     CommandType = 2
	CmdRemoveNode       CommandType = 3
	CmdAddPeer          CommandType = 4
	CmdUpdatePeer       CommandType = 5
	CmdDeletePeer       CommandType = 6
	CmdSetEndpoints     CommandType = 7
	CmdSetJoinToken     CommandType = 8
	CmdAddAdminToken    CommandType = 9
	CmdRevokeAdminToken CommandType = 10
	CmdUpdateSettings   CommandType = 11
	// CmdSetNodeCert is ignorable: an older node does not track node
	// certificates (and so does not refuse revoked ones) but stays in step.
	CmdSetNodeCert CommandType = IgnorableFlag | 12

	// IgnorableFlag marks a command type that older nodes may ignore.
	IgnorableFlag CommandType = 0x80
)

func (t CommandType) String() string {
	switch t {
	case CmdInit:
		return "init"
	case CmdRegisterNode:
		return "register-node"
	case CmdRemoveNode:
		return "remove-node"
	case CmdAddPeer:
		return "add-peer"
	case CmdUpdatePeer:
		return "update-peer"
	case CmdDeletePeer:
		return "delete-peer"
	case CmdSetEndpoints:
		return "set-endpoints"
	case CmdSetJoinToken:
		return "set-join-token"
	case CmdAddAdminToken:
		return "add-admin-token"
	case CmdRevokeAdminToken:
		return "revoke-admin-token"
	case CmdUpdateSettings:
		return "update-settings"
	case CmdSetNodeCert:
		return "set-node-cert"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// ErrMalformedCommand is returned by Decode for an entry that is empty or
// whose body is not a JSON object.
var ErrMalformedCommand = errors.New("malformed command")

// Encode frames a command: one type byte followed by the JSON body.
func Encode(t CommandType, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	out := make([]byte, 0, len(b)+1)
	out = append(out, byte(t))
	return append(out, b...), nil
}

// Decode splits a log entry into its type and JSON body. It checks the
// framing only; the body is decoded by the command's handler.
func Decode(entry []byte) (CommandType, json.RawMessage, error) {
	if len(entry) < 3 {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrMalformedCommand, len(entry))
	}
	body := entry[1:]
	if body[0] != '{' || !json.Valid(body) {
		return CommandType(entry[0]), nil, fmt.Errorf("%w: body of %s is not a JSON object", ErrMalformedCommand, CommandType(entry[0]))
	}
	return CommandType(entry[0]), json.RawMessage(body), nil
}

// Init creates the cluster: the shared WireGuard key, settings, the cluster
// CA, the join token hash and the first admin token. It is applied once.
type Init struct {
	Settings   Settings   `json:"settings"`
	CACertPEM  string     `json:"ca_cert_pem"`
	CAKeyPEM   string     `json:"ca_key_pem"`
	JoinToken  string     `json:"join_token"`
	AdminToken AdminToken `json:"admin_token"`
	At         time.Time  `json:"at"`
}

// RegisterNode records (or updates) a node's addresses.
type RegisterNode struct {
	ID       string    `json:"id"`
	RaftAddr string    `json:"raft_addr"`
	APIAddr  string    `json:"api_addr"`
	At       time.Time `json:"at"`
}

// RemoveNode forgets a node and revokes its certificate.
type RemoveNode struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// SetNodeCert records the certificate the cluster CA issued to node ID,
// identified by the hex SHA-256 of its DER encoding. A different certificate
// recorded for the node before is revoked: the node holds a new identity. A
// revoked certificate cannot be recorded again.
type SetNodeCert struct {
	ID          string    `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	At          time.Time `json:"at"`
}

// AddPeer creates a peer. Without Addresses, the peer gets the lowest free
// address of each configured pool. Retrying an AddPeer with the same name and
// public key returns the existing peer (AddPeerResult.Created is false).
type AddPeer struct {
	Name         string         `json:"name"`
	PublicKey    string         `json:"public_key"`
	PresharedKey string         `json:"preshared_key,omitempty"`
	Addresses    []netip.Prefix `json:"addresses,omitempty"`
	AllowedIPs   []netip.Prefix `json:"allowed_ips,omitempty"`
	Enabled      bool           `json:"enabled"`
	At           time.Time      `json:"at"`
}

// UpdatePeer changes the fields that are set.
type UpdatePeer struct {
	Name         string          `json:"name"`
	Enabled      *bool           `json:"enabled,omitempty"`
	AllowedIPs   *[]netip.Prefix `json:"allowed_ips,omitempty"`
	PresharedKey *string         `json:"preshared_key,omitempty"`
	At           time.Time       `json:"at"`
}

// DeletePeer removes a peer and frees its addresses.
type DeletePeer struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

// EndpointUpdate is one peer's last seen endpoint and handshake.
type EndpointUpdate struct {
	Name          string    `json:"name"`
	Endpoint      string    `json:"endpoint"`
	LastHandshake time.Time `json:"last_handshake"`
}

// SetEndpoints records peers' latest endpoints, as seen by the leader's
// interface. Unknown names (deleted meanwhile) are skipped.
type SetEndpoints struct {
	Updates []EndpointUpdate `json:"updates"`
	At      time.Time        `json:"at"`
}

// SetJoinToken replaces the join token. The token is kept whole (like the
// CA key and the server key, it is replicated state) so that any node can
// show it to an admin.
type SetJoinToken struct {
	Token string    `json:"token"`
	At    time.Time `json:"at"`
}

// AddAdminToken adds an admin API token (its hash).
type AddAdminToken struct {
	Token AdminToken `json:"token"`
	At    time.Time  `json:"at"`
}

// RevokeAdminToken removes an admin API token by ID.
type RevokeAdminToken struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// UpdateSettings changes the cluster settings that may change after
// bootstrap. Unset fields stay as they are.
type UpdateSettings struct {
	Endpoint         *string         `json:"endpoint,omitempty"`
	ClientAllowedIPs *[]netip.Prefix `json:"client_allowed_ips,omitempty"`
	ClientDNS        *[]string       `json:"client_dns,omitempty"`
	MTU              *int            `json:"mtu,omitempty"`
	Keepalive        *int            `json:"keepalive,omitempty"`
	At               time.Time       `json:"at"`
}
