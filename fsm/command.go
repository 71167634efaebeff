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

// Command types. Each is registered, with its name, body and apply
// function, in the commands table below; a type with IgnorableFlag set may
// be skipped by a node that does not know it, any other unknown type stops
// the node (see Apply).
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

// How commands evolve. Every replica must apply an entry exactly as every
// other replica does, including replicas of an older version during a
// rolling upgrade. So:
//
//  1. Type numbers and names are only ever appended to the table below; a
//     number is never reused, renumbered or removed.
//  2. A field of a command body is never removed, renamed or retyped, and
//     its meaning never changes.
//  3. Decoding ignores unknown fields (a newer node's entry decodes on an
//     older node), so a new field must have a zero value that means what
//     the command meant without it, and must be left out of the encoding
//     when zero (omitempty or omitzero). A change that cannot be expressed
//     that way is a new command type.
//  4. A new command type that older nodes may skip without their state
//     drifting (it changes nothing they keep) sets IgnorableFlag.
//
// testdata/commands.golden lists every registered type and every field of
// every command body; TestCommandEvolution fails when the table breaks these
// rules, and tells how to record an allowed addition.

// command is one entry of the registration table.
type command struct {
	typ  CommandType
	name string
	// body returns a pointer to a zero command body (the decoder's target;
	// the evolution test reads its fields).
	body func() any
	// apply decodes the body and applies it to the state.
	apply func(s *state, body json.RawMessage) any
}

// commands is the registration table: every command type, once.
var commands = []command{
	register(CmdInit, "init", (*state).applyInit),
	register(CmdRegisterNode, "register-node", (*state).applyRegisterNode),
	register(CmdRemoveNode, "remove-node", (*state).applyRemoveNode),
	register(CmdAddPeer, "add-peer", (*state).applyAddPeer),
	register(CmdUpdatePeer, "update-peer", (*state).applyUpdatePeer),
	register(CmdDeletePeer, "delete-peer", (*state).applyDeletePeer),
	register(CmdSetEndpoints, "set-endpoints", (*state).applySetEndpoints),
	register(CmdSetJoinToken, "set-join-token", (*state).applySetJoinToken),
	register(CmdAddAdminToken, "add-admin-token", (*state).applyAddAdminToken),
	register(CmdRevokeAdminToken, "revoke-admin-token", (*state).applyRevokeAdminToken),
	register(CmdUpdateSettings, "update-settings", (*state).applyUpdateSettings),
	register(CmdSetNodeCert, "set-node-cert", (*state).applySetNodeCert),
}

// register makes a table entry for a command whose body is a T.
func register[T any](t CommandType, name string, fn func(*state, T) any) command {
	return command{
		typ:  t,
		name: name,
		body: func() any { return new(T) },
		apply: func(s *state, body json.RawMessage) any {
			v, err := decodeBody[T](body)
			if err != nil {
				return err
			}
			return fn(s, v)
		},
	}
}

// byType indexes the table.
var byType = func() (idx [256]*command) {
	for i := range commands {
		c := &commands[i]
		if idx[c.typ] != nil {
			panic(fmt.Sprintf("fsm: command type %d registered twice", uint8(c.typ)))
		}
		idx[c.typ] = c
	}
	return idx
}()

// lookup returns the registered command of type t, or nil.
func lookup(t CommandType) *command { return byType[t] }

// decodeBody decodes a command body. Unknown fields are ignored: they come
// from a newer node, and rule 3 above makes ignoring them safe.
func decodeBody[T any](body json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	return v, nil
}

func (t CommandType) String() string {
	if c := lookup(t); c != nil {
		return c.name
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
