package api

import (
	"net/http"

	"github.com/wasmfaas/wasmfaas/hooks"
)

// Completion webhooks: a function registered with "callback_url" gives its
// calls a default, a call may give its own (or null for none); the store
// queues the webhook when the task becomes final and the dispatchers'
// deliverers post it (package hooks). The API checks the URLs and tells
// each tenant the key its webhooks are signed with.

type webhookSecretResponse struct {
	Secret    string `json:"secret" doc:"the key the caller's webhooks are signed with: HMAC-SHA256 over the bytes of \"<t>.<body>\" with this text (as ASCII bytes) as the key"`
	Signature string `json:"signature" doc:"how the X-WasmFaaS-Signature header is made"`
	Tolerance int    `json:"tolerance_seconds" doc:"how far from the receiver's clock a signature's timestamp should be accepted, at most (replays)"`
}

// webhookSecret answers GET /webhook_secret: the caller's tenant's signing
// key (derived from the server's --webhook-secret; the secret itself in
// open mode).
func (h *Handler) webhookSecret(w http.ResponseWriter, r *http.Request) error {
	s := h.opts.Webhooks.Signer
	if s == nil {
		return errorf(http.StatusNotFound, "completion webhooks are off on this server (it was started without --webhook-secret)")
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, webhookSecretResponse{Secret: s.Key(tenantOf(r)), Signature: signatureScheme,
		Tolerance: int(hooks.DefaultTolerance.Seconds())})
	return nil
}

const signatureScheme = "X-WasmFaaS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>"
