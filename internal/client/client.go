// Package client talks to a refuge controller's REST API (package
// server) for the CLI.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// New returns a client of the controller at base (http://host:port) with
// a bearer token.
func New(base, token string, hc *http.Client) (*Client, error) {
	if base == "" {
		return nil, errors.New("no controller given: set --server or REFUGE_SERVER (http://HOST:PORT)")
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("server %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc}, nil
}

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
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		e := &Error{}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e.Problem) != nil || e.Status == 0 {
			e.Status, e.Title, e.Detail = resp.StatusCode, http.StatusText(resp.StatusCode), strings.TrimSpace(string(b))
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
