package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/logging"
)

func serverFlags() []cli.Flag {
	str := func(name, usage, def string) cli.Flag {
		return &cli.StringFlag{Name: name, Usage: usage, EnvVars: envVar(name), DefaultText: def}
	}
	list := func(name, usage, def string) cli.Flag {
		return &cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: envVar(name), DefaultText: def}
	}
	dur := func(name, usage, def string) cli.Flag {
		return &cli.DurationFlag{Name: name, Usage: usage, EnvVars: envVar(name), DefaultText: def, Category: "Raft tuning"}
	}
	cluster := func(f cli.Flag) cli.Flag {
		switch f := f.(type) {
		case *cli.StringFlag:
			f.Category = "Cluster settings (with --bootstrap)"
		case *cli.StringSliceFlag:
			f.Category = "Cluster settings (with --bootstrap)"
		case *cli.IntFlag:
			f.Category = "Cluster settings (with --bootstrap)"
		case *cli.BoolFlag:
			f.Category = "Cluster settings (with --bootstrap)"
		}
		return f
	}
	return []cli.Flag{
		str("data-dir", "Raft log, snapshots, node identity, TLS material", agent.DefaultDataDir),
		str("node-id", "unique, stable node name; stored on first start", "hostname"),
		str("raft-addr", "bind address for Raft", "0.0.0.0:7000"),
		str("api-addr", "bind address for the HTTP API", "0.0.0.0:7443"),
		str("advertise", "address other nodes use to reach this node (Raft and API ports are added)", "first non-loopback address"),
		str("vip-interface", "NIC on which this node claims the VIP when leader", "the interface that holds --advertise"),
		str("wg-interface", "name of the WireGuard interface", agent.DefaultWGInterface),
		str("nat-interface", "NIC the leader masquerades the pools on when the cluster's NAT is on", "the default route's interface"),
		str("dataplane", "auto, kernel, userspace or none", agent.DefaultDataplane),
		&cli.BoolFlag{Name: "bootstrap", Usage: "create a new cluster if this data dir holds none", EnvVars: envVar("bootstrap")},
		list("join", "API addresses of existing members (ADDR[,ADDR...]); used when the data dir holds no state", ""),
		str("token", "join token (printed at bootstrap, or by 'raftguard cluster token'); better given as RAFTGUARD_TOKEN in the environment, which other users cannot read", ""),
		str("log-level", "debug, info, warn or error", "info"),
		str("log-format", "text or json", "text"),
		cluster(list("vip", "virtual IP with prefix, e.g. 192.0.2.10/24; repeat for one IPv4 and one IPv6 VIP", "required")),
		cluster(str("endpoint", "host:port written into client configs", "first VIP and the listen port")),
		cluster(&cli.IntFlag{Name: "listen-port", Usage: "WireGuard UDP port", EnvVars: envVar("listen-port"), DefaultText: "51820"}),
		cluster(str("pool", "IPv4 tunnel network; the server takes its first host address", agent.DefaultPool)),
		cluster(str("pool6", "IPv6 tunnel network (optional)", "none")),
		cluster(list("client-allowed-ips", "AllowedIPs written into client configs", "0.0.0.0/0, ::/0")),
		cluster(list("client-dns", "DNS written into client configs", "none")),
		cluster(&cli.IntFlag{Name: "mtu", Usage: "interface MTU", EnvVars: envVar("mtu"), DefaultText: "1420"}),
		cluster(&cli.IntFlag{Name: "keepalive", Usage: "PersistentKeepalive written into client configs", EnvVars: envVar("keepalive"), DefaultText: "25"}),
		cluster(&cli.BoolFlag{Name: "nat", Usage: "masquerade traffic from the pools leaving the leader (nftables, follows the leader)", EnvVars: envVar("nat")}),
		cluster(str("import", "wg-quick server config FILE to take over: its private key, ListenPort, Address (as the pools) and every [Peer], so its clients keep working", "none")),
		cluster(str("vip-mode", "how the VIP reaches the leader: arp (L2: GARP/NA), bgp, hook, hetzner (floating IP) or aws (Elastic IP)", "arp")),
		&cli.StringFlag{Name: "vip-hook", Usage: "hook mode: program run (no shell) as PATH acquire|release VIP NODE_ID; absolute path", EnvVars: envVar("vip-hook"), Category: "VIP modes (node-local)"},
		&cli.UintFlag{Name: "bgp-asn", Usage: "bgp mode: this node's AS number", EnvVars: envVar("bgp-asn"), Category: "VIP modes (node-local)"},
		&cli.StringSliceFlag{Name: "bgp-neighbor", Usage: "bgp mode: a router to announce the VIP to, ADDR@ASN; repeat for more", EnvVars: envVar("bgp-neighbor"), Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "bgp-router-id", Usage: "bgp mode: BGP router id (IPv4)", EnvVars: envVar("bgp-router-id"), DefaultText: "--advertise", Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "bgp-password", Usage: "bgp mode: TCP MD5 password of the sessions (never stored; better given as RAFTGUARD_BGP_PASSWORD)", EnvVars: envVar("bgp-password"), Category: "VIP modes (node-local)"},
		&cli.DurationFlag{Name: "bgp-hold-time", Usage: "bgp mode: BGP hold time; a frozen leader's route is withdrawn after it", EnvVars: envVar("bgp-hold-time"), DefaultText: "9s", Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "hetzner-token-file", Usage: "hetzner mode: file (mode 0600) holding a Hetzner Cloud API token with read & write access", EnvVars: envVar("hetzner-token-file"), Category: "VIP modes (node-local)"},
		&cli.Int64Flag{Name: "hetzner-server-id", Usage: "hetzner mode: this node's Hetzner Cloud server id", EnvVars: envVar("hetzner-server-id"), DefaultText: "from the metadata service", Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "hetzner-endpoint", Usage: "hetzner mode: Hetzner Cloud API base URL (a proxy or test server)", EnvVars: envVar("hetzner-endpoint"), DefaultText: "https://api.hetzner.cloud/v1", Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "aws-region", Usage: "aws mode: EC2 region", EnvVars: envVar("aws-region"), DefaultText: "the SDK's chain (AWS_REGION, shared config), then the instance metadata service", Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "aws-instance-id", Usage: "aws mode: this node's EC2 instance id (i-...)", EnvVars: envVar("aws-instance-id"), DefaultText: "from the instance metadata service", Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "aws-eip", Usage: "aws mode: the Elastic IP to associate with the VIP (a private IP of the subnet), as its public address or allocation id (eipalloc-...)", EnvVars: envVar("aws-eip"), DefaultText: "none: only the private IP moves", Category: "VIP modes (node-local)"},
		&cli.StringFlag{Name: "aws-endpoint", Usage: "aws mode: EC2 API endpoint URL (a VPC endpoint, a proxy or a test server)", EnvVars: envVar("aws-endpoint"), DefaultText: "the region's", Category: "VIP modes (node-local)"},
		&cli.DurationFlag{Name: "vip-hook-timeout", Usage: "hook mode: bound of one run of --vip-hook; its process group is killed after it", EnvVars: envVar("vip-hook-timeout"), DefaultText: "10s", Category: "VIP modes (node-local)"},
		dur("raft-heartbeat-timeout", "follower's wait for the leader before an election (250ms..500ms)", "250ms"),
		dur("raft-election-timeout", "candidate's wait for votes", "250ms"),
		dur("raft-lease-timeout", "leader steps down after this long without a quorum", "200ms"),
		&cli.Uint64Flag{Name: "raft-snapshot-threshold", Usage: "log entries between snapshots", EnvVars: envVar("raft-snapshot-threshold"), DefaultText: "8192", Category: "Raft tuning"},
		dur("raft-snapshot-interval", "how often to check whether to snapshot", "30s"),
		&cli.BoolFlag{Name: "no-endpoint-sync", Usage: "do not record peers' endpoints (testing client-side recovery)", EnvVars: envVar("no-endpoint-sync"), Hidden: true},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile to this file until the server stops (%p: the process id)", EnvVars: envVar("cpuprofile"), Hidden: true},
		&cli.Uint64Flag{Name: "raft-trailing-logs", Usage: "log entries kept after a snapshot", EnvVars: envVar("raft-trailing-logs"), DefaultText: "10240", Category: "Raft tuning"},
	}
}

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run a raftguard node",
		Description: "Bootstrap the first node with --bootstrap --vip ADDR/PREFIX; join the others with\n" +
			"--join ADDR --token TOKEN. A restarted node needs only --data-dir.",
		Flags:  serverFlags(),
		Action: runServer,
	}
}

func serverConfig(c *cli.Context) agent.Config {
	cfg := agent.Config{
		DataDir:      c.String("data-dir"),
		NodeID:       c.String("node-id"),
		RaftAddr:     c.String("raft-addr"),
		APIAddr:      c.String("api-addr"),
		Advertise:    c.String("advertise"),
		VIPInterface: c.String("vip-interface"),
		WGInterface:  c.String("wg-interface"),
		Dataplane:    c.String("dataplane"),
		NATInterface: c.String("nat-interface"),
		Bootstrap:    c.Bool("bootstrap"),
		Join:         c.StringSlice("join"),
		Token:        c.String("token"),
		VIPModes: agent.VIPModeFlags{
			Hook:         c.String("vip-hook"),
			HookTimeout:  c.Duration("vip-hook-timeout"),
			BGPASN:       uint32(c.Uint("bgp-asn")),
			BGPNeighbors: c.StringSlice("bgp-neighbor"),
			BGPRouterID:  c.String("bgp-router-id"),
			BGPPassword:  c.String("bgp-password"),
			BGPHoldTime:  c.Duration("bgp-hold-time"),

			HetznerTokenFile: c.String("hetzner-token-file"),
			HetznerServerID:  c.Int64("hetzner-server-id"),
			HetznerEndpoint:  c.String("hetzner-endpoint"),

			AWSRegion:     c.String("aws-region"),
			AWSInstanceID: c.String("aws-instance-id"),
			AWSEIP:        c.String("aws-eip"),
			AWSEndpoint:   c.String("aws-endpoint"),
		},
		Cluster: agent.ClusterFlags{
			VIPMode:          c.String("vip-mode"),
			VIPs:             c.StringSlice("vip"),
			Endpoint:         c.String("endpoint"),
			ListenPort:       c.Int("listen-port"),
			Pool:             c.String("pool"),
			Pool6:            c.String("pool6"),
			ClientAllowedIPs: c.StringSlice("client-allowed-ips"),
			ClientDNS:        c.StringSlice("client-dns"),
			MTU:              c.Int("mtu"),
			NAT:              c.Bool("nat"),
			Import:           c.String("import"),
		},
		Raft: agent.RaftTuning{
			HeartbeatTimeout:   c.Duration("raft-heartbeat-timeout"),
			ElectionTimeout:    c.Duration("raft-election-timeout"),
			LeaderLeaseTimeout: c.Duration("raft-lease-timeout"),
			SnapshotThreshold:  c.Uint64("raft-snapshot-threshold"),
			SnapshotInterval:   c.Duration("raft-snapshot-interval"),
			TrailingLogs:       c.Uint64("raft-trailing-logs"),
		},
		DisableEndpointSync: c.Bool("no-endpoint-sync"),
		Stderr:              c.App.ErrWriter,
	}
	if c.IsSet("keepalive") {
		k := c.Int("keepalive")
		cfg.Cluster.Keepalive = &k
	}
	return cfg
}

func runServer(c *cli.Context) error {
	level, format := c.String("log-level"), c.String("log-format")
	if level == "" {
		level = "info"
	}
	if format == "" {
		format = "text"
	}
	log, err := logging.New(c.App.ErrWriter, level, format)
	if err != nil {
		return err
	}
	cfg := serverConfig(c)
	cfg.Logger = log
	// Everything the node writes is private to it: keys, tokens, the log.
	syscall.Umask(0o077)

	stopProfile := func() {}
	if path := c.String("cpuprofile"); path != "" {
		if stopProfile, err = startCPUProfile(strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))); err != nil {
			return err
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	stopProfile() // the profile covers the serving time, not the shutdown
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// startCPUProfile profiles the process into path (0600) until the returned
// function runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}, nil
}
