package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The HTTP client of the user commands (faas fn register, call, result,
// tasks): the standard library only, JSON both ways, the server's
// {"detail"} in every error.

// defaultAddr is where `faas up` and `faas api` listen unless told, and so
// what the user commands call.
const defaultAddr = "127.0.0.1:8000"

// requestTimeout bounds one request, on top of the long-poll it asks for.
const requestTimeout = 30 * time.Second

// clientFlags are the flags every user command has.
type clientFlags struct {
	url, token string
}

// clientEnvFlags are the flags of a user command that FAAS_* variables set;
// the others come from the command line only (FAAS_NAME and
// FAAS_ISOLATION, for one, belong to the dispatchers).
var clientEnvFlags = []string{"url", "token"}

func addClientFlags(fs *flagSet) *clientFlags {
	c := &clientFlags{}
	fs.StringVar(&c.url, "url", "http://"+defaultAddr, "the API's base URL")
	fs.StringVar(&c.token, "token", "", "API token, sent as \"Authorization: Bearer <token>\" when the server has tokens "+
		"(a command line is visible to other users of the machine: prefer the variable)")
	return c
}

// client checks the base URL and returns a client for it.
func (c *clientFlags) client() (*apiClient, error) {
	u, err := url.Parse(strings.TrimRight(c.url, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--url (FAAS_URL) must be an http:// or https:// base URL such as http://%s, not %q", defaultAddr, c.url)
	}
	return &apiClient{base: u.String(), token: strings.TrimSpace(c.token), hc: &http.Client{}}, nil
}

// apiClient calls a WasmFaaS API.
type apiClient struct {
	base  string // without a trailing slash
	token string // "": none sent
	hc    *http.Client
}

// apiError is an answer other than 200: its status and the server's detail.
type apiError struct {
	method, path string
	status       int
	detail       string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s: %s", e.method, e.path, e.status, http.StatusText(e.status), e.detail)
	if e.status == http.StatusUnauthorized {
		msg += " (give the API token with FAAS_TOKEN or --token)"
	}
	return msg
}

// do sends body (nil: none) as JSON and decodes a 200 answer into out (nil:
// not decoded); it returns the answer's bytes. The request ends with ctx or
// after timeout.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode the request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			return nil, fmt.Errorf("%s %s: interrupted: %w", method, path, ctx.Err())
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return nil, fmt.Errorf("%s %s: no answer from %s within %s", method, path, c.base, timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // not the method and URL again
		}
		return nil, fmt.Errorf("%s %s: cannot reach the API at %s (is it running? --url, FAAS_URL): %w", method, path, c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Detail == "" {
			e.Detail = truncateText(strings.TrimSpace(string(raw)), 300)
		}
		return nil, &apiError{method: method, path: path, status: resp.StatusCode, detail: e.Detail}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: the answer is not the JSON expected (is %s a WasmFaaS API?): %w", method, path, c.base, err)
		}
	}
	return raw, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
