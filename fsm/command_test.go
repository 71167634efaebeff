package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

var updateGolden = flag.Bool("update-commands", false, "rewrite testdata/commands.golden from the table (only to record an allowed addition)")

const commandsGolden = "testdata/commands.golden"

// describeCommands lists every registered command and every field of its
// body (recursively through the package's own struct types), one a line:
//
//	TYPE NAME
//	TYPE NAME .json.path GO-TYPE
func describeCommands() []string {
	out, _ := walkCommands()
	return out
}

// omitsZero reports whether the field at path of the command with type
// number typ is left out of the encoding when zero.
func omitsZero(typ, path string) bool {
	_, omit := walkCommands()
	return omit[typ+" "+path]
}

func walkCommands() (out []string, omit map[string]bool) {
	omit = map[string]bool{}
	for _, c := range commands {
		out = append(out, fmt.Sprintf("%d %s", uint8(c.typ), c.name))
		if c.since > 1 {
			out = append(out, fmt.Sprintf("%d %s since=%d", uint8(c.typ), c.name, c.since))
		}
		var walk func(prefix string, t reflect.Type)
		walk = func(prefix string, t reflect.Type) {
			for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
				t = t.Elem()
			}
			if t.Kind() != reflect.Struct || t.PkgPath() != reflect.TypeFor[Init]().PkgPath() {
				return
			}
			for f := range t.Fields() {
				if !f.IsExported() {
					continue
				}
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" {
					continue
				}
				if name == "" {
					name = f.Name
				}
				path := prefix + "." + name
				line := fmt.Sprintf("%d %s %s %s", uint8(c.typ), c.name, path, f.Type)
				if since := f.Tag.Get("since"); since != "" {
					line += " since=" + since
				}
				out = append(out, line)
				_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				omit[fmt.Sprintf("%d %s", uint8(c.typ), path)] = strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
				walk(path, f.Type)
			}
		}
		walk("", reflect.TypeOf(c.body()))
	}
	return out, omit
}

// TestCommandEvolution enforces the rules written beside the command table:
// nothing listed in testdata/commands.golden (types, names, fields and their
// types) changes or disappears; a new type or field must be recorded there.
func TestCommandEvolution(t *testing.T) {
	have := describeCommands()
	if *updateGolden {
		// Keep removed lines: the check below must still fail for them.
		old, _ := os.ReadFile(commandsGolden)
		oldCmds := map[string]bool{}
		for l := range strings.Lines(string(old)) {
			if f := strings.Fields(l); len(f) == 2 {
				oldCmds[f[0]] = true
			}
		}
		for _, h := range have {
			if f := strings.Fields(h); len(f) >= 4 && oldCmds[f[0]] && !strings.Contains(string(old), h) && !omitsZero(f[0], f[2]) {
				t.Fatalf("%q: a field added to an existing command must be left out when zero (omitempty or omitzero)", h)
			}
		}
		merged := slices.Clone(have)
		for l := range strings.Lines(string(old)) {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !slices.Contains(merged, l) {
				merged = append(merged, l)
			}
		}
		body := "# Registered commands and their fields. Lines are only ever added\n# (see the rules beside the command table in command.go).\n" + strings.Join(merged, "\n") + "\n"
		if err := os.WriteFile(commandsGolden, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(commandsGolden)
	if err != nil {
		t.Fatal(err)
	}
	var golden []string
	for l := range strings.Lines(string(raw)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			golden = append(golden, l)
		}
	}
	for _, g := range golden {
		if !slices.Contains(have, g) {
			t.Errorf("%q is gone or changed: a command type, name or field is never removed, renamed or retyped (add a new field or command instead)", g)
		}
	}
	for _, h := range have {
		if !slices.Contains(golden, h) {
			t.Errorf("%q is new: check it against the rules beside the command table (a new field needs a zero value that keeps the old meaning and omitempty/omitzero), then record it with go test ./fsm -run TestCommandEvolution -update-commands", h)
		}
	}
	// The first release's commands; every later one names its protocol.
	first := []CommandType{CmdInit, CmdRegisterNode, CmdRemoveNode, CmdAddPeer, CmdUpdatePeer, CmdDeletePeer,
		CmdSetEndpoints, CmdSetJoinToken, CmdAddAdminToken, CmdRevokeAdminToken, CmdUpdateSettings, CmdSetNodeCert}
	for _, c := range commands {
		if !slices.Contains(first, c.typ) && c.since < 2 {
			t.Errorf("%s was added after the first release: give it the protocol version that introduced it", c.name)
		}
		if c.since < 1 || c.since > ProtocolVersion {
			t.Errorf("%s: since %d is outside 1-%d", c.name, c.since, ProtocolVersion)
		}
	}
	for _, h := range have {
		if f := strings.Fields(h); len(f) == 5 && !omitsZero(f[0], f[2]) {
			t.Errorf("%q: a field with a since tag must be left out when zero (omitempty or omitzero)", h)
		}
	}
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.name] {
			t.Errorf("command name %q registered twice", c.name)
		}
		seen[c.name] = true
	}
}

// TestCommandsIgnoreUnknownFields: an entry written by a newer node, with a
// field this node does not know, applies as it would without the field.
func TestCommandsIgnoreUnknownFields(t *testing.T) {
	for _, c := range commands {
		body, err := json.Marshal(c.body())
		if err != nil {
			t.Fatal(err)
		}
		withNew := append(bytes.TrimSuffix(body, []byte("}")), []byte(`,"field_of_a_newer_version":{"x":[1,2]}}`)...)
		if bytes.Equal(body, []byte("{}")) {
			withNew = []byte(`{"field_of_a_newer_version":{"x":[1,2]}}`)
		}
		for _, b := range [][]byte{body, withNew} {
			h := newHarness(t, "10.99.0.0/24", "")
			res := h.f.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: append([]byte{byte(c.typ)}, b...)})
			if err, ok := res.(error); ok && errors.Is(err, ErrMalformedCommand) {
				t.Errorf("%s: %s: %v", c.name, b, err)
			}
		}
		// Same outcome with and without the unknown field.
		a, b := newHarness(t, "10.99.0.0/24", ""), newHarness(t, "10.99.0.0/24", "")
		ra := a.f.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: append([]byte{byte(c.typ)}, body...)})
		rb := b.f.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: append([]byte{byte(c.typ)}, withNew...)})
		if fmt.Sprint(ra) != fmt.Sprint(rb) || !bytes.Equal(a.snapshotBytes(), b.snapshotBytes()) {
			t.Errorf("%s: an unknown field changed the outcome: %v / %v", c.name, ra, rb)
		}
	}
}

func TestCommandTable(t *testing.T) {
	for _, c := range commands {
		if lookup(c.typ) != &commands[slices.IndexFunc(commands, func(o command) bool { return o.typ == c.typ })] {
			t.Errorf("%s: lookup does not find it", c.name)
		}
		if c.typ.String() != c.name {
			t.Errorf("%d: String() = %q, want %q", uint8(c.typ), c.typ.String(), c.name)
		}
	}
	if lookup(100) != nil || CommandType(100).String() != "type-100" {
		t.Error("an unregistered type is found")
	}
}

func TestCheckProposable(t *testing.T) {
	psk := "x"
	if err := CheckProposable(CmdAddPeer, AddPeer{Name: "a"}, 1); err != nil {
		t.Fatal(err)
	}
	err := CheckProposable(CmdUpdateSettings, UpdateSettings{}, 1)
	if !errors.Is(err, ErrUpgradeRequired) || !strings.Contains(err.Error(), "update-settings needs cluster version 2") {
		t.Fatalf("update-settings at version 1: %v", err)
	}
	if err := CheckProposable(CmdUpdateSettings, UpdateSettings{}, 2); err != nil {
		t.Fatal(err)
	}
	if err := CheckProposable(CmdSetClusterVersion, SetClusterVersion{Version: ProtocolVersion}, 1); err != nil {
		t.Fatal(err)
	}
	if err := CheckProposable(CmdSetClusterVersion, SetClusterVersion{Version: ProtocolVersion + 1}, 1); err == nil {
		t.Fatal("a cluster version beyond this build's was proposable")
	}
	if err := CheckProposable(CommandType(99), struct{}{}, 9); err == nil {
		t.Fatal("an unregistered type was proposable")
	}
	// Fields: a tagged field counts only when set, also inside slices and
	// pointers.
	type inner struct {
		New string `json:"new,omitempty" since:"3"`
	}
	type body struct {
		Old   *string `json:"old,omitempty"`
		Items []inner `json:"items,omitempty"`
	}
	if f, v := newestFieldSet(reflect.ValueOf(body{Old: &psk, Items: []inner{{}}})); v != 1 {
		t.Fatalf("unset tagged field counted: %s %d", f, v)
	}
	if f, v := newestFieldSet(reflect.ValueOf(&body{Items: []inner{{}, {New: "y"}}})); v != 3 || f != "Items.New" {
		t.Fatalf("got %s %d", f, v)
	}
}

func TestClusterVersion(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	v1 := h.snapshotBytes()
	if h.f.ClusterVersion() != 1 || bytes.Contains(v1, []byte("cluster_version")) {
		t.Fatalf("a new cluster is at version %d; snapshot %s", h.f.ClusterVersion(), v1)
	}
	h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: 2, At: t0})
	h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: 1, At: t0}) // never down
	if h.f.ClusterVersion() != 2 {
		t.Fatalf("version %d", h.f.ClusterVersion())
	}
	other := newHarness(t, "10.99.0.0/24", "")
	if err := other.f.Restore(io.NopCloser(bytes.NewReader(h.snapshotBytes()))); err != nil {
		t.Fatal(err)
	}
	if other.f.ClusterVersion() != 2 {
		t.Fatal("restore lost the cluster version")
	}
	future := bytes.Replace(h.snapshotBytes(), []byte(`"cluster_version":2`), []byte(`"cluster_version":99`), 1)
	if err := other.f.Restore(io.NopCloser(bytes.NewReader(future))); !errors.Is(err, ErrSnapshotVersion) {
		t.Fatalf("a state of a newer cluster version restored: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a cluster version beyond this build's did not stop the node")
		}
	}()
	h.apply(CmdSetClusterVersion, SetClusterVersion{Version: ProtocolVersion + 1, At: t0})
}

func TestVIPModeGated(t *testing.T) {
	bgp := VIPModeBGP
	err := CheckProposable(CmdUpdateSettings, UpdateSettings{VIPMode: &bgp}, 5)
	if !errors.Is(err, ErrUpgradeRequired) || !strings.Contains(err.Error(), "VIPMode") {
		t.Fatalf("vip mode at cluster version 5: %v", err)
	}
	if err := CheckProposable(CmdUpdateSettings, UpdateSettings{VIPMode: &bgp}, 6); err != nil {
		t.Fatal(err)
	}
	// An init without a mode stays proposable on a fresh cluster (version 1).
	if err := CheckProposable(CmdInit, Init{Settings: Settings{MTU: 1420}}, 1); err != nil {
		t.Fatal(err)
	}
	if err := CheckProposable(CmdInit, Init{Settings: Settings{VIPMode: bgp}}, 1); !errors.Is(err, ErrUpgradeRequired) {
		t.Fatalf("init with a vip mode at version 1: %v", err)
	}
}

func TestVIPModeRules(t *testing.T) {
	for _, m := range append([]string{""}, VIPModes...) {
		if err := ValidateVIPMode(m); err != nil {
			t.Errorf("%q: %v", m, err)
		}
	}
	for _, m := range []string{"ARP", "bgp ", "l2", "hook;rm"} {
		if err := ValidateVIPMode(m); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted: %v", m, err)
		}
	}
	arp, hook := VIPModeARP, VIPModeHook
	s := Settings{}.Updated(UpdateSettings{VIPMode: &hook})
	if s.Mode() != VIPModeHook {
		t.Fatalf("mode %q", s.Mode())
	}
	// The default is stored as it was before protocol 4: empty.
	if s = s.Updated(UpdateSettings{VIPMode: &arp}); s.VIPMode != "" || s.Mode() != VIPModeARP {
		t.Fatalf("arp stored as %q", s.VIPMode)
	}
}

// TestCloudVIPModesGated: nodes before protocol 10 refuse the hetzner and
// aws modes in Apply, so a cluster with such a node must neither propose
// them nor apply them (an older replica would keep the old mode while the
// newer ones switched).
func TestCloudVIPModesGated(t *testing.T) {
	for _, mode := range []string{VIPModeHetzner, VIPModeAWS} {
		m := mode
		err := CheckProposable(CmdUpdateSettings, UpdateSettings{VIPMode: &m}, ProtocolVersion-1)
		if !errors.Is(err, ErrUpgradeRequired) || !strings.Contains(err.Error(), m) {
			t.Fatalf("%s at cluster version %d: %v", m, ProtocolVersion-1, err)
		}
		if err := CheckProposable(CmdUpdateSettings, &UpdateSettings{VIPMode: &m}, ProtocolVersion-1); !errors.Is(err, ErrUpgradeRequired) {
			t.Fatalf("%s (pointer body): %v", m, err)
		}
		if err := CheckProposable(CmdInit, Init{Settings: Settings{VIPMode: m}}, 9); !errors.Is(err, ErrUpgradeRequired) {
			t.Fatalf("init with %s at version 9: %v", m, err)
		}
		if err := CheckProposable(CmdUpdateSettings, UpdateSettings{VIPMode: &m}, cloudVIPModesSince); err != nil {
			t.Fatalf("%s at cluster version %d: %v", m, cloudVIPModesSince, err)
		}

		// Apply: a cluster still at version 9 (an older member) refuses the
		// mode and keeps its settings; from version 10 on it is applied.
		h := newHarness(t, "10.99.0.0/24", "")
		h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: 9, At: t0})
		before := h.f.Settings()
		res := h.apply(CmdUpdateSettings, UpdateSettings{VIPMode: &m, At: t0})
		if err, _ := res.(error); !errors.Is(err, ErrUpgradeRequired) {
			t.Fatalf("%s applied at cluster version 9: %v", m, res)
		}
		if got := h.f.Settings(); got.VIPMode != before.VIPMode {
			t.Fatalf("refused %s changed the mode to %q", m, got.VIPMode)
		}
		h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: cloudVIPModesSince, At: t0})
		h.mustOK(CmdUpdateSettings, UpdateSettings{VIPMode: &m, At: t0})
		if got := h.f.Settings().Mode(); got != m {
			t.Fatalf("mode %q after applying %s", got, m)
		}
	}
	// The aws mode moves an IPv4 private address only: a cluster with an
	// IPv6 VIP refuses it, and keeps its mode.
	h := newHarness(t, "10.99.0.0/24", "")
	h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: cloudVIPModesSince, At: t0})
	st := h.f.Settings()
	st.VIPs = append(st.VIPs, netip.MustParsePrefix("2001:db8::10/64"))
	st.VIPMode = VIPModeAWS
	if err := ValidateSettings(&st); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "IPv4") {
		t.Fatalf("aws with an IPv6 VIP: %v", err)
	}
	st.VIPMode = VIPModeHetzner
	if err := ValidateSettings(&st); err != nil {
		t.Fatalf("hetzner with an IPv6 VIP: %v", err)
	}
	// The older modes stay as they were.
	for _, m := range []string{"", VIPModeARP, VIPModeBGP, VIPModeHook} {
		if VIPModeSince(m) != 1 {
			t.Errorf("%q: since %d", m, VIPModeSince(m))
		}
	}
}
