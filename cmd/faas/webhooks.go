package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/wasmfaas/wasmfaas/hooks"
	"github.com/wasmfaas/wasmfaas/store"
)

// webhookFlags configure completion webhooks: the secret their signing keys
// come from and the addresses they may reach (API and dispatchers), and
// how they are delivered (dispatchers).
type webhookFlags struct {
	secret, secretFile string
	allow, deny        string
	timeout, maxAge    time.Duration
	backoff            time.Duration
	maxAttempts        int
}

func addWebhookFlags(fs *flagSet, delivers bool) *webhookFlags {
	w := &webhookFlags{}
	fs.StringVar(&w.secret, "webhook-secret", "", "`secret` (16+ visible ASCII characters) the completion webhooks' "+
		"signing keys are derived from (with HMAC-SHA256, one key per tenant; the secret itself in open mode) "+
		"(GET /webhook_secret tells a tenant its key). Give the API and every dispatcher the same one; without it, "+
		"callback_url is refused (faas up makes one up for the run). A command line is visible to other users: prefer "+
		"the variable or --webhook-secret-file")
	fs.StringVar(&w.secretFile, "webhook-secret-file", "", "`file` holding --webhook-secret")
	fs.StringVar(&w.allow, "webhook-allow", "", "`CIDRs` webhooks may reach although denied (comma-separated, e.g. "+
		"127.0.0.0/8 for a receiver on this machine)")
	fs.StringVar(&w.deny, "webhook-deny", "", "`CIDRs` webhooks may not reach, besides loopback, private (RFC 1918, "+
		"fc00::/7), shared, link-local, unspecified, broadcast and multicast addresses, which are always denied unless "+
		"--webhook-allow lets them (0.0.0.0/0,::/0 with --webhook-allow: an allow-list)")
	if delivers {
		fs.DurationVar(&w.timeout, "webhook-timeout", hooks.DefaultTimeout, "longest one webhook delivery attempt may take")
		fs.DurationVar(&w.maxAge, "webhook-max-age", hooks.DefaultMaxAge, "how long after a task became final its webhook "+
			"is retried; then it is recorded undeliverable")
		fs.IntVar(&w.maxAttempts, "webhook-max-attempts", hooks.DefaultMaxAttempts, "most delivery attempts of one webhook")
		fs.DurationVar(&w.backoff, "webhook-backoff", hooks.DefaultBackoff, "delay before a failed webhook's first retry; "+
			"it doubles at each next one (up to 5m), with jitter")
	}
	return w
}

// settings reads the secret and the address lists. The secret is never
// logged nor put in an error.
func (w *webhookFlags) settings() (hooks.Settings, error) {
	allow, err := hooks.ParseCIDRs(w.allow)
	if err != nil {
		return hooks.Settings{}, fmt.Errorf("--webhook-allow: %v", err)
	}
	deny, err := hooks.ParseCIDRs(w.deny)
	if err != nil {
		return hooks.Settings{}, fmt.Errorf("--webhook-deny: %v", err)
	}
	s := hooks.Settings{Guard: hooks.NewGuard(allow, deny)}
	secret := w.secret
	if w.secretFile != "" {
		if secret != "" {
			return hooks.Settings{}, fmt.Errorf("give --webhook-secret or --webhook-secret-file, not both")
		}
		b, err := os.ReadFile(w.secretFile)
		if err != nil {
			return hooks.Settings{}, fmt.Errorf("--webhook-secret-file: %v", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret != "" {
		if s.Signer, err = hooks.NewSigner(secret); err != nil {
			return hooks.Settings{}, fmt.Errorf("--webhook-secret: %v", err)
		}
	}
	return s, nil
}

// randomSecret is faas up's secret when none is given.
func randomSecret() (*hooks.Signer, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return hooks.NewSigner(hex.EncodeToString(b))
}

// deliverer is the dispatcher's webhook deliverer, nil without a secret.
func (w *webhookFlags) deliverer(st *store.Store, s hooks.Settings, log *slog.Logger) (*hooks.Deliverer, error) {
	if s.Signer == nil {
		log.Info("no --webhook-secret: this dispatcher delivers no completion webhooks")
		return nil, nil
	}
	if w.timeout <= 0 || w.maxAge <= 0 || w.maxAttempts < 1 || w.backoff <= 0 {
		return nil, fmt.Errorf("--webhook-timeout, --webhook-max-age and --webhook-backoff must be positive, --webhook-max-attempts at least 1")
	}
	return hooks.NewDeliverer(hooks.Config{Store: st, Settings: s, Timeout: w.timeout, MaxAge: w.maxAge,
		MaxAttempts: w.maxAttempts, Backoff: w.backoff, Logger: log})
}
