//go:build linux

package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// writeTimeout bounds one announcement's writes.
const writeTimeout = time.Second

// allNodes is ff02::1, the link-local all-nodes multicast group.
var allNodes = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x01})

// Ethernet and ARP constants (RFC 826) for the frames built here.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	arpHTEthernet = 1
	arpOpRequest  = 1
	arpOpReply    = 2
)

// broadcastMAC is the Ethernet broadcast address.
var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// sendGARP broadcasts gratuitous ARP for each address on the interface, in
// both forms (request and reply), from an AF_PACKET socket.
func sendGARP(li linkInfo, addrs []netip.Addr) error {
	// Protocol 0: the socket sends and receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening packet socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(writeTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("setting packet socket timeout: %w", err)
	}
	sa := &unix.SockaddrLinklayer{
		Protocol: htons(etherTypeARP),
		Ifindex:  li.index,
		Halen:    uint8(len(broadcastMAC)),
	}
	copy(sa.Addr[:], broadcastMAC)
	var errs []error
	for _, a := range addrs {
		frames, err := garpFrames(li.mac, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				errs = append(errs, fmt.Errorf("sending gratuitous ARP for %v: %w", a, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// garpFrames returns the Ethernet frames of a gratuitous ARP for ip owned
// by mac, both broadcast, with sender and target protocol addresses ip: a
// request (RFC 5227's ARP announcement: target hardware address zero) and
// a reply (target hardware address mac, as arping -A sends it and as Linux
// wants it to count a reply as gratuitous).
func garpFrames(mac net.HardwareAddr, ip netip.Addr) ([][]byte, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("building gratuitous ARP for %v: %v is not an Ethernet address", ip, mac)
	}
	if !ip.Is4() {
		return nil, fmt.Errorf("building gratuitous ARP for %v: not an IPv4 address", ip)
	}
	zero := make(net.HardwareAddr, 6)
	return [][]byte{
		arpFrame(arpOpRequest, mac, ip, zero),
		arpFrame(arpOpReply, mac, ip, mac),
	}, nil
}

// arpFrame builds a broadcast Ethernet frame holding an ARP packet with
// sender and target protocol address ip, padded to the Ethernet minimum.
func arpFrame(op uint16, sha net.HardwareAddr, ip netip.Addr, tha net.HardwareAddr) []byte {
	b := make([]byte, 0, 60)
	b = append(b, broadcastMAC...)
	b = append(b, sha...)
	b = binary.BigEndian.AppendUint16(b, etherTypeARP)
	b = binary.BigEndian.AppendUint16(b, arpHTEthernet)
	b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
	b = append(b, 6, 4) // hardware and protocol address lengths
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(b, sha...)
	b = append(b, ip.AsSlice()...)
	b = append(b, tha...)
	b = append(b, ip.AsSlice()...)
	return b[:60] // zero padding (the capacity's fresh bytes) up to 60 bytes
}

// htons returns v in network byte order, as sockaddr_ll wants its
// protocol (the field is copied to the kernel as it lies in memory).
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// naMessage returns the unsolicited neighbour advertisement for ip owned by
// mac: Override set, Solicited and Router clear, with the target
// link-layer address option.
func naMessage(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	return ndp.MarshalMessage(&ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac},
		},
	})
}

// sendNA sends the unsolicited neighbour advertisement for ip from ip to
// ff02::1 on the interface. The kernel fills in the ICMPv6 checksum of a
// raw ICMPv6 socket.
func sendNA(li linkInfo, ip netip.Addr) error {
	b, err := naMessage(li.mac, ip)
	if err != nil {
		return fmt.Errorf("building neighbour advertisement for %v: %w", ip, err)
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", ip.String())
	if err != nil {
		return fmt.Errorf("opening ICMPv6 socket on %v: %w", ip, err)
	}
	defer c.Close()
	pc := c.IPv6PacketConn()
	// Our own kernel has no use for the copy.
	if err := pc.SetMulticastLoopback(false); err != nil {
		return err
	}
	if err := pc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: ip.AsSlice(), IfIndex: li.index}
	if _, err := pc.WriteTo(b, cm, &net.IPAddr{IP: allNodes.AsSlice()}); err != nil {
		return fmt.Errorf("sending neighbour advertisement for %v: %w", ip, err)
	}
	return nil
}
