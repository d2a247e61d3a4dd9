// Package client talks to a refuge controller's REST API (package
// server) for the CLI.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/api"
)

// Client is an API client.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// EnvCAFile names the environment variable with the PEM file of the CA
// (or the self-signed certificate) that signed an https:// controller's
// certificate, trusted besides the system's CAs.
const EnvCAFile = "REFUGE_CA_FILE"

// New returns a client of the controller at base (http://host:port or
// https://host:port) with a bearer token. hc nil: HTTPClient with the CA
// file $REFUGE_CA_FILE, if set.
func New(base, token string, hc *http.Client) (*Client, error) {
	if base == "" {
		return nil, errors.New("no controller given: set --server or REFUGE_SERVER (http://HOST:PORT)")
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("server %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	if hc == nil {
		var err error
		if hc, err = HTTPClient(os.Getenv(EnvCAFile)); err != nil {
			return nil, fmt.Errorf("$%s: %w", EnvCAFile, err)
		}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc}, nil
}

// HTTPClient returns the HTTP client the CLI uses: a 30 s timeout, and
// when caFile is not empty, the PEM certificates in it trusted besides the
// system's CAs.
func HTTPClient(caFile string) (*http.Client, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	if caFile == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc.Transport = tr
	return hc, nil
}

// transportError explains the usual TLS mistakes in err, a failed request.
func (c *Client) transportError(method, path string, err error) error {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown) || errors.As(err, &verify):
		return fmt.Errorf("%s %s: the controller's TLS certificate is not trusted (give its CA's PEM file with --ca-file or $%s): %w", method, path, EnvCAFile, err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%s %s: the controller at %s answers plain HTTP, not TLS: use http:// (%w)", method, path, c.base, err)
	}
	return fmt.Errorf("%s %s: %w", method, path, err)
}

// plainToTLS is what Go's HTTPS server answers a plain HTTP request with.
const plainToTLS = "Client sent an HTTP request to an HTTPS server."

// Error is a problem the server answered.
type Error struct {
	api.Problem
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("server: %d %s", e.Status, e.Title)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	for _, f := range e.Errors {
		msg += fmt.Sprintf("; %s: %s", f.Field, f.Message)
	}
	return msg
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		e := &Error{}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e.Problem) != nil || e.Status == 0 {
			e.Status, e.Title, e.Detail = resp.StatusCode, http.StatusText(resp.StatusCode), strings.TrimSpace(string(b))
		}
		if e.Detail == plainToTLS {
			return nil, fmt.Errorf("%s %s: the controller at %s speaks TLS: use https:// (it answered %d %q)", method, path, c.base, e.Status, plainToTLS)
		}
		return nil, e
	}
	return resp, nil
}

// do sends a request and decodes the JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// Status returns the federation's status.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var st api.Status
	return &st, c.do(ctx, "GET", "/v1/status", nil, &st)
}

// Evacuate starts an evacuation.
func (c *Client) Evacuate(ctx context.Context, q api.SitesRequest) (*api.Accepted, error) {
	var a api.Accepted
	return &a, c.do(ctx, "POST", "/v1/evacuations", q, &a)
}

// Drill starts a drill.
func (c *Client) Drill(ctx context.Context, q api.SitesRequest) (*api.Accepted, error) {
	var a api.Accepted
	return &a, c.do(ctx, "POST", "/v1/drills", q, &a)
}

// Plan asks for a dry-run plan.
func (c *Client) Plan(ctx context.Context, q api.SitesRequest) (json.RawMessage, error) {
	var p json.RawMessage
	return p, c.do(ctx, "POST", "/v1/plans", q, &p)
}

// Control pauses, resumes or cancels an evacuation.
func (c *Client) Control(ctx context.Context, id string, act api.Action) (*api.Accepted, error) {
	var a api.Accepted
	return &a, c.do(ctx, "POST", "/v1/evacuations/"+id+"/"+string(act), nil, &a)
}

// Operation returns an operation with its per-VM progress.
func (c *Client) Operation(ctx context.Context, id string) (*api.OperationDetail, error) {
	var d api.OperationDetail
	return &d, c.do(ctx, "GET", "/v1/operations/"+id, nil, &d)
}

// Operations lists operations.
func (c *Client) Operations(ctx context.Context) ([]api.Operation, error) {
	var ops []api.Operation
	return ops, c.do(ctx, "GET", "/v1/operations", nil, &ops)
}

// CreateToken creates a token.
func (c *Client) CreateToken(ctx context.Context, role, name string) (*api.TokenCreated, error) {
	var t api.TokenCreated
	return &t, c.do(ctx, "POST", "/v1/tokens", api.TokenRequest{Role: role, Name: name}, &t)
}

// Events streams the server's events to f until ctx ends, the stream
// ends, or f returns false.
func (c *Client) Events(ctx context.Context, f func(kind string, ch api.Change) bool) error {
	hc := *c.http
	hc.Timeout = 0 // a stream
	cc := *c
	cc.http = &hc
	resp, err := cc.request(ctx, "GET", "/v1/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	kind := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			var ch api.Change
			if err := json.Unmarshal([]byte(line[len("data: "):]), &ch); err != nil {
				return fmt.Errorf("events: %w", err)
			}
			if !f(kind, ch) {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
