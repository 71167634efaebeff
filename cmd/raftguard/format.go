package main

import (
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raftguard/raftguard/httpapi"
)

// The functions in this file turn API answers into text; they are pure so
// tests can call them.

func prefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "-"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func table(rows [][]string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	return b.String()
}

func formatPeers(peers []httpapi.PeerView) string {
	return formatPeersAt(peers, time.Now())
}

func formatPeersAt(peers []httpapi.PeerView, now time.Time) string {
	if len(peers) == 0 {
		return "no peers\n"
	}
	rows := [][]string{{"NAME", "ADDRESSES", "ENABLED", "ENDPOINT", "HANDSHAKE", "PUBLIC KEY"}}
	for _, p := range peers {
		rows = append(rows, []string{p.Name, prefixes(p.Addresses), yesNo(p.Enabled), orDash(p.Endpoint), ago(p.LatestHandshake, now), p.PublicKey})
	}
	return table(rows)
}

func formatPeer(p httpapi.PeerView) string {
	return formatPeerAt(p, time.Now())
}

func formatPeerAt(p httpapi.PeerView, now time.Time) string {
	return table([][]string{
		{"name:", p.Name},
		{"public key:", p.PublicKey},
		{"addresses:", prefixes(p.Addresses)},
		{"allowed ips:", prefixes(p.AllowedIPs)},
		{"enabled:", yesNo(p.Enabled)},
		{"preshared key:", yesNo(p.HasPresharedKey)},
		{"endpoint:", orDash(p.Endpoint)},
		{"latest handshake:", ago(p.LatestHandshake, now)},
		{"online:", yesNo(p.Online)},
		{"expires:", expires(p)},
		{"transfer:", fmt.Sprintf("%d B received, %d B sent", p.RxBytes, p.TxBytes)},
		{"created:", p.CreatedAt.Format(time.RFC3339)},
		{"updated:", p.UpdatedAt.Format(time.RFC3339)},
	})
}

// formatCreatedPeer shows a new peer. With generated keys, stdout gets the
// client config alone (so `peer add NAME > NAME.conf` works) and note, for
// stderr, says it holds the only copy of the private key.
func formatCreatedPeer(r httpapi.CreatePeerResponse) (stdout, note string) {
	summary := fmt.Sprintf("peer %s: %s\n", r.Name, prefixes(r.Addresses))
	if r.Config == "" {
		return summary, ""
	}
	return r.Config, summary + "The client config below holds the only copy of the private key: save it now.\n"
}

func formatCluster(st httpapi.ClusterStatus) string {
	var b strings.Builder
	mode := ""
	for _, n := range st.Nodes {
		if n.Reachable && n.VIPMode != "" {
			mode = n.VIPMode
			break
		}
	}
	if mode != "" {
		mode = "   VIP mode: " + mode
	}
	fmt.Fprintf(&b, "leader: %s   term: %d   VIP holder: %s%s   cluster version: %d\n\n", orDash(st.LeaderID), st.Term, orDash(st.VIPHolder), mode, max(st.ClusterVersion, 1))
	var notes []string
	rows := [][]string{{"NODE", "ROLE", "VOTER", "RAFT", "API", "LAST", "APPLIED", "VIP", "INTERFACE", "VERSION", "PROTOCOL", "STATE"}}
	for _, n := range st.Nodes {
		role, iface := n.Role, "down"
		if !n.Reachable {
			role = "unreachable"
			iface = "?"
		} else if n.InterfaceUp {
			iface = "up"
		}
		if n.Dataplane == "none" {
			iface = "none"
		}
		proto := "-"
		if n.Reachable {
			proto = fmt.Sprint(n.NodeProtocol())
		}
		rows = append(rows, []string{n.NodeID, role, yesNo(n.Voter), orDash(n.RaftAddr), orDash(n.APIAddr),
			fmt.Sprint(n.LastIndex), fmt.Sprint(n.AppliedIndex), vipCell(n.NodeStatus), iface, orDash(n.Version), proto, shortDigest(n.StateDigest)})
		if n.VIPError != "" {
			notes = append(notes, fmt.Sprintf("%s: VIP mode %s failing, retrying: %s", n.NodeID, n.VIPMode, n.VIPError))
		}
	}
	b.WriteString(table(rows))
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

// vipCell says whether a node holds the VIP: "yes" when it claims it and
// its VIP mode really delivers it, "pending" when it claims it but the mode
// has not (yet) succeeded, "no" otherwise. A node that does not report a
// mode (an older version) shows its claim alone.
func vipCell(n httpapi.NodeStatus) string {
	switch {
	case !n.VIPHolder:
		return "no"
	case n.VIPMode == "" || n.VIPHeld:
		return "yes"
	}
	return "pending"
}

// shortDigest is the first 12 hex digits of a state digest: enough to see
// at a glance whether the replicas agree.
func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return orDash(d)
}

func formatTokens(tokens []httpapi.TokenView) string {
	if len(tokens) == 0 {
		return "no admin tokens\n"
	}
	rows := [][]string{{"ID", "NAME", "CREATED"}}
	for _, t := range tokens {
		rows = append(rows, []string{t.ID, orDash(t.Name), t.CreatedAt.Format(time.RFC3339)})
	}
	return table(rows)
}

func formatSettings(s httpapi.SettingsView) string {
	dns := strings.Join(s.ClientDNS, ",")
	return table([][]string{
		{"public key:", s.PublicKey},
		{"listen port:", fmt.Sprint(s.ListenPort)},
		{"VIPs:", prefixes(s.VIPs)},
		{"pool:", prefixes([]netip.Prefix{s.Pool})},
		{"pool6:", orDash(poolString(s.Pool6))},
		{"endpoint:", s.Endpoint},
		{"client allowed IPs:", prefixes(s.ClientAllowedIPs)},
		{"client DNS:", orDash(dns)},
		{"MTU:", fmt.Sprint(s.MTU)},
		{"keepalive:", fmt.Sprint(s.Keepalive)},
		{"NAT:", onOff(s.NAT)},
		{"VIP mode:", orDash(s.VIPMode)},
	})
}

func poolString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func expires(p httpapi.PeerView) string {
	switch {
	case p.ExpiresAt == nil:
		return "never"
	case p.Expired:
		return "expired " + p.ExpiresAt.Format(time.RFC3339)
	default:
		return p.ExpiresAt.Format(time.RFC3339)
	}
}
