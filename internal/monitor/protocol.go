package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// The wire protocol: one message per UDP datagram, big-endian.
//
//	header (28 bytes):
//	  magic   "RFGM"
//	  version 1
//	  type    1 ping | 2 ack | 3 assign | 4 report
//	  flags   uint16, must be 0
//	  from    uint32 sender id (ControllerID for the controller)
//	  epoch   uint64 assignment epoch the sender acts on
//	  seq     uint64 probe sequence number (ping, ack) or 0
//	ping:   no body
//	ack:    util uint16 (‰ CPU, ≤ 1000), vms uint16
//	assign: role uint8 (0 member, 1 queen), chunk uint16, chunks uint16 (chunk < chunks ≤ MaxChunks),
//	        count uint16 (≤ MaxTargetsPerChunk), then count × {id uint32, family uint8 (4|6),
//	        ip [4]|[16]byte, port uint16 (≠ 0)}
//	report: chunk uint16, chunks uint16, count uint16 (≤ MaxStatusesPerChunk), then
//	        count × {id uint32, state uint8 (1 alive | 2 suspect | 3 failed), age_ms uint32}
//
// Decode is strict: wrong magic, version, type, flags, counts, lengths,
// states or addresses, and trailing bytes are errors, so that every
// accepted datagram re-encodes to the same bytes.

// MsgType is a message's type.
type MsgType uint8

// Message types.
const (
	MsgPing   MsgType = 1
	MsgAck    MsgType = 2
	MsgAssign MsgType = 3
	MsgReport MsgType = 4
)

func (t MsgType) String() string {
	switch t {
	case MsgPing:
		return "ping"
	case MsgAck:
		return "ack"
	case MsgAssign:
		return "assign"
	case MsgReport:
		return "report"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Role is what an ASSIGN makes an agent.
type Role uint8

// Roles.
const (
	RoleMember Role = 0
	RoleQueen  Role = 1
)

// HostState is a monitor's verdict on a host.
type HostState uint8

// Host states.
const (
	StateAlive   HostState = 1
	StateSuspect HostState = 2
	StateFailed  HostState = 3
)

func (s HostState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// Protocol limits.
const (
	Version             = 1
	HeaderLen           = 28
	MaxDatagram         = 1400
	MaxTargetsPerChunk  = 56  // 56 × 23 bytes (IPv6) + header fits MaxDatagram
	MaxStatusesPerChunk = 128 // 128 × 9 bytes
	MaxChunks           = 4096
	// ControllerID is the sender id the controller uses.
	ControllerID = math.MaxUint32
)

var magic = [4]byte{'R', 'F', 'G', 'M'}

// Target is one host a queen probes.
type Target struct {
	ID   uint32
	Addr netip.AddrPort
}

// Status is a queen's verdict on one target.
type Status struct {
	ID    uint32
	State HostState
	AgeMs uint32 // since the last heartbeat (saturating)
}

// Message is one decoded datagram.
type Message struct {
	Type  MsgType
	From  uint32
	Epoch uint64
	Seq   uint64
	// ack
	UtilPermille uint16
	VMs          uint16
	// assign
	Role    Role
	Chunk   uint16
	Chunks  uint16
	Targets []Target
	// report (Chunk, Chunks too)
	Statuses []Status
}

// ErrDecode wraps every decoding error.
var ErrDecode = errors.New("bad monitor message")

func decodeErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrDecode, fmt.Sprintf(format, a...))
}

// Append encodes m onto b. It checks m as Decode would.
func Append(b []byte, m *Message) ([]byte, error) {
	if err := m.check(); err != nil {
		return b, err
	}
	b = append(b, magic[:]...)
	b = append(b, Version, byte(m.Type), 0, 0)
	b = binary.BigEndian.AppendUint32(b, m.From)
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	switch m.Type {
	case MsgAck:
		b = binary.BigEndian.AppendUint16(b, m.UtilPermille)
		b = binary.BigEndian.AppendUint16(b, m.VMs)
	case MsgAssign:
		b = append(b, byte(m.Role))
		b = binary.BigEndian.AppendUint16(b, m.Chunk)
		b = binary.BigEndian.AppendUint16(b, m.Chunks)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Targets)))
		for _, t := range m.Targets {
			b = binary.BigEndian.AppendUint32(b, t.ID)
			ip := t.Addr.Addr()
			if ip.Is4() {
				a := ip.As4()
				b = append(b, 4)
				b = append(b, a[:]...)
			} else {
				a := ip.As16()
				b = append(b, 6)
				b = append(b, a[:]...)
			}
			b = binary.BigEndian.AppendUint16(b, t.Addr.Port())
		}
	case MsgReport:
		b = binary.BigEndian.AppendUint16(b, m.Chunk)
		b = binary.BigEndian.AppendUint16(b, m.Chunks)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Statuses)))
		for _, s := range m.Statuses {
			b = binary.BigEndian.AppendUint32(b, s.ID)
			b = append(b, byte(s.State))
			b = binary.BigEndian.AppendUint32(b, s.AgeMs)
		}
	}
	return b, nil
}

// Encode returns m's encoding.
func Encode(m *Message) ([]byte, error) { return Append(make([]byte, 0, 64), m) }

func (m *Message) check() error {
	switch m.Type {
	case MsgPing:
	case MsgAck:
		if m.UtilPermille > 1000 {
			return fmt.Errorf("%w: ack utilisation %d‰ > 1000", ErrDecode, m.UtilPermille)
		}
	case MsgAssign:
		if m.Role > RoleQueen {
			return decodeErr("unknown role %d", m.Role)
		}
		if err := checkChunks(m.Chunk, m.Chunks, len(m.Targets), MaxTargetsPerChunk); err != nil {
			return err
		}
		for i, t := range m.Targets {
			if !t.Addr.IsValid() || t.Addr.Port() == 0 || t.Addr.Addr().Zone() != "" {
				return decodeErr("target %d (id %d): address %v must be an IP without zone and a port ≠ 0", i, t.ID, t.Addr)
			}
		}
	case MsgReport:
		if err := checkChunks(m.Chunk, m.Chunks, len(m.Statuses), MaxStatusesPerChunk); err != nil {
			return err
		}
		for i, s := range m.Statuses {
			if s.State < StateAlive || s.State > StateFailed {
				return decodeErr("status %d (id %d): unknown state %d", i, s.ID, s.State)
			}
		}
	default:
		return decodeErr("unknown type %d", m.Type)
	}
	return nil
}

func checkChunks(chunk, chunks uint16, n, max int) error {
	if chunks == 0 || chunks > MaxChunks || chunk >= chunks {
		return decodeErr("chunk %d of %d: want chunk < chunks ≤ %d", chunk, chunks, MaxChunks)
	}
	if n > max {
		return decodeErr("%d entries in one chunk, at most %d", n, max)
	}
	return nil
}

// reader reads big-endian fields and remembers the first shortfall.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) need(n int, what string) bool {
	if r.err != nil {
		return false
	}
	if len(r.b)-r.off < n {
		r.err = decodeErr("truncated %s at byte %d (%d bytes, need %d more)", what, r.off, len(r.b), n-(len(r.b)-r.off))
		return false
	}
	return true
}

func (r *reader) u8(what string) uint8 {
	if !r.need(1, what) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16(what string) uint16 {
	if !r.need(2, what) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32(what string) uint32 {
	if !r.need(4, what) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64(what string) uint64 {
	if !r.need(8, what) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *reader) bytes(n int, what string) []byte {
	if !r.need(n, what) {
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

// Decode parses one datagram strictly.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxDatagram {
		return nil, decodeErr("%d bytes, at most %d", len(b), MaxDatagram)
	}
	if len(b) < HeaderLen {
		return nil, decodeErr("%d bytes, shorter than the %d-byte header", len(b), HeaderLen)
	}
	if [4]byte(b[:4]) != magic {
		return nil, decodeErr("bad magic %q", b[:4])
	}
	if b[4] != Version {
		return nil, decodeErr("version %d, want %d", b[4], Version)
	}
	r := &reader{b: b, off: 5}
	m := &Message{Type: MsgType(r.u8("type"))}
	if flags := r.u16("flags"); flags != 0 {
		return nil, decodeErr("flags %#x, want 0", flags)
	}
	m.From = r.u32("from")
	m.Epoch = r.u64("epoch")
	m.Seq = r.u64("seq")
	switch m.Type {
	case MsgPing:
	case MsgAck:
		m.UtilPermille = r.u16("util")
		m.VMs = r.u16("vms")
	case MsgAssign:
		m.Role = Role(r.u8("role"))
		m.Chunk, m.Chunks = r.u16("chunk"), r.u16("chunks")
		n := int(r.u16("count"))
		if r.err == nil && n > MaxTargetsPerChunk {
			return nil, decodeErr("%d targets in one chunk, at most %d", n, MaxTargetsPerChunk)
		}
		for i := 0; i < n && r.err == nil; i++ {
			t := Target{ID: r.u32("target id")}
			var ip netip.Addr
			switch fam := r.u8("address family"); {
			case r.err != nil:
			case fam == 4:
				if raw := r.bytes(4, "IPv4 address"); raw != nil {
					ip = netip.AddrFrom4([4]byte(raw))
				}
			case fam == 6:
				if raw := r.bytes(16, "IPv6 address"); raw != nil {
					ip = netip.AddrFrom16([16]byte(raw))
				}
			default:
				return nil, decodeErr("target %d: address family %d, want 4 or 6", i, fam)
			}
			t.Addr = netip.AddrPortFrom(ip, r.u16("port"))
			m.Targets = append(m.Targets, t)
		}
	case MsgReport:
		m.Chunk, m.Chunks = r.u16("chunk"), r.u16("chunks")
		n := int(r.u16("count"))
		if r.err == nil && n > MaxStatusesPerChunk {
			return nil, decodeErr("%d statuses in one chunk, at most %d", n, MaxStatusesPerChunk)
		}
		for i := 0; i < n && r.err == nil; i++ {
			m.Statuses = append(m.Statuses, Status{ID: r.u32("status id"), State: HostState(r.u8("state")), AgeMs: r.u32("age")})
		}
	default:
		return nil, decodeErr("unknown type %d", uint8(m.Type))
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, decodeErr("%d trailing bytes after a %s message", len(b)-r.off, m.Type)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Chunk splits items into chunks of at most per (at least one chunk, even
// when there are no items).
func Chunk[T any](items []T, per int) [][]T {
	if len(items) == 0 {
		return [][]T{nil}
	}
	var out [][]T
	for i := 0; i < len(items); i += per {
		out = append(out, items[i:min(i+per, len(items))])
	}
	return out
}
