package raftnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// handshakeTimeout bounds an inbound TLS handshake, so that a client
	// that connects and says nothing does not hold a goroutine.
	handshakeTimeout = 5 * time.Second
	// maxPendingHandshakes bounds concurrent inbound handshakes; beyond it
	// new connections are closed at once.
	maxPendingHandshakes = 128
)

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// tlsStreamLayer is raft's StreamLayer over mutual TLS. Inbound connections
// are handshaken by the layer itself before raft ever sees them: a plaintext
// client or one without a certificate from the cluster CA is refused and
// closed, and raft's accept loop is not disturbed. Dial completes the
// handshake before returning, so a peer with a foreign certificate fails at
// dial time. Certificate revocation is part of the TLS configs' verification;
// CloseConnections drops connections already open with a certificate revoked
// since.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS *tls.Config
	logger    *slog.Logger

	conns   chan *tls.Conn // handshaken inbound connections for Accept
	ctx     context.Context
	cancel  context.CancelFunc
	pending chan struct{} // semaphore of in-flight inbound handshakes
	wg      sync.WaitGroup
	once    sync.Once

	refused atomic.Uint64

	connMu sync.Mutex
	live   map[*trackedConn]struct{} // open accepted and dialled connections; guarded by connMu
	closed bool                      // guarded by connMu
}

// trackedConn is an accepted or dialled connection. The layer closes the
// accepted ones when it is closed itself, so a shut-down node drops its
// inbound connections at once instead of waiting for peers to notice, and
// CloseConnections closes those whose peer certificate has been revoked.
type trackedConn struct {
	net.Conn
	s        *tlsStreamLayer
	peer     *x509.Certificate // the other side's leaf certificate
	accepted bool
	once     sync.Once
}

// track wraps a handshaken TLS connection and records it as open. It fails
// once the layer is closed.
func (s *tlsStreamLayer) track(c *tls.Conn, accepted bool) (*trackedConn, error) {
	tc := &trackedConn{Conn: c, s: s, accepted: accepted}
	if pc := c.ConnectionState().PeerCertificates; len(pc) > 0 {
		tc.peer = pc[0]
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.live[tc] = struct{}{}
	return tc, nil
}

// closeMatching closes the open connections whose peer certificate matches
// and returns how many it closed.
func (s *tlsStreamLayer) closeMatching(match func(*x509.Certificate) bool) int {
	s.connMu.Lock()
	var hit []*trackedConn
	for c := range s.live {
		if c.peer != nil && match(c.peer) {
			hit = append(hit, c)
		}
	}
	s.connMu.Unlock()
	for _, c := range hit {
		c.Close()
	}
	return len(hit)
}

// CloseConnections closes the open Raft connections, accepted and dialled,
// whose peer presented a certificate that match reports (a certificate
// revoked since the connection was made), and returns how many it closed.
// Raft dials again where it needs to, and the TLS handshake decides.
func (n *Node) CloseConnections(match func(*x509.Certificate) bool) int {
	return n.stream.closeMatching(match)
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.s.connMu.Lock()
		delete(c.s.live, c)
		c.s.connMu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// advertiseAddr is a net.Addr that keeps the advertised address exactly as
// given (a host name stays a host name).
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

func newTLSStreamLayer(bind, advertise string, serverTLS, clientTLS *tls.Config, logger *slog.Logger) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", bind, err)
	}
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	if err := checkAdvertise(advertise); err != nil {
		ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &tlsStreamLayer{
		ln:        ln,
		advertise: advertiseAddr(advertise),
		serverTLS: serverTLS,
		clientTLS: clientTLS,
		logger:    logger,
		conns:     make(chan *tls.Conn),
		ctx:       ctx,
		cancel:    cancel,
		pending:   make(chan struct{}, maxPendingHandshakes),
		live:      make(map[*trackedConn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// checkAdvertise rejects an address other nodes cannot dial.
func checkAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("advertise address %q: %w", addr, ErrBadAddress)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("advertise address %q has no usable port: %w", addr, ErrBadAddress)
	}
	if host == "" {
		return fmt.Errorf("advertise address %q has no host: %w", addr, ErrBadAddress)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("advertise address %q is unspecified; set an address other nodes can reach: %w", addr, ErrBadAddress)
	}
	return nil
}

func (s *tlsStreamLayer) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. too many open files): back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Warn("raft accept failed", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		delay = 0
		select {
		case s.pending <- struct{}{}:
		default:
			s.refused.Add(1)
			s.logger.Warn("refused raft connection: too many pending handshakes", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		s.wg.Add(1)
		go s.handshake(c)
	}
}

func (s *tlsStreamLayer) handshake(c net.Conn) {
	defer s.wg.Done()
	defer func() { <-s.pending }()
	tc := tls.Server(c, s.serverTLS)
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.Close()
		if s.ctx.Err() == nil {
			s.refused.Add(1)
			s.logger.Warn("refused raft connection", "remote", c.RemoteAddr().String(), "error", err)
		}
		return
	}
	select {
	case s.conns <- tc:
	case <-s.ctx.Done():
		tc.Close()
	}
}

// Accept returns the next inbound connection whose TLS handshake succeeded.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		tc, err := s.track(c, true)
		if err != nil {
			return nil, err
		}
		return tc, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting, aborts pending handshakes and waits for them, and
// closes every accepted connection (raft's transport closes the ones it
// dialled).
func (s *tlsStreamLayer) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
		s.connMu.Lock()
		s.closed = true
		live := make([]*trackedConn, 0, len(s.live))
		for c := range s.live {
			if c.accepted {
				live = append(live, c)
			}
		}
		s.connMu.Unlock()
		for _, c := range live {
			c.Close()
		}
	})
	return err
}

// Addr returns the advertised address; raft uses it as this node's address.
func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }

// ListenAddr returns the address the listener is bound to.
func (s *tlsStreamLayer) ListenAddr() net.Addr { return s.ln.Addr() }

// Dial connects to a peer and completes the TLS handshake within timeout.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: timeout},
		Config:    s.clientTLS,
	}
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("dial raft peer %s: %w", address, err)
	}
	tc, err := s.track(c.(*tls.Conn), false)
	if err != nil {
		return nil, err
	}
	return tc, nil
}
