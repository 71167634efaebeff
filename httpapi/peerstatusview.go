package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftguard/raftguard/fsm"
)

// RejectAfterTime is WireGuard's Reject-After-Time: a session older than
// this is dead, so a peer counts as online while its latest handshake is
// younger.
const RejectAfterTime = 180 * time.Second

// online reports whether a handshake at hs is within RejectAfterTime of now.
func online(hs *time.Time, now time.Time) bool {
	return hs != nil && now.Sub(*hs) < RejectAfterTime
}

// liveStats are the local interface's counters for the peer views, or nil
// once the cluster records the leader's status in the replicated state:
// then every node answers from that record alone, so every node answers
// the same.
func (s *Server) liveStats() map[string]PeerStats {
	if st := s.b.State(); st != nil && st.ClusterVersion() >= fsm.CommandSince(fsm.CmdSetPeerStatus) {
		return nil
	}
	return s.b.PeerStats()
}

// peerCollector exports each peer's recorded status, labelled by the
// peer's name (never a key).
type peerCollector struct {
	s *Server
}

var (
	descPeerRx = prometheus.NewDesc("raftguard_peer_receive_bytes_total",
		"Bytes received from the peer, over all leaders (as last recorded).", []string{"peer"}, nil)
	descPeerTx = prometheus.NewDesc("raftguard_peer_transmit_bytes_total",
		"Bytes sent to the peer, over all leaders (as last recorded).", []string{"peer"}, nil)
	descPeerHandshake = prometheus.NewDesc("raftguard_peer_latest_handshake_timestamp_seconds",
		"Unix time of the peer's latest handshake (peers with one only).", []string{"peer"}, nil)
	descPeerHandshakeAge = prometheus.NewDesc("raftguard_peer_handshake_age_seconds",
		"Seconds since the peer's latest handshake (peers with one only).", []string{"peer"}, nil)
	descPeerOnline = prometheus.NewDesc("raftguard_peer_online",
		"1 when the peer's latest handshake is within WireGuard's reject-after time (180 s).", []string{"peer"}, nil)
)

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeerRx, descPeerTx, descPeerHandshake, descPeerHandshakeAge, descPeerOnline} {
		ch <- d
	}
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	state := c.s.b.State()
	if state == nil {
		return
	}
	now := time.Now()
	live := c.s.liveStats()
	for _, p := range state.Peers() {
		v := viewPeer(p, statsFor(live, p.PublicKey))
		ch <- prometheus.MustNewConstMetric(descPeerRx, prometheus.CounterValue, float64(v.RxBytes), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerTx, prometheus.CounterValue, float64(v.TxBytes), p.Name)
		on := 0.0
		if online(v.LatestHandshake, now) {
			on = 1
		}
		ch <- prometheus.MustNewConstMetric(descPeerOnline, prometheus.GaugeValue, on, p.Name)
		if v.LatestHandshake != nil {
			ch <- prometheus.MustNewConstMetric(descPeerHandshake, prometheus.GaugeValue, float64(v.LatestHandshake.Unix()), p.Name)
			ch <- prometheus.MustNewConstMetric(descPeerHandshakeAge, prometheus.GaugeValue, max(0, now.Sub(*v.LatestHandshake).Seconds()), p.Name)
		}
	}
}
