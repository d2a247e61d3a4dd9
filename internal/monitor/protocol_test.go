package monitor

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func sampleMessages() []*Message {
	return []*Message{
		{Type: MsgPing, From: 7, Epoch: 3, Seq: 99},
		{Type: MsgAck, From: 8, Epoch: 3, Seq: 99, UtilPermille: 731, VMs: 12},
		{Type: MsgAssign, From: ControllerID, Epoch: 4, Role: RoleQueen, Chunk: 0, Chunks: 2, Targets: []Target{
			{ID: 1, Addr: netip.MustParseAddrPort("127.0.0.1:4000")},
			{ID: 2, Addr: netip.MustParseAddrPort("[::1]:4001")},
			{ID: 3, Addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:4002")},
		}},
		{Type: MsgAssign, From: ControllerID, Epoch: 5, Role: RoleMember, Chunks: 1},
		{Type: MsgReport, From: 1, Epoch: 4, Chunks: 1, Statuses: []Status{{ID: 2, State: StateAlive, AgeMs: 12}, {ID: 9, State: StateFailed, AgeMs: 5000}}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	ping, _ := Encode(&Message{Type: MsgPing, From: 1})
	ack, _ := Encode(&Message{Type: MsgAck, From: 1})
	rep, _ := Encode(&Message{Type: MsgReport, Chunks: 1, Statuses: []Status{{ID: 1, State: StateAlive}}})
	asg, _ := Encode(&Message{Type: MsgAssign, Chunks: 1, Targets: []Target{{ID: 1, Addr: netip.MustParseAddrPort("127.0.0.1:1")}}})
	mod := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	for _, tc := range []struct {
		name string
		b    []byte
		msg  string
	}{
		{"empty", nil, "shorter than"},
		{"garbage", []byte("hello, I am definitely a heartbeat!!"), "bad magic"},
		{"version", mod(ping, 4, 2), "version 2"},
		{"type", mod(ping, 5, 9), "unknown type 9"},
		{"flags", mod(ping, 7, 1), "flags"},
		{"trailing", append(bytes.Clone(ping), 0), "1 trailing bytes"},
		{"short ack", ack[:len(ack)-1], "truncated vms"},
		{"util", append(bytes.Clone(ack[:HeaderLen]), 0x03, 0xe9, 0, 0), "1001‰"},
		{"report state", mod(rep, len(rep)-5, 7), "unknown state 7"},
		{"report chunk", mod(rep, HeaderLen+1, 1), "chunk 1 of 1"},
		{"report count", mod(rep, HeaderLen+5, 2), "truncated status id"},
		{"assign family", mod(asg, HeaderLen+11, 5), "address family 5"},
		{"assign port 0", append(bytes.Clone(asg[:len(asg)-2]), 0, 0), "port ≠ 0"},
		{"assign role", mod(asg, HeaderLen, 2), "unknown role"},
		{"too long", make([]byte, MaxDatagram+1), "at most 1400"},
	} {
		_, err := Decode(tc.b)
		if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Decode = %v, want an ErrDecode mentioning %q", tc.name, err, tc.msg)
		}
	}
	if _, err := Encode(&Message{Type: 0}); !errors.Is(err, ErrDecode) {
		t.Errorf("encode unknown type: %v", err)
	}
	if _, err := Encode(&Message{Type: MsgAssign, Chunks: 1, Targets: make([]Target, MaxTargetsPerChunk+1)}); err == nil {
		t.Error("encode oversized assign accepted")
	}
}

func TestChunkSizesFitDatagram(t *testing.T) {
	ts := make([]Target, MaxTargetsPerChunk)
	for i := range ts {
		ts[i] = Target{ID: uint32(i), Addr: netip.MustParseAddrPort("[2001:db8::1]:65535")}
	}
	b, err := Encode(&Message{Type: MsgAssign, Chunks: 1, Targets: ts})
	if err != nil || len(b) > MaxDatagram {
		t.Fatalf("full assign chunk: %d bytes, %v", len(b), err)
	}
	ss := make([]Status, MaxStatusesPerChunk)
	for i := range ss {
		ss[i] = Status{ID: uint32(i), State: StateSuspect}
	}
	b, err = Encode(&Message{Type: MsgReport, Chunks: 1, Statuses: ss})
	if err != nil || len(b) > MaxDatagram {
		t.Fatalf("full report chunk: %d bytes, %v", len(b), err)
	}
	if got := Chunk([]int{1, 2, 3, 4, 5}, 2); len(got) != 3 || len(got[2]) != 1 {
		t.Fatalf("Chunk = %v", got)
	}
	if got := Chunk([]int(nil), 2); len(got) != 1 || got[0] != nil {
		t.Fatalf("Chunk(nil) = %v", got)
	}
}

// FuzzDecode: Decode never panics, and every datagram it accepts encodes
// back to the same bytes (the decoder is strict: one encoding per message).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte("RFGM"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error without ErrDecode: %v", err)
			}
			return
		}
		out, err := Encode(m)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("non-canonical accept:\n in %x\nout %x", b, out)
		}
	})
}
