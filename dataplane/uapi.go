package dataplane

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// This file speaks WireGuard's cross-platform configuration protocol (UAPI,
// https://www.wireguard.com/xplatform/#configuration-protocol) as text:
// rendering a plan for IpcSet and parsing IpcGet's answer. The text holds
// keys in hex; it is never logged and never put in an error.

// uapiText renders p as an IpcSet body. It never uses replace_peers: each
// peer is removed (remove=true), updated (update_only=true) or created on its
// own, so the device's other peers are not touched.
func uapiText(p *plan) string {
	var b strings.Builder
	b.Grow(64 + len(p.peers)*200)
	key := func(name string, k *wgtypes.Key) {
		b.WriteString(name)
		b.WriteByte('=')
		var buf [64]byte
		hex.Encode(buf[:], k[:])
		b.Write(buf[:])
		b.WriteByte('\n')
	}
	if p.privateKey != nil {
		key("private_key", p.privateKey)
	}
	if p.listenPort != 0 {
		fmt.Fprintf(&b, "listen_port=%d\n", p.listenPort)
	}
	for i := range p.peers {
		op := &p.peers[i]
		key("public_key", &op.key)
		switch op.kind {
		case opRemove:
			b.WriteString("remove=true\n")
			continue
		case opUpdate:
			b.WriteString("update_only=true\n")
		case opCreate:
			// The peer is new to us; should the device hold it anyway,
			// its old allowed IPs must go.
			b.WriteString("replace_allowed_ips=true\n")
		}
		if op.psk != nil {
			key("preshared_key", op.psk)
		}
		if op.kind == opCreate && op.endpoint.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", op.endpoint)
		}
		if op.kind == opCreate {
			for _, a := range op.allowedIPs {
				fmt.Fprintf(&b, "allowed_ip=%s\n", a)
			}
			continue
		}
		for _, a := range op.delIPs {
			fmt.Fprintf(&b, "allowed_ip=-%s\n", a)
		}
		for _, a := range op.addIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	return b.String()
}

// uapiDump is a parsed IpcGet answer.
type uapiDump struct {
	dev   devState // privateKey, listenPort and peers (psk, allowed IPs)
	stats []PeerStats
}

// parseUAPI parses an IpcGet answer. Errors name the line number, never
// the line (it may hold a key).
func parseUAPI(text string) (*uapiDump, error) {
	d := &uapiDump{dev: devState{peers: map[wgtypes.Key]*peerState{}}}
	var (
		cur *peerState
		st  *PeerStats
		sec int64
	)
	parseHexKey := func(v string) (wgtypes.Key, bool) {
		var k wgtypes.Key
		if len(v) != 64 {
			return k, false
		}
		_, err := hex.Decode(k[:], []byte(v))
		return k, err == nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("uapi answer line %d: no '='", line)
		}
		bad := func() error { return fmt.Errorf("uapi answer line %d: bad %s value", line, k) }
		if k == "public_key" {
			key, ok := parseHexKey(v)
			if !ok {
				return nil, bad()
			}
			cur = &peerState{}
			d.dev.peers[key] = cur
			d.stats = append(d.stats, PeerStats{PublicKey: base64.StdEncoding.EncodeToString(key[:])})
			st = &d.stats[len(d.stats)-1]
			continue
		}
		if cur == nil {
			switch k {
			case "private_key":
				key, ok := parseHexKey(v)
				if !ok {
					return nil, bad()
				}
				d.dev.privateKey = key
			case "listen_port":
				n, err := strconv.Atoi(v)
				if err != nil {
					return nil, bad()
				}
				d.dev.listenPort = n
			case "errno":
				if v != "0" {
					return nil, fmt.Errorf("uapi answer: errno=%s", v)
				}
			}
			continue
		}
		switch k {
		case "preshared_key":
			key, ok := parseHexKey(v)
			if !ok {
				return nil, bad()
			}
			cur.psk = key
		case "endpoint":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return nil, bad()
			}
			st.Endpoint = ap
		case "last_handshake_time_sec":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, bad()
			}
			sec = n
		case "last_handshake_time_nsec":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, bad()
			}
			if sec != 0 || n != 0 {
				st.LastHandshake = time.Unix(sec, n)
			}
			sec = 0
		case "rx_bytes":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, bad()
			}
			st.RxBytes = n
		case "tx_bytes":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, bad()
			}
			st.TxBytes = n
		case "allowed_ip":
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, bad()
			}
			cur.allowedIPs = append(cur.allowedIPs, p.Masked())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("uapi answer: %w", err)
	}
	for _, p := range d.dev.peers {
		p.allowedIPs = sortPrefixes(p.allowedIPs)
	}
	return d, nil
}
