package client

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSMistakesAreExplained(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"sites":[]}`)) })
	plain := httptest.NewServer(ok)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(ok)
	defer tlsSrv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	trusting, err := HTTPClient(caFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, base string
		hc         *http.Client
		want       string
	}{
		{"trusted", tlsSrv.URL, trusting, ""},
		{"untrusted", tlsSrv.URL, nil, "not trusted (give its CA's PEM file with --ca-file or $REFUGE_CA_FILE)"},
		{"https to a plain port", strings.Replace(plain.URL, "http://", "https://", 1), trusting, "answers plain HTTP, not TLS: use http://"},
		{"http to a TLS port", strings.Replace(tlsSrv.URL, "https://", "http://", 1), trusting, "speaks TLS: use https://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvCAFile, "")
			c, err := New(tc.base, "", tc.hc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Status(context.Background())
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v\nwant it to say %q", err, tc.want)
			}
		})
	}
	t.Setenv(EnvCAFile, filepath.Join(t.TempDir(), "missing.pem"))
	if _, err := New(tlsSrv.URL, "", nil); err == nil || !strings.Contains(err.Error(), "$REFUGE_CA_FILE: CA file: open") {
		t.Errorf("a missing $REFUGE_CA_FILE: %v", err)
	}
}
