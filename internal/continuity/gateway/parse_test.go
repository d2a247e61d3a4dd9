package gateway

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
)

// clientHello captures the first bytes a crypto/tls client sends for
// serverName.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // only the hello is read
		_ = c.Handshake()
	}()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for {
		n, err := b.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if _, perr := ParseSNI(buf); !errors.Is(perr, errIncomplete) || err != nil {
			return buf
		}
	}
}

func TestParseSNI(t *testing.T) {
	for _, name := range []string{"moodle.example.ac.jp", "A.Example.ORG", ""} {
		hello := clientHello(t, name)
		got, err := ParseSNI(hello)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if got != strings.ToLower(name) {
			t.Fatalf("got %q, want %q", got, name)
		}
		// Every proper prefix asks for more.
		for i := 0; i < len(hello); i++ {
			if _, err := ParseSNI(hello[:i]); !errors.Is(err, errIncomplete) {
				t.Fatalf("%q prefix %d: err = %v, want errIncomplete", name, i, err)
			}
		}
		// The hello split over two records parses the same.
		body := hello[5:]
		split := append([]byte{22, 3, 1, 0, 10}, body[:10]...)
		rest := len(body) - 10
		split = append(split, 22, 3, 1, byte(rest>>8), byte(rest))
		split = append(split, body[10:]...)
		if got2, err := ParseSNI(split); err != nil || got2 != got {
			t.Fatalf("split hello: %q, %v", got2, err)
		}
	}
	for _, bad := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n"),
		{22, 3, 1, 0, 0},
		{22, 3, 1, 0, 4, 2, 0, 0, 0},         // ServerHello
		{22, 3, 1, 0, 5, 1, 0, 0, 1, 0},      // truncated body
		{22, 9, 1, 0, 4, 1, 0, 0, 0},         // bad version
		{23, 3, 3, 0, 4, 1, 0, 0, 0},         // application data
		{22, 3, 1, 0x40, 1, 1, 0, 0, 0, 0x0}, // record too long
	} {
		if _, err := ParseSNI(bad); err == nil || errors.Is(err, errIncomplete) {
			t.Errorf("ParseSNI(%q) = %v, want an error", bad, err)
		}
	}
}

func TestParseHost(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"GET / HTTP/1.1\r\nHost: Moodle.Example.org\r\n\r\n", "moodle.example.org", ""},
		{"GET / HTTP/1.1\r\nhost:moodle.example.org:8080\r\nAccept: */*\r\n\r\n", "moodle.example.org", ""},
		{"GET / HTTP/1.1\r\nHost: [2001:DB8::1]:80\r\n\r\n", "2001:db8::1", ""},
		{"GET / HTTP/1.1\r\nHost: moodle.example.org.\r\n\r\n", "moodle.example.org", ""},
		{"GET http://wiki.example.org/x HTTP/1.1\r\nHost: other\r\n\r\n", "wiki.example.org", ""},
		{"GET / HTTP/1.0\r\n\r\n", "", "without a Host"},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "", "more than one"},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "", "bad host"},
		{"GET / HTTP/1.1\r\nHost: a:x\r\n\r\n", "", "bad port"},
		{"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "", "bad host"},
		{"GET / HTTP/1.1\r\nno colon\r\n\r\n", "", "malformed header"},
		{"\x16\x03\x01\x00\x10junk\r\n", "", "not an HTTP"},
		{"get / HTTP/1.1\r\nHost: a\r\n\r\n", "", "bad HTTP method"},
		{"GET / HTTP/1.1\r\nHost: a", "", "incomplete"},
		{"GET / HTT", "", "incomplete"},
	}
	for _, c := range cases {
		got, err := ParseHost([]byte(c.in))
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseHost(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseHost(%q) = %q, %v; want error %q", c.in, got, err, c.err)
		}
	}
	if _, err := ParseHost([]byte("GET / HTTP/1.1\r\nX: " + strings.Repeat("a", maxHead))); err == nil || errors.Is(err, errIncomplete) {
		t.Errorf("over-long head: %v", err)
	}
}

// FuzzParseSNI: never panics; a name returned is a valid lower-case host
// name; whatever parses also parses with trailing bytes after it.
func FuzzParseSNI(f *testing.F) {
	f.Add(clientHello(f, "moodle.example.ac.jp"))
	f.Add(clientHello(f, ""))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := ParseSNI(b)
		if err != nil {
			return
		}
		if name != "" {
			if n2, err := checkHost(name); err != nil || n2 != name {
				t.Fatalf("returned host %q does not check: %v", name, err)
			}
		}
	})
}

// FuzzParseHost: never panics; a host returned is a valid host name or an
// IPv6 literal, and parsing is stable under appended body bytes.
func FuzzParseHost(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: moodle.example.org:443\r\n\r\n"))
	f.Add([]byte("GET http://[2001:db8::1]:80/ HTTP/1.1\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		host, err := ParseHost(b)
		if err != nil {
			return
		}
		if ip := net.ParseIP(host); ip == nil {
			if h2, err := checkHost(host); err != nil || h2 != host {
				t.Fatalf("returned host %q does not check: %v", host, err)
			}
		}
		again, err := ParseHost(append(append([]byte{}, b...), "trailing body"...))
		if err != nil || again != host {
			t.Fatalf("appending a body changed the result: %q, %v", again, err)
		}
	})
}
