package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// writeCert writes a certificate for 127.0.0.1 signed by ca (self-signed
// when ca is nil) and its key, and returns their paths.
func writeCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (string, string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	parent, signer := tmpl, key
	if ca == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	cp, kp := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cp, kp, cert, key
}

// TestPeerMutualTLS forms a two-member cluster whose members talk over
// mutual TLS (certificates signed by one CA), and checks that a write
// through one member is read through the other.
func TestPeerMutualTLS(t *testing.T) {
	dir := t.TempDir()
	caPath, _, ca, caKey := writeCert(t, dir, "ca", nil, nil)
	var cfgs []MemberConfig
	var peers []string
	for _, name := range []string{"a", "b"} {
		cert, key, _, _ := writeCert(t, dir, name, ca, caKey)
		cu, err := FreeURL()
		if err != nil {
			t.Fatal(err)
		}
		pu, err := FreeURL()
		if err != nil {
			t.Fatal(err)
		}
		pu = strings.Replace(pu, "http://", "https://", 1)
		cfgs = append(cfgs, MemberConfig{Name: name, DataDir: filepath.Join(dir, name), ClientURL: cu, PeerURL: pu, Fast: true,
			StartTimeout: 20 * time.Second,
			PeerTLS:      transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: caPath, ClientCertAuth: true}})
		peers = append(peers, name+"="+pu)
	}
	members := make([]*Member, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(peers, ",")
		wg.Add(1)
		go func() {
			defer wg.Done()
			members[i], errs[i] = StartMember(cfgs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		defer members[i].Close()
	}
	sa, err := Open([]string{members[0].ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := Open([]string{members[1].ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	secret, _, err := sa.CreateToken(ctx, RoleViewer, "over-tls")
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := sb.Authenticate(ctx, secret); err != nil || tok.Name != "over-tls" {
		t.Fatalf("read through the other member: %+v, %v", tok, err)
	}
}
