package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftguard/raftguard/internal/version"
)

// unmatchedRoute labels requests that matched no route.
const unmatchedRoute = "unmatched"

// metrics are one Server's Prometheus metrics, in a registry of its own so
// that several nodes can run in one process (tests). No metric carries a
// secret: labels are route patterns (never paths with names), status codes,
// roles, pool prefixes and the node id.
type metrics struct {
	reg       *prometheus.Registry
	handler   http.Handler
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	forwards  *prometheus.CounterVec
	routesMu  sync.Mutex // guards observers
	observers map[string]func(code int, d time.Duration)
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftguard_api_requests_total",
			Help: "API requests answered by this node, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "raftguard_api_request_duration_seconds",
			Help:    "Time to answer an API request (forwarding included), by route pattern and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftguard_api_forwarded_requests_total",
			Help: "Requests this node forwarded to the leader, by route pattern and the leader's status code (\"error\": no answer; \"no_leader\": the leader had stepped down, retried).",
		}, []string{"route", "code"}),
		observers: map[string]func(int, time.Duration){},
	}
	m.reg.MustRegister(m.requests, m.latency, m.forwards,
		&stateCollector{s: s},
		&peerCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// route returns the function that records one answer of a route.
func (m *metrics) route(pattern string) func(code int, d time.Duration) {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	if f, ok := m.observers[pattern]; ok {
		return f
	}
	// Children by status code, created on first use and then cached.
	var mu sync.Mutex // guards byCode
	type pair struct {
		c prometheus.Counter
		h prometheus.Observer
	}
	byCode := map[int]pair{}
	f := func(code int, d time.Duration) {
		mu.Lock()
		p, ok := byCode[code]
		if !ok {
			c := strconv.Itoa(code)
			p = pair{m.requests.WithLabelValues(pattern, c), m.latency.WithLabelValues(pattern, c)}
			byCode[code] = p
		}
		mu.Unlock()
		p.c.Inc()
		p.h.Observe(d.Seconds())
	}
	m.observers[pattern] = f
	return f
}

func (m *metrics) forwarded(pattern, code string) {
	m.forwards.WithLabelValues(pattern, code).Inc()
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *request) error {
	w.Header().Set("Cache-Control", "no-store")
	s.metrics.handler.ServeHTTP(w, r.Request)
	return nil
}

// stateCollector reads the node's Raft and registry figures at scrape time.
type stateCollector struct {
	s *Server
}

var (
	descRole = prometheus.NewDesc("raftguard_raft_role",
		"1 for this node's current Raft role, 0 for the others.", []string{"role"}, nil)
	descTerm = prometheus.NewDesc("raftguard_raft_term",
		"Current Raft term.", nil, nil)
	descLast = prometheus.NewDesc("raftguard_raft_last_index",
		"Index of the last entry in this node's Raft log.", nil, nil)
	descCommit = prometheus.NewDesc("raftguard_raft_commit_index",
		"Highest Raft log index this node knows to be committed.", nil, nil)
	descApplied = prometheus.NewDesc("raftguard_raft_applied_index",
		"Highest Raft log index applied to this node's replica.", nil, nil)
	descLeaderChanges = prometheus.NewDesc("raftguard_raft_leader_changes_total",
		"Leader changes observed by this node (a new leader becoming known).", nil, nil)
	descPeers = prometheus.NewDesc("raftguard_peers",
		"Peers in the registry.", nil, nil)
	descPeersEnabled = prometheus.NewDesc("raftguard_peers_enabled",
		"Enabled peers in the registry.", nil, nil)
	descPoolFree = prometheus.NewDesc("raftguard_pool_addresses_free",
		"Free peer addresses in each tunnel pool (capped at 2^63).", []string{"pool"}, nil)
	descVIPHeld = prometheus.NewDesc("raftguard_vip_held",
		"1 when the VIP mode really delivers the VIPs to this node (local address held and the mode's acquire succeeded), else 0.", []string{"mode"}, nil)
	descVIPError = prometheus.NewDesc("raftguard_vip_mode_failing",
		"1 while the VIP mode's last acquire or release failed and is being retried, else 0.", []string{"mode"}, nil)
	descInfo = prometheus.NewDesc("raftguard_node_info",
		"Always 1; labels name the node and its version.", []string{"node_id", "version"}, nil)
)

// raftRoles are the values of raftguard_raft_role's label.
var raftRoles = []string{"leader", "follower", "candidate", "shutdown"}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRole, descTerm, descLast, descCommit, descApplied,
		descLeaderChanges, descPeers, descPeersEnabled, descPoolFree, descInfo, descVIPHeld, descVIPError} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.s.b
	st := b.Status()
	for _, role := range raftRoles {
		v := 0.0
		if st.Role == role {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descRole, prometheus.GaugeValue, v, role)
	}
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(st.LastIndex))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(b.LeaderChanges()))
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, st.NodeID, version.Version)
	if st.VIPMode != "" {
		ch <- prometheus.MustNewConstMetric(descVIPHeld, prometheus.GaugeValue, b2f(st.VIPHeld), st.VIPMode)
		ch <- prometheus.MustNewConstMetric(descVIPError, prometheus.GaugeValue, b2f(st.VIPError != ""), st.VIPMode)
	}
	state := b.State()
	if state == nil {
		return
	}
	total, enabled := state.PeerCounts()
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(descPeersEnabled, prometheus.GaugeValue, float64(enabled))
	for pool, free := range state.PoolFree() {
		ch <- prometheus.MustNewConstMetric(descPoolFree, prometheus.GaugeValue, float64(free), pool.String())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
