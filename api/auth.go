package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/time/rate"

	"github.com/wasmfaas/wasmfaas/store"
)

// Authentication is optional. Without tokens the API is open and every
// request acts for the default tenant "" (what course clients expect). With
// tokens (Options.Auth), every route but the public ones (publicRoutes)
// needs "Authorization: Bearer <token>", and the request acts for the
// token's tenant: what it creates belongs to that tenant, and it sees
// nothing of any other (another tenant's function or task answers 404,
// exactly as an unknown id).

// MinTokenLength is the shortest token NewAuth accepts.
const MinTokenLength = 16

// Token gives a tenant access.
type Token struct {
	Tenant string
	Secret string
	// Where the token was read, for error messages ("tokens file x, line
	// 3"); never the secret itself.
	Where string
}

// ParseTokenFile reads a tokens file: one "tenant:token" per line; blank
// lines and lines starting with # are ignored; spaces around either part
// are trimmed. name is how errors refer to the file. Error messages never
// contain a token.
func ParseTokenFile(text, name string) ([]Token, error) {
	var out []Token
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t, err := parseToken(line, fmt.Sprintf("%s, line %d", name, i+1))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ParseTokenList reads "tenantA:tokenA,tenantB:tokenB" (FAAS_TOKENS); name
// is how errors refer to it.
func ParseTokenList(list, name string) ([]Token, error) {
	var out []Token
	for i, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		t, err := parseToken(item, fmt.Sprintf("%s, item %d", name, i+1))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseToken(s, where string) (Token, error) {
	tenant, secret, ok := strings.Cut(s, ":")
	if !ok {
		return Token{}, fmt.Errorf("%s: expected tenant:token", where)
	}
	return Token{Tenant: strings.TrimSpace(tenant), Secret: strings.TrimSpace(secret), Where: where}, nil
}

// Auth checks bearer tokens. Make one with NewAuth.
type Auth struct {
	hashes  [][sha256.Size]byte // SHA-256 of each token
	tenants []string            // the tenant of each token
}

// NewAuth checks tokens and returns what the API authenticates with: at
// least one token; each tenant name valid (store.ValidTenant); each token
// at least MinTokenLength characters of visible ASCII (no spaces, which a
// header could not carry); no token given twice. A tenant may have several
// tokens (to rotate them). Errors name the tenant and where the token was
// read, never the token.
func NewAuth(tokens []Token) (*Auth, error) {
	if len(tokens) == 0 {
		return nil, errors.New("no tokens given")
	}
	a := &Auth{}
	seen := map[[sha256.Size]byte]Token{}
	for _, t := range tokens {
		where := t.Where
		if where == "" {
			where = "token of tenant " + strconv.Quote(t.Tenant)
		}
		if err := store.ValidTenant(t.Tenant); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if len(t.Secret) < MinTokenLength {
			return nil, fmt.Errorf("%s: the token of tenant %q is too weak: %d characters, at least %d are needed "+
				"(make one with: openssl rand -hex 24)", where, t.Tenant, len(t.Secret), MinTokenLength)
		}
		for i := 0; i < len(t.Secret); i++ {
			if c := t.Secret[i]; c <= ' ' || c > '~' {
				return nil, fmt.Errorf("%s: the token of tenant %q has a character that is not visible ASCII "+
					"(at position %d); use letters, digits and punctuation", where, t.Tenant, i+1)
			}
		}
		h := sha256.Sum256([]byte(t.Secret))
		if other, dup := seen[h]; dup {
			return nil, fmt.Errorf("%s: the same token is given twice (tenants %q and %q; see %s)", where, other.Tenant, t.Tenant, other.Where)
		}
		seen[h] = t
		a.hashes = append(a.hashes, h)
		a.tenants = append(a.tenants, t.Tenant)
	}
	return a, nil
}

// Tenants lists the tenants, sorted, each once.
func (a *Auth) Tenants() []string {
	out := slices.Clone(a.tenants)
	slices.Sort(out)
	return slices.Compact(out)
}

// lookup finds the tenant of a presented token. Both sides are hashed, so
// every comparison is of 32 bytes whatever the token's length, and every
// configured token is compared (no early exit), so the time taken tells
// neither which tenant matched nor how much of a token was right.
func (a *Auth) lookup(secret string) (string, bool) {
	h := sha256.Sum256([]byte(secret))
	found, idx := 0, 0
	for i := range a.hashes {
		eq := subtle.ConstantTimeCompare(h[:], a.hashes[i][:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found != 1 {
		return "", false
	}
	return a.tenants[idx], true
}

// publicRoutes answer without a token: health, and the pages and the API
// description, which hold no tenant's data and are the same for everyone
// (the dashboard page asks for a token and sends it on its own requests).
var publicRoutes = map[string]bool{
	"GET /healthz":      true,
	"GET /":             true,
	"GET /docs":         true,
	"GET /openapi.json": true,
}

type tenantKey struct{}

// tenantOf is the tenant a request acts for ("" the default one).
func tenantOf(r *http.Request) string {
	t, _ := r.Context().Value(tenantKey{}).(string)
	return t
}

// isPublic reports whether r is for one of publicRoutes: the route chi
// will pick, so that no spelling of a path gets around the check.
func (h *Handler) isPublic(r *http.Request) bool {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	rctx := chi.NewRouteContext()
	if !h.mux.Match(rctx, r.Method, path) {
		return false
	}
	return publicRoutes[r.Method+" "+rctx.RoutePattern()]
}

const authRealm = `Bearer realm="wasmfaas"`

// guard authenticates every request but those for public routes (when
// tokens are configured) and applies the tenant's rate limit (when one is
// configured). Unknown routes and wrong methods need a token too, so that
// nothing but a 401 answers a caller without one.
func (h *Handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (h.auth == nil && h.limiter == nil) || h.isPublic(r) {
			// Open and unlimited, or a public route: nothing to check, and
			// the request acts for the default tenant.
			next.ServeHTTP(w, r)
			return
		}
		tenant := ""
		if h.auth != nil {
			var ok bool
			if tenant, ok = h.authenticate(w, r); !ok {
				return
			}
			if info := requestInfoFrom(r.Context()); info != nil {
				info.tenant = tenant
			}
		}
		if h.limiter != nil {
			if ok, wait := h.limiter.allow(tenant, time.Now()); !ok {
				secs := retryAfterSeconds(wait)
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
					"too many requests: at most %s requests per second (bursts of %d) per tenant; retry in %d s",
					strconv.FormatFloat(h.limiter.rate, 'f', -1, 64), h.limiter.burst, secs))
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	})
}

// authenticate reads the bearer token; without a valid one it answers 401
// and returns false.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		w.Header().Set("WWW-Authenticate", authRealm)
		writeError(w, http.StatusUnauthorized, "this server needs an API token: send the header \"Authorization: Bearer <token>\"")
		return "", false
	}
	fields := strings.Fields(vals[0])
	if len(vals) != 1 || len(fields) != 2 || !strings.EqualFold(fields[0], "Bearer") {
		w.Header().Set("WWW-Authenticate", authRealm+`, error="invalid_request"`)
		writeError(w, http.StatusUnauthorized, "the Authorization header must be one \"Bearer <token>\"")
		return "", false
	}
	tenant, ok := h.auth.lookup(fields[1])
	if !ok {
		w.Header().Set("WWW-Authenticate", authRealm+`, error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "the API token is not valid")
		return "", false
	}
	return tenant, true
}

func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// limiter is a token bucket per tenant (a golang.org/x/time/rate.Limiter
// each), in this process: each API process counts its own requests, so
// behind a load balancer that spreads a tenant's requests over k API
// processes the tenant gets up to k times the rate.
type limiter struct {
	rate  float64 // tokens added per second
	burst int     // bucket size

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(perSecond float64, burst int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(2*perSecond)))
	}
	return &limiter{rate: perSecond, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// bucket is tenant's limiter. The tenants are the configured ones (or the
// default one), so the map stays small.
func (l *limiter) bucket(tenant string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[tenant]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(l.rate), l.burst)
		l.buckets[tenant] = b
	}
	return b
}

// allow takes a token from tenant's bucket at now; if there is none, it
// takes nothing and says how long until there is one.
func (l *limiter) allow(tenant string, now time.Time) (bool, time.Duration) {
	b := l.bucket(tenant)
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
