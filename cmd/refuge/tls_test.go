package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/client"
)

// testPKI writes a CA and a certificate for 127.0.0.1 signed by it into
// dir, and returns the files: CA certificate, server certificate, key.
func testPKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "refuge test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "refuge controller"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "EC PRIVATE KEY", keyDER)
}

// TestServeTLS: refuge serve --tls-cert/--tls-key with a certificate the
// test makes; the CLI trusts its CA through $REFUGE_CA_FILE or --ca-file
// and reads the status over https; without the CA, with plain http:// to
// the TLS port, and with a CA file that is not one, it fails with a
// message saying what to do.
func TestServeTLS(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after serve has stopped
	dir := t.TempDir()
	ca, cert, key := testPKI(t, dir)
	hc, err := client.HTTPClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	s := startServeWith(t, serveWith{dir: dir, scheme: "https", client: hc},
		"--simulate", exampleDir, "--tls-cert", cert, "--tls-key", key)
	addr := strings.TrimPrefix(s.url, "https://")
	cli := func(args ...string) (string, string, int) {
		var o, e bytes.Buffer
		code := run(args, &o, &e)
		return o.String(), e.String(), code
	}
	status := func(o string) {
		t.Helper()
		var st struct {
			Sites []struct {
				Name string `json:"name"`
			} `json:"sites"`
		}
		if err := json.Unmarshal([]byte(o), &st); err != nil || len(st.Sites) == 0 {
			t.Errorf("status --json over https: %v %.200s", err, o)
		}
	}

	t.Setenv(serverEnv, "https://"+addr)
	t.Setenv(client.EnvCAFile, ca)
	o, e, code := cli("status", "--json")
	if code != 0 {
		t.Fatalf("status with $%s: %d %s", client.EnvCAFile, code, e)
	}
	status(o)

	t.Setenv(client.EnvCAFile, "")
	if o, e, code = cli("status", "--json", "--ca-file", ca); code != 0 {
		t.Fatalf("status --ca-file: %d %s", code, e)
	}
	status(o)

	for _, tc := range []struct {
		name   string
		server string
		args   []string
		want   string
	}{
		{"no CA", "https://" + addr, nil, "not trusted (give its CA's PEM file with --ca-file or $REFUGE_CA_FILE)"},
		{"plain HTTP to the TLS port", "http://" + addr, nil, "speaks TLS: use https://"},
		{"a CA file without a certificate", "https://" + addr, []string{"--ca-file", key}, "--ca-file: CA file " + key + ": no PEM certificate in it"},
		{"a CA file that is not there", "https://" + addr, []string{"--ca-file", filepath.Join(dir, "nope.pem")}, "--ca-file: CA file: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(serverEnv, tc.server)
			_, e, code := cli(append([]string{"status", "--json"}, tc.args...)...)
			if code == 0 || !strings.Contains(e, tc.want) {
				t.Errorf("exit %d, stderr %q\nwant it to say %q", code, e, tc.want)
			}
		})
	}
}
