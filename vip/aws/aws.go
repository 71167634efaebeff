// Package aws is the aws VIP mode: the leader moves the VIP, a secondary
// private IPv4 address of the VPC subnet, to its own network interface and
// associates the Elastic IP with it, through the EC2 API
// (github.com/aws/aws-sdk-go-v2/service/ec2).
//
// An Elastic IP is a 1:1 NAT onto one private IP of one network interface:
// a packet to the Elastic IP reaches the instance addressed to that private
// IP, and a packet the instance sends from that private IP leaves with the
// Elastic IP as its source. So the VIP is the private IP, not the Elastic
// IP: the leader holds it on its NIC (vip.Local, lease-bounded as in the
// arp mode), WireGuard answers from it, and the VPC turns it into the
// Elastic IP on the way out, so clients always see the Elastic IP (the
// cluster's --endpoint). Associating the Elastic IP with the instance's
// primary private IP instead would make replies leave from an address
// that differs on every node.
//
// Acquire assigns the VIP to this instance's primary network interface
// (AssignPrivateIpAddresses with AllowReassignment, which takes it from
// the old leader's interface) and associates the Elastic IP with that
// interface and private IP (AssociateAddress with AllowReassociation). The
// nodes must share one subnet (the VIP belongs to it). Held describes both.
// Without an Elastic IP the mode moves only the private IP (clients inside
// the VPC or behind a VPN gateway).
//
// Release changes nothing in EC2: the next leader's calls move both, and
// an unassign that ran after them would take the address from the new
// leader. The old node no longer holds the local address meanwhile.
//
// Credentials come from the SDK's standard chain (environment, shared
// files, the instance role through the instance metadata service); the
// mode never reads, stores or logs them itself.
package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/raftguard/raftguard/vip"
)

// Name is the mode's name, as in the cluster setting.
const Name = "aws"

// ErrSetup: the mode cannot find its region, instance or network
// interface.
var ErrSetup = errors.New("aws: setup")

// ErrNotFound: no Elastic IP of the account and region matches --aws-eip.
var ErrNotFound = errors.New("aws: no such Elastic IP in this region")

// ErrInvalid: a value given to the mode is malformed.
var ErrInvalid = errors.New("aws: invalid value")

// Config configures New.
type Config struct {
	// Region is the EC2 region; empty: the SDK's chain (AWS_REGION, the
	// shared config), then the instance metadata service.
	Region string
	// InstanceID is this node's instance; empty: from the instance
	// metadata service.
	InstanceID string
	// EIP is the Elastic IP, as its public address or its allocation id
	// (eipalloc-...); empty: the mode moves only the private IP.
	EIP string
	// Endpoint overrides the EC2 API endpoint (a VPC endpoint, a test
	// server); IMDSEndpoint the instance metadata service's.
	Endpoint     string
	IMDSEndpoint string
	// HTTPClient makes the requests (default: the SDK's).
	HTTPClient *http.Client
	// Credentials replaces the SDK's standard chain (tests).
	Credentials awsv2.CredentialsProvider
	// MaxAttempts bounds the SDK's own attempts of a throttled or failed
	// call (default 3); RetryMaxBackoff bounds its wait between them
	// (default 5s).
	MaxAttempts     int
	RetryMaxBackoff time.Duration
	Log             *slog.Logger
}

// Mode is the aws VIP mode.
type Mode struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex // guards client, instanceID, eni
	client     *ec2.Client
	instanceID string
	eni        string // the instance's primary network interface
}

var _ vip.Mode = (*Mode)(nil)

// New makes the mode; it calls nothing yet (the region, instance and
// interface are looked up at the first call).
func New(c Config) (*Mode, error) {
	if c.InstanceID != "" && !strings.HasPrefix(c.InstanceID, "i-") {
		return nil, fmt.Errorf("%w: --aws-instance-id %q is not an instance id (i-...)", ErrInvalid, c.InstanceID)
	}
	if c.EIP != "" && !strings.HasPrefix(c.EIP, "eipalloc-") {
		if a, err := netip.ParseAddr(c.EIP); err != nil || !a.Is4() {
			return nil, fmt.Errorf("%w: --aws-eip %q is neither an IPv4 address nor an allocation id (eipalloc-...)", ErrInvalid, c.EIP)
		}
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.RetryMaxBackoff <= 0 {
		c.RetryMaxBackoff = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &Mode{cfg: c, log: c.Log.With("component", "vip", "vip_mode", Name)}, nil
}

// Name is "aws".
func (m *Mode) Name() string { return Name }

// setup returns the EC2 client and this instance's primary network
// interface, looking them up once.
func (m *Mode) setup(ctx context.Context) (*ec2.Client, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client != nil && m.eni != "" {
		return m.client, m.eni, nil
	}
	c := m.cfg
	imdsOpts := imds.Options{Endpoint: c.IMDSEndpoint}
	if c.HTTPClient != nil {
		imdsOpts.HTTPClient = c.HTTPClient
	}
	md := imds.New(imdsOpts)
	if m.client == nil {
		opts := []func(*config.LoadOptions) error{
			config.WithRetryer(func() awsv2.Retryer {
				return retry.NewStandard(func(o *retry.StandardOptions) {
					o.MaxAttempts = c.MaxAttempts
					o.MaxBackoff = c.RetryMaxBackoff
					o.Backoff = retry.NewExponentialJitterBackoff(c.RetryMaxBackoff)
					o.RateLimiter = ratelimit.None // the Runner paces the attempts
				})
			}),
		}
		if c.Region != "" {
			opts = append(opts, config.WithRegion(c.Region))
		}
		if c.HTTPClient != nil {
			opts = append(opts, config.WithHTTPClient(c.HTTPClient))
		}
		if c.IMDSEndpoint != "" {
			opts = append(opts, config.WithEC2IMDSEndpoint(c.IMDSEndpoint))
		}
		if c.Credentials != nil {
			opts = append(opts, config.WithCredentialsProvider(c.Credentials))
		}
		ac, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, "", fmt.Errorf("%w: load the SDK's configuration: %w", ErrSetup, err)
		}
		if ac.Region == "" {
			out, err := md.GetRegion(ctx, &imds.GetRegionInput{})
			if err != nil {
				return nil, "", fmt.Errorf("%w: no region: give --aws-region, set AWS_REGION, or run on an instance with its metadata service (%w)", ErrSetup, err)
			}
			ac.Region = out.Region
		}
		m.client = ec2.NewFromConfig(ac, func(o *ec2.Options) {
			if c.Endpoint != "" {
				o.BaseEndpoint = awsv2.String(c.Endpoint)
			}
		})
		m.log.Info("EC2 client ready", "region", ac.Region)
	}
	if m.instanceID == "" {
		m.instanceID = c.InstanceID
	}
	if m.instanceID == "" {
		out, err := md.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
		if err != nil {
			return nil, "", fmt.Errorf("%w: cannot tell this instance's id: give --aws-instance-id, or run on an instance with its metadata service: %w", ErrSetup, err)
		}
		b, err := io.ReadAll(io.LimitReader(out.Content, 128))
		out.Content.Close()
		if err != nil {
			return nil, "", fmt.Errorf("%w: reading the instance id from the metadata service: %w", ErrSetup, err)
		}
		id := strings.TrimSpace(string(b))
		if !strings.HasPrefix(id, "i-") {
			return nil, "", fmt.Errorf("%w: the metadata service answered instance id %q", ErrSetup, id)
		}
		m.instanceID = id
		m.log.Info("instance id from the metadata service", "instance_id", id)
	}
	out, err := m.client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{
		{Name: awsv2.String("attachment.instance-id"), Values: []string{m.instanceID}},
		{Name: awsv2.String("attachment.device-index"), Values: []string{"0"}},
	}})
	if err != nil {
		return nil, "", fmt.Errorf("aws: find the network interface of instance %s: %w", m.instanceID, err)
	}
	if len(out.NetworkInterfaces) != 1 || awsv2.ToString(out.NetworkInterfaces[0].NetworkInterfaceId) == "" {
		return nil, "", fmt.Errorf("%w: instance %s has %d primary network interfaces in this region (wrong --aws-instance-id or --aws-region?)", ErrSetup, m.instanceID, len(out.NetworkInterfaces))
	}
	m.eni = awsv2.ToString(out.NetworkInterfaces[0].NetworkInterfaceId)
	m.log.Info("network interface found", "instance_id", m.instanceID, "network_interface_id", m.eni)
	return m.client, m.eni, nil
}

// vip4 is the one IPv4 VIP: the private IP the mode moves.
func vip4(vips []netip.Prefix) (netip.Addr, error) {
	var out netip.Addr
	for _, v := range vips {
		if !v.Addr().Is4() {
			return out, fmt.Errorf("%w: the aws mode moves an IPv4 VIP only, not %s", ErrInvalid, v.Addr())
		}
		out = v.Addr()
	}
	if !out.IsValid() {
		return out, fmt.Errorf("%w: no IPv4 VIP", ErrInvalid)
	}
	return out, nil
}

// Acquire moves the VIP to this instance's primary network interface and
// associates the Elastic IP with it; what is already in place is left
// alone.
func (m *Mode) Acquire(ctx context.Context, vips []netip.Prefix) (bool, error) {
	ip, err := vip4(vips)
	if err != nil {
		return false, err
	}
	c, eni, err := m.setup(ctx)
	if err != nil {
		return false, err
	}
	changed := false
	has, err := hasPrivateIP(ctx, c, eni, ip)
	if err != nil {
		return false, err
	}
	if !has {
		if _, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{
			NetworkInterfaceId: awsv2.String(eni),
			PrivateIpAddresses: []string{ip.String()},
			AllowReassignment:  awsv2.Bool(true),
		}); err != nil {
			return false, fmt.Errorf("aws: assign private IP %s to %s: %w", ip, eni, err)
		}
		m.log.Info("private IP assigned to this instance", "vip", ip, "network_interface_id", eni)
		changed = true
	}
	if m.cfg.EIP == "" {
		return changed, nil
	}
	addr, err := m.describeEIP(ctx, c)
	if err != nil {
		return changed, err
	}
	if awsv2.ToString(addr.NetworkInterfaceId) == eni && awsv2.ToString(addr.PrivateIpAddress) == ip.String() {
		return changed, nil
	}
	in := &ec2.AssociateAddressInput{
		NetworkInterfaceId: awsv2.String(eni),
		PrivateIpAddress:   awsv2.String(ip.String()),
		AllowReassociation: awsv2.Bool(true),
	}
	if addr.AllocationId != nil {
		in.AllocationId = addr.AllocationId
	} else {
		in.PublicIp = addr.PublicIp // EC2-Classic style addresses have no allocation id
	}
	out, err := c.AssociateAddress(ctx, in)
	if err != nil {
		return changed, fmt.Errorf("aws: associate Elastic IP %s with %s on %s: %w", m.cfg.EIP, ip, eni, err)
	}
	m.log.Info("Elastic IP associated with this instance", "eip", awsv2.ToString(addr.PublicIp), "vip", ip,
		"network_interface_id", eni, "association_id", awsv2.ToString(out.AssociationId), "from_network_interface", awsv2.ToString(addr.NetworkInterfaceId))
	return true, nil
}

// Release changes nothing in EC2 (see the package comment).
func (m *Mode) Release(context.Context, []netip.Prefix) (bool, error) { return false, nil }

// Held reports whether this instance's interface holds the VIP and the
// Elastic IP is associated with it.
func (m *Mode) Held(ctx context.Context, vips []netip.Prefix) (bool, error) {
	ip, err := vip4(vips)
	if err != nil {
		return false, err
	}
	c, eni, err := m.setup(ctx)
	if err != nil {
		return false, err
	}
	has, err := hasPrivateIP(ctx, c, eni, ip)
	if err != nil || !has || m.cfg.EIP == "" {
		return has, err
	}
	addr, err := m.describeEIP(ctx, c)
	if err != nil {
		return false, err
	}
	return awsv2.ToString(addr.NetworkInterfaceId) == eni && awsv2.ToString(addr.PrivateIpAddress) == ip.String(), nil
}

// hasPrivateIP reports whether network interface eni holds ip.
func hasPrivateIP(ctx context.Context, c *ec2.Client, eni string, ip netip.Addr) (bool, error) {
	out, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eni}})
	if err != nil {
		return false, fmt.Errorf("aws: describe network interface %s: %w", eni, err)
	}
	for _, ni := range out.NetworkInterfaces {
		if slices.ContainsFunc(ni.PrivateIpAddresses, func(p types.NetworkInterfacePrivateIpAddress) bool {
			return awsv2.ToString(p.PrivateIpAddress) == ip.String()
		}) {
			return true, nil
		}
	}
	return false, nil
}

// describeEIP returns the Elastic IP named by the EIP setting.
func (m *Mode) describeEIP(ctx context.Context, c *ec2.Client) (types.Address, error) {
	in := &ec2.DescribeAddressesInput{}
	if strings.HasPrefix(m.cfg.EIP, "eipalloc-") {
		in.AllocationIds = []string{m.cfg.EIP}
	} else {
		in.PublicIps = []string{m.cfg.EIP}
	}
	out, err := c.DescribeAddresses(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && (strings.HasPrefix(ae.ErrorCode(), "InvalidAddress") || strings.HasPrefix(ae.ErrorCode(), "InvalidAllocationID")) {
			return types.Address{}, fmt.Errorf("%w: --aws-eip %s (%w)", ErrNotFound, m.cfg.EIP, err)
		}
		return types.Address{}, fmt.Errorf("aws: describe Elastic IP %s: %w", m.cfg.EIP, err)
	}
	if len(out.Addresses) != 1 {
		return types.Address{}, fmt.Errorf("%w: --aws-eip %s matches %d addresses", ErrNotFound, m.cfg.EIP, len(out.Addresses))
	}
	return out.Addresses[0], nil
}
