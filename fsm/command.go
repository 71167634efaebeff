package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
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
	// CmdSetClusterVersion raises the cluster version (protocol 2).
	CmdSetClusterVersion CommandType = 13
	// CmdCreateSession and CmdDeleteSession record and end web console
	// sessions (protocol 3).
	CmdCreateSession CommandType = 14
	CmdDeleteSession CommandType = 15
	// CmdAudit records audit entries, with the write they describe
	// (protocol 4).
	CmdAudit CommandType = 16
	// CmdSetPeerStatus records peers' endpoints, handshakes and traffic
	// totals (protocol 7).
	CmdSetPeerStatus CommandType = 17
	// CmdExpirePeers disables peers whose expiry has passed (protocol 8).
	CmdExpirePeers CommandType = 18
	// CmdAddPeers creates many peers in one entry (protocol 9).
	CmdAddPeers CommandType = 19

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
//  5. A command or field that a node of an older protocol version cannot
//     apply exactly as a newer one does (an unknown type stops an older
//     node; an ignored field changes the outcome) names the protocol
//     version that introduced it: the table's since column for a command,
//     a `since:"N"` struct tag for a field. ProtocolVersion is raised with
//     it. Nodes propose it only once the replicated cluster version has
//     reached N, which the leader raises only when every member runs a
//     version that supports N (CheckProposable; the upgrade gate).
//  6. Apply's rules for a command that older nodes also apply never get
//     stricter or looser without a check of the cluster version inside
//     Apply: older replicas would accept what newer ones reject.
//
// testdata/commands.golden lists every registered type and every field of
// every command body; TestCommandEvolution fails when the table breaks these
// rules, and tells how to record an allowed addition.

// ProtocolVersion is the newest command protocol this build applies and
// proposes. Protocol 1 is the first release's set of commands; protocol 2
// adds the cluster version itself and lets cluster settings change;
// protocol 3 adds web console sessions; protocol 4 adds the audit log and
// Apply's text rules (rules.go); protocol 5 adds the NAT setting; protocol
// 6 adds the VIP mode (Settings.VIPMode, UpdateSettings.VIPMode); protocol
// 7 records peer status (set-peer-status); protocol 8 adds peer expiry;
// protocol 9 adds bulk peer creation (add-peers); protocol 10 adds the
// hetzner and aws VIP modes (values of Settings.VIPMode that older nodes
// refuse: VIPModeSince).
const ProtocolVersion = 10

// command is one entry of the registration table.
type command struct {
	typ  CommandType
	name string
	// since is the protocol version from which nodes may propose it.
	since int
	// body returns a pointer to a zero command body (the decoder's target;
	// the evolution test reads its fields).
	body func() any
	// apply decodes the body and applies it to the state.
	apply func(s *state, body json.RawMessage) any
}

// commands is the registration table: every command type, once.
var commands = []command{
	register(CmdInit, "init", 1, (*state).applyInit),
	register(CmdRegisterNode, "register-node", 1, (*state).applyRegisterNode),
	register(CmdRemoveNode, "remove-node", 1, (*state).applyRemoveNode),
	register(CmdAddPeer, "add-peer", 1, (*state).applyAddPeer),
	register(CmdUpdatePeer, "update-peer", 1, (*state).applyUpdatePeer),
	register(CmdDeletePeer, "delete-peer", 1, (*state).applyDeletePeer),
	register(CmdSetEndpoints, "set-endpoints", 1, (*state).applySetEndpoints),
	register(CmdSetJoinToken, "set-join-token", 1, (*state).applySetJoinToken),
	register(CmdAddAdminToken, "add-admin-token", 1, (*state).applyAddAdminToken),
	register(CmdRevokeAdminToken, "revoke-admin-token", 1, (*state).applyRevokeAdminToken),
	// Protocol 1 nodes apply update-settings but never proposed it: they
	// have no route for it, so a write forwarded to one would fail.
	register(CmdUpdateSettings, "update-settings", 2, (*state).applyUpdateSettings),
	register(CmdSetNodeCert, "set-node-cert", 1, (*state).applySetNodeCert),
	register(CmdSetClusterVersion, "set-cluster-version", 2, (*state).applySetClusterVersion),
	register(CmdCreateSession, "create-session", 3, (*state).applyCreateSession),
	register(CmdDeleteSession, "delete-session", 3, (*state).applyDeleteSession),
	register(CmdAudit, "audit", 4, (*state).applyAudit),
	register(CmdSetPeerStatus, "set-peer-status", 7, (*state).applySetPeerStatus),
	register(CmdExpirePeers, "expire-peers", 8, (*state).applyExpirePeers),
	register(CmdAddPeers, "add-peers", 9, (*state).applyAddPeers),
}

// register makes a table entry for a command whose body is a T.
func register[T any](t CommandType, name string, since int, fn func(*state, T) any) command {
	return command{
		typ:   t,
		name:  name,
		since: since,
		body:  func() any { return new(T) },
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

// ErrUpgradeRequired is returned by CheckProposable for a command or field
// that some member of the cluster cannot apply yet.
var ErrUpgradeRequired = errors.New("upgrade required")

// CheckProposable reports whether a node may propose command t with body
// when the replicated cluster version is clusterVersion: the command, and
// every field set in body, must belong to a protocol version every member
// supports (rule 5 above). Set-cluster-version is checked by its proposer,
// the leader, against every member's reported version instead.
func CheckProposable(t CommandType, body any, clusterVersion int) error {
	c := lookup(t)
	if c == nil {
		return fmt.Errorf("%w: command %s is not registered", ErrInvalid, t)
	}
	if t == CmdSetClusterVersion {
		if v, ok := body.(SetClusterVersion); !ok || v.Version > ProtocolVersion {
			return fmt.Errorf("%w: this node supports cluster version %d at most", ErrInvalid, ProtocolVersion)
		}
		return nil
	}
	if c.since > clusterVersion {
		return upgradeRequired(c.name, c.since, clusterVersion)
	}
	if field, since := newestFieldSet(reflect.ValueOf(body)); since > clusterVersion {
		return upgradeRequired(c.name+" field "+field, since, clusterVersion)
	}
	if mode := proposedVIPMode(body); VIPModeSince(mode) > clusterVersion {
		return upgradeRequired("VIP mode "+mode, VIPModeSince(mode), clusterVersion)
	}
	return nil
}

// proposedVIPMode is the VIP mode a command body sets ("" when none): a
// value that older versions refuse even though the field is older.
func proposedVIPMode(body any) string {
	switch b := body.(type) {
	case UpdateSettings:
		if b.VIPMode != nil {
			return *b.VIPMode
		}
	case *UpdateSettings:
		if b != nil && b.VIPMode != nil {
			return *b.VIPMode
		}
	case Init:
		return b.Settings.VIPMode
	case *Init:
		if b != nil {
			return b.Settings.VIPMode
		}
	}
	return ""
}

func upgradeRequired(what string, need, have int) error {
	return fmt.Errorf("%w: %s needs cluster version %d, the cluster runs version %d; upgrade every node (it is raised automatically once all run a version that supports it)", ErrUpgradeRequired, what, need, have)
}

// newestFieldSet returns the non-zero field of v (recursively) with the
// highest since tag, and that version (1 when none is tagged).
func newestFieldSet(v reflect.Value) (string, int) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "", 1
		}
		v = v.Elem()
	}
	best, bestV := "", 1
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() || v.Field(i).IsZero() {
				continue
			}
			if tag := f.Tag.Get("since"); tag != "" {
				if n, err := strconv.Atoi(tag); err == nil && n > bestV {
					best, bestV = f.Name, n
				}
			}
			if name, n := newestFieldSet(v.Field(i)); n > bestV {
				best, bestV = f.Name+"."+name, n
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if name, n := newestFieldSet(v.Index(i)); n > bestV {
				best, bestV = name, n
			}
		}
	}
	return best, bestV
}

// CommandSince is the protocol version from which command t may be
// proposed (0 for an unregistered type).
func CommandSince(t CommandType) int {
	if c := lookup(t); c != nil {
		return c.since
	}
	return 0
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
	// ExpiresAt is when the peer expires (zero: never).
	ExpiresAt time.Time `json:"expires_at,omitzero" since:"8"`
	At        time.Time `json:"at"`
}

// UpdatePeer changes the fields that are set.
type UpdatePeer struct {
	Name         string          `json:"name"`
	Enabled      *bool           `json:"enabled,omitempty"`
	AllowedIPs   *[]netip.Prefix `json:"allowed_ips,omitempty"`
	PresharedKey *string         `json:"preshared_key,omitempty"`
	// ExpiresAt sets a new expiry; the zero time means never. It clears
	// the peer's expired mark (the peer stays disabled until enabled).
	ExpiresAt *time.Time `json:"expires_at,omitempty" since:"8"`
	At        time.Time  `json:"at"`
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

// PeerStatusUpdate is one peer's status as the leader's interface reports
// it, with the traffic counters turned into totals over all leaders.
type PeerStatusUpdate struct {
	Name string `json:"name"`
	// Endpoint is left as recorded when empty.
	Endpoint      string    `json:"endpoint,omitempty"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       uint64    `json:"rx_bytes,omitempty"`
	TxBytes       uint64    `json:"tx_bytes,omitempty"`
}

// SetPeerStatus records peers' status. Handshake times and traffic totals
// never go backwards: each is kept at the larger of the recorded and the
// given value. Unknown names (deleted meanwhile) are skipped.
type SetPeerStatus struct {
	Updates []PeerStatusUpdate `json:"updates"`
	At      time.Time          `json:"at"`
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
	// NAT turns masquerading on the leader on or off (protocol 5: an
	// older node would ignore it).
	NAT *bool `json:"nat,omitempty" since:"5"`
	// VIPMode changes the VIP mode (protocol 6).
	VIPMode *string   `json:"vip_mode,omitempty" since:"6"`
	At      time.Time `json:"at"`
}

// SetClusterVersion raises the cluster version: from then on, nodes may
// propose the commands and fields of protocol versions up to Version. The
// leader proposes it once every member reports that it supports Version.
// The version never goes down; a lower or equal Version changes nothing.
type SetClusterVersion struct {
	Version int       `json:"version"`
	At      time.Time `json:"at"`
}
