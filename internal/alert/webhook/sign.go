package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The request headers of the relay protocol.
const (
	// HeaderRelay names the relay whose secret signed the request.
	HeaderRelay = "X-Refuge-Relay"
	// HeaderTimestamp is the signing time in Unix seconds (decimal digits).
	HeaderTimestamp = "X-Refuge-Timestamp"
	// HeaderSignature is "sha256=" and the lower-case hex HMAC-SHA256,
	// keyed with the relay's secret, of the timestamp header's value, ".",
	// and the body.
	HeaderSignature = "X-Refuge-Signature"
)

// MinSecretLen is the shortest secret accepted (128 bits as bytes).
const MinSecretLen = 16

// Timestamp formats a time as the X-Refuge-Timestamp header's value.
func Timestamp(ts time.Time) string { return strconv.FormatInt(ts.Unix(), 10) }

// Sign returns the X-Refuge-Signature header's value for body sent at ts:
// "sha256=" + hex(HMAC-SHA256(secret, Timestamp(ts) + "." + body)).
func Sign(secret, body []byte, ts time.Time) string {
	return "sha256=" + hex.EncodeToString(mac(secret, Timestamp(ts), body))
}

// Verify reports, in constant time, whether signature (the
// X-Refuge-Signature header) signs body under secret with timestamp (the
// X-Refuge-Timestamp header, as sent).
func Verify(secret, body []byte, timestamp, signature string) bool {
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// NewRequest returns a signed relay request: a POST of body to url with
// Content-Type application/json and the relay headers, signed at ts.
func NewRequest(ctx context.Context, url, relayID string, secret, body []byte, ts time.Time) (*http.Request, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("relay secret: %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderRelay, relayID)
	req.Header.Set(HeaderTimestamp, Timestamp(ts))
	req.Header.Set(HeaderSignature, Sign(secret, body, ts))
	return req, nil
}
