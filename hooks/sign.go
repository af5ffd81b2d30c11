package hooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signatures. Every webhook carries
//
//	X-WasmFaaS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>
//	X-WasmFaaS-Timestamp: <the same unix seconds>
//
// where key is the tenant's signing key (Signer.Key) and body the exact
// bytes of the request body. A receiver recomputes the HMAC over the
// timestamp, a dot and the body it got, compares it in constant time, and
// refuses a timestamp too far from its clock (Verify: 5 minutes), so that
// a captured request cannot be replayed later. Each attempt is signed
// anew, with its own timestamp.

// MinSecretLength is the shortest webhook secret accepted.
const MinSecretLength = 16

// DefaultTolerance is how far from now Verify accepts a signature's
// timestamp.
const DefaultTolerance = 5 * time.Minute

// Signer holds the operator's webhook secret (--webhook-secret) and derives
// each tenant's signing key from it, so that every API and dispatcher
// process with the same secret signs alike, nothing secret is stored in
// Redis, and no tenant can sign for another.
type Signer struct{ secret string }

// NewSigner checks secret: at least MinSecretLength characters of visible
// ASCII. The error never contains it.
func NewSigner(secret string) (*Signer, error) {
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("the webhook secret is too weak: %d characters, at least %d are needed (make one with: openssl rand -hex 32)",
			len(secret), MinSecretLength)
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; c <= ' ' || c > '~' {
			return nil, errors.New("the webhook secret may hold only visible ASCII characters")
		}
	}
	return &Signer{secret: secret}, nil
}

// Key is tenant's signing key: the secret itself for the default tenant
// "" (open mode: the operator knows it), else
// hex(HMAC-SHA256(secret, "wasmfaas-webhook-key:" + tenant)), 64 hex
// digits. GET /webhook_secret tells each tenant its own. The key's bytes
// (its text, as ASCII) are the HMAC key of the signatures.
func (s *Signer) Key(tenant string) string {
	if tenant == "" {
		return s.secret
	}
	m := hmac.New(sha256.New, []byte(s.secret))
	m.Write([]byte("wasmfaas-webhook-key:" + tenant))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign is the X-WasmFaaS-Signature of body sent at t with key.
func Sign(key string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(key, ts, body)
}

func mac(key, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks an X-WasmFaaS-Signature header against body and key, and
// that its timestamp is within tolerance of now: what a Go receiver does
// (the README has it in Python).
func Verify(key, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("malformed signature header: want t=<unix>,v1=<hex>")
	}
	if d := now.Sub(time.Unix(secs, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature timestamp %d is %v away from now (more than %v): a replay?", secs, d.Round(time.Second), tolerance)
	}
	want := mac(key, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature mismatch")
}
