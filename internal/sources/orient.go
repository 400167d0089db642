package sources

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// Rules that decide the local side of a connection, the keys of
// Events.Orientation.
const (
	OrientByAddress       = "host_address"
	OrientByHostname      = "hostname"
	OrientByListeningPort = "listening_port"
	OrientByLowerPort     = "lower_port"
)

// endpoint is one side of a connection as an event wrote it.
type endpoint struct {
	address  string
	port     int
	hostname string
}

// pendingConnection is an inbound connection whose event does not name the
// host's own side. Sysmon event 3 is one, because Sysmon builds disagree on
// the source of an accepted connection: the 2020 workstation recordings put
// the remote client in SourceIp/SourcePort, while a 2019 build and a 2020
// domain controller put the local side there.
type pendingConnection struct {
	index  int // into Events.Connections
	first  endpoint
	second endpoint
	// process identifies the accepting process for the listening-port
	// rule: lower-cased host plus instance, pid or path.
	process string
}

// Orient decides the local side of every connection whose source left it
// open, using evidence from all events added so far, and writes the result
// into Connections and the counts into Orientation. It can be called again
// after Add, and every call decides from scratch.
//
// NOTE: the rules are heuristics, tried in this order:
//  1. host_address: exactly one side is an address that the host used as
//     its own in an unambiguous event (Sysmon 3 outbound SourceIp, Security
//     5156 inbound DestAddress or outbound SourceAddress, socket_events
//     local_address);
//  2. hostname: exactly one side's Sysmon SourceHostname/DestinationHostname
//     names the host itself;
//  3. listening_port: the same process accepted two or more connections
//     whose one side shares a port, and the other side's port is seen less
//     often: the shared port is the one it listens on;
//  4. lower_port: otherwise the side with the lower port is local, because
//     services listen on well-known or RPC ports below the client's
//     ephemeral port. Equal ports leave the destination side local.
//
// A host seen only through inbound Sysmon events with few connections can
// still be oriented wrongly by rule 4.
func (e *Events) Orient() {
	clear(e.Orientation)
	if len(e.pending) == 0 {
		return
	}

	// Count, per accepting process, the connections in which each port
	// occurs on either side.
	portCounts := map[string]map[int]int{}
	for _, p := range e.pending {
		counts := portCounts[p.process]
		if counts == nil {
			counts = map[int]int{}
			portCounts[p.process] = counts
		}
		counts[p.first.port]++
		if p.second.port != p.first.port {
			counts[p.second.port]++
		}
	}

	for _, p := range e.pending {
		c := &e.Connections[p.index]
		firstLocal, rule := e.decideFirstLocal(c.Host, p, portCounts[p.process])
		e.Orientation[rule]++

		local, remote := p.second, p.first
		if firstLocal {
			local, remote = p.first, p.second
		}
		c.LocalAddress, c.LocalPort = local.address, local.port
		c.RemoteAddress, c.RemotePort = remote.address, remote.port
	}
}

// decideFirstLocal reports whether the first endpoint of p is the host's own
// and names the rule that decided it.
func (e *Events) decideFirstLocal(host string, p pendingConnection, portCounts map[int]int) (bool, string) {
	own := e.addresses[strings.ToLower(host)]
	firstOwn := own[addressKey(p.first.address)]
	secondOwn := own[addressKey(p.second.address)]
	if firstOwn != secondOwn {
		return firstOwn, OrientByAddress
	}

	firstNamed := sameHost(p.first.hostname, host)
	secondNamed := sameHost(p.second.hostname, host)
	if firstNamed != secondNamed {
		return firstNamed, OrientByHostname
	}

	firstCount, secondCount := portCounts[p.first.port], portCounts[p.second.port]
	if max(firstCount, secondCount) >= 2 && firstCount != secondCount {
		return firstCount > secondCount, OrientByListeningPort
	}

	return p.first.port < p.second.port, OrientByLowerPort
}

// addPending appends an inbound connection whose sides Orient decides. Until
// then its first endpoint is recorded as the remote side.
func (e *Events) addPending(c detect.Connection, first, second endpoint) {
	c.RemoteAddress, c.RemotePort = first.address, first.port
	c.LocalAddress, c.LocalPort = second.address, second.port

	process := strings.ToLower(c.Host) + "|"
	switch {
	case c.Instance != "":
		process += "instance:" + c.Instance
	case c.PID != detect.UnknownPID:
		process += "pid:" + strconv.FormatInt(c.PID, 10)
	default:
		process += "path:" + strings.ToLower(c.Path)
	}

	e.pending = append(e.pending, pendingConnection{
		index:   len(e.Connections),
		first:   first,
		second:  second,
		process: process,
	})
	e.Connections = append(e.Connections, c)
}

// sameHost reports whether a hostname written in an event names host,
// comparing the first DNS labels without case ("IEWIN7" names
// "iewin7.example.org"). Sysmon writes "-" or nothing when it did not
// resolve a name.
func sameHost(name, host string) bool {
	name = strings.TrimSpace(name)
	if name == "" || name == "-" || host == "" {
		return false
	}
	return strings.EqualFold(firstLabel(name), firstLabel(host))
}

func firstLabel(name string) string {
	label, _, _ := strings.Cut(name, ".")
	return label
}

// canonicalAddress returns an IP address in Go's canonical text form, which
// compresses IPv6 zeros: Sysmon writes `fe80:0:0:0:...` where Security events
// write `fe80::...`. Text that is not an IP address is returned trimmed.
func canonicalAddress(s string) string {
	s = strings.TrimSpace(s)
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	// netip parses IPv4 only in the dotted-decimal form it prints, so the
	// text is already canonical, and returning it saves an allocation per
	// address.
	if addr.Is4() {
		return s
	}
	return addr.String()
}

// limitedBroadcast is 255.255.255.255, which no host owns.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// normalizeAddress returns the key under which an address is compared with
// a host's own addresses: canonical, without zone, IPv4-mapped IPv6 as IPv4.
// Text that is not an address reports false, and so do unspecified (0.0.0.0,
// ::), multicast and limited broadcast addresses, because a host receives
// datagrams on them without owning them.
func normalizeAddress(s string) (string, bool) {
	s = strings.TrimSpace(s)
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", false
	}
	// IPv4 text is canonical as parsed (see canonicalAddress); IPv6 text,
	// with or without a zone or an IPv4 mapping, is rebuilt.
	parsedIPv4 := addr.Is4()
	addr = addr.WithZone("").Unmap()
	if addr.IsUnspecified() || addr.IsMulticast() || addr == limitedBroadcast {
		return "", false
	}
	if parsedIPv4 {
		return s, true
	}
	return addr.String(), true
}

// addressKey returns normalizeAddress's key, or "" for an address that
// carries no evidence (no own address is stored under "").
func addressKey(s string) string {
	key, _ := normalizeAddress(s)
	return key
}
