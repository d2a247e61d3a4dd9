package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
)

// errIncomplete says the bytes seen so far are a valid prefix: read more.
var errIncomplete = errors.New("incomplete")

// Limits on what the gateway reads before it knows where to send a
// connection.
const (
	// maxHello bounds a TLS ClientHello (records included).
	maxHello = 32 << 10
	// maxHead bounds an HTTP request's line and headers.
	maxHead = 16 << 10
)

// ParseSNI reads the server name (SNI) from the first bytes a TLS client
// sends: one or more handshake records carrying a ClientHello. It returns
// "" when the ClientHello has no server_name extension, errIncomplete when
// b is a valid prefix that ends too early, and an error for anything that
// is not a ClientHello. The name is lower-cased and checked to be a host
// name.
func ParseSNI(b []byte) (string, error) {
	// Gather the handshake bytes from consecutive handshake records.
	var hs []byte
	for len(b) > 0 {
		if len(b) < 5 {
			return "", errIncomplete
		}
		if b[0] != 22 {
			return "", fmt.Errorf("not a TLS handshake record (content type %d)", b[0])
		}
		if b[1] != 3 {
			return "", fmt.Errorf("not a TLS record (version %d.%d)", b[1], b[2])
		}
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if n == 0 || n > 1<<14 {
			return "", fmt.Errorf("TLS record length %d out of range", n)
		}
		if len(b) < 5+n {
			hs = append(hs, b[5:]...)
			break
		}
		hs = append(hs, b[5:5+n]...)
		b = b[5+n:]
		if len(hs) >= 4 && len(hs) >= 4+hsLen(hs) {
			break
		}
	}
	if len(hs) < 4 {
		return "", errIncomplete
	}
	if hs[0] != 1 {
		return "", fmt.Errorf("first handshake message is type %d, not ClientHello", hs[0])
	}
	n := hsLen(hs)
	if n > maxHello {
		return "", fmt.Errorf("ClientHello of %d bytes is too long", n)
	}
	if len(hs) < 4+n {
		return "", errIncomplete
	}
	return helloSNI(hs[4 : 4+n])
}

func hsLen(hs []byte) int { return int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]) }

// reader walks a byte string with length-prefixed fields; the first
// overrun sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() int {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16() int {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

// vec reads a field with a 1- or 2-byte length prefix.
func (r *reader) vec(prefix int) []byte {
	if prefix == 1 {
		return r.take(r.u8())
	}
	return r.take(r.u16())
}

var errMalformedHello = errors.New("malformed ClientHello")

// helloSNI finds the server_name extension in a ClientHello body.
func helloSNI(body []byte) (string, error) {
	r := &reader{b: body}
	r.take(2 + 32) // legacy_version, random
	r.vec(1)       // session id
	r.vec(2)       // cipher suites
	r.vec(1)       // compression methods
	if r.bad {
		return "", errMalformedHello
	}
	if len(r.b) == 0 {
		return "", nil // no extensions
	}
	exts := &reader{b: r.vec(2)}
	if r.bad {
		return "", errMalformedHello
	}
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.vec(2)
		if exts.bad {
			return "", errMalformedHello
		}
		if typ != 0 { // server_name
			continue
		}
		list := &reader{b: (&reader{b: data}).vec(2)}
		for len(list.b) > 0 {
			kind := list.u8()
			name := list.vec(2)
			if list.bad {
				return "", errMalformedHello
			}
			if kind == 0 { // host_name
				return checkHost(string(name))
			}
		}
		return "", errMalformedHello
	}
	return "", nil
}

// checkHost lower-cases a DNS host name (a trailing dot is dropped) and
// checks its characters and lengths.
func checkHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > 253 {
		return "", fmt.Errorf("host name of %d bytes", len(h))
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("host name %q has an empty or over-long label", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("host name %q has the character %q", h, c)
			}
		}
	}
	return h, nil
}

// ParseHost reads the host an HTTP/1.x request is for from its start: the
// Host header, or the authority of an absolute-form target. It returns
// errIncomplete until the end of the headers is seen. The host is
// lower-cased, its port and any trailing dot dropped; IPv6 literals come
// back without brackets.
func ParseHost(b []byte) (string, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxHead {
			return "", fmt.Errorf("request headers longer than %d bytes", maxHead)
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if _, err := requestTarget(b[:i]); err != nil {
				return "", err
			}
		}
		return "", errIncomplete
	}
	lines := strings.Split(string(b[:end]), "\r\n")
	target, err := requestTarget([]byte(lines[0]))
	if err != nil {
		return "", err
	}
	host, seen := "", false
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return "", fmt.Errorf("malformed header line %q", truncate(line))
		}
		if strings.EqualFold(name, "host") {
			if seen {
				return "", errors.New("more than one Host header")
			}
			host, seen = strings.Trim(value, " \t"), true
		}
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(target), "http://"); ok {
		host, _, _ = strings.Cut(rest, "/")
	} else if rest, ok := strings.CutPrefix(strings.ToLower(target), "https://"); ok {
		host, _, _ = strings.Cut(rest, "/")
	}
	if host == "" {
		return "", errors.New("request without a Host")
	}
	return normalizeAuthority(host)
}

// requestTarget checks an HTTP/1.x request line and returns its target.
func requestTarget(line []byte) (string, error) {
	s := strings.TrimSuffix(string(line), "\r")
	parts := strings.Split(s, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return "", fmt.Errorf("not an HTTP/1.x request line: %q", truncate(s))
	}
	for _, c := range parts[0] {
		if c < 'A' || c > 'Z' {
			return "", fmt.Errorf("bad HTTP method %q", truncate(parts[0]))
		}
	}
	return parts[1], nil
}

// normalizeAuthority drops the port of host[:port] and checks the host.
func normalizeAuthority(a string) (string, error) {
	if strings.ContainsAny(a, "@ \t") {
		return "", fmt.Errorf("bad host %q", truncate(a))
	}
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", fmt.Errorf("bad host %q", truncate(a))
		}
		ip := net.ParseIP(a[1:end])
		if ip == nil || ip.To4() != nil || (end+1 < len(a) && !validPort(a[end+1:])) {
			return "", fmt.Errorf("bad host %q", truncate(a))
		}
		return strings.ToLower(a[1:end]), nil
	}
	if h, p, ok := strings.Cut(a, ":"); ok {
		if !validPort(":" + p) {
			return "", fmt.Errorf("bad port in host %q", truncate(a))
		}
		a = h
	}
	return checkHost(a)
}

func validPort(s string) bool {
	p, ok := strings.CutPrefix(s, ":")
	if !ok || len(p) > 5 {
		return false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
