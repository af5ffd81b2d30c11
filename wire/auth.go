package wire

// Worker admission: the worker secret, the keys of a channel, and sealing
// and opening messages with them. The scheme, and what it protects against
// and what not, is described under "Authentication" in wire.go.

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

const (
	// NonceSize is the size of the HELLO and CHALLENGE nonces.
	NonceSize = 32
	// MACSize is the size of the mac that ends a sealed frame
	// (HMAC-SHA256).
	MACSize = 32
	// MinSecretBytes is the least a worker secret must hold (see
	// ParseSecret).
	MinSecretBytes = 32
	// maxSecretText bounds a secret file.
	maxSecretText = 64 << 10
	// maxPending bounds the channels a dispatcher keeps that have proved
	// nothing yet (a HELLO was answered, no valid sealed message came).
	maxPending = 1024
)

// Authentication errors (Channel.Open).
var (
	// ErrUnauthenticated: the message is not sealed by this channel's key.
	ErrUnauthenticated = errors.New("wire: message failed authentication")
	// ErrReplay: the message verifies but its sequence number does not go
	// forward (a replayed or reordered message).
	ErrReplay = errors.New("wire: replayed or reordered message")
)

// openSecret is the key material without a worker secret (open admission):
// public, so the keys are anyone's and sealing only catches corruption.
var openSecret = []byte("wasmfaas wire 2: no worker secret (open admission)")

// ParseSecret turns the text of a secret file or variable into a worker
// secret: surrounding white space is removed and the rest, as it is, is the
// secret (give every side the same text). It must hold at least
// MinSecretBytes: hex text at least 64 digits, base64 text at least 32
// decoded bytes, any other text at least 32 characters; and it must not be
// a short pattern repeated. How random a secret is cannot be measured; this
// catches mistakes. Make one with `openssl rand -hex 32`.
func ParseSecret(text []byte) ([]byte, error) {
	if len(text) > maxSecretText {
		return nil, fmt.Errorf("the worker secret is %d bytes long: not a secret (at most %d)", len(text), maxSecretText)
	}
	s := bytes.TrimSpace(text)
	if len(s) == 0 {
		return nil, errors.New("the worker secret is empty")
	}
	if err := CheckSecret(s); err != nil {
		return nil, err
	}
	return bytes.Clone(s), nil
}

// CheckSecret reports whether s is acceptable as a worker secret (see
// ParseSecret); nil and empty mean no secret and are accepted.
func CheckSecret(s []byte) error {
	if len(s) == 0 {
		return nil
	}
	const how = " (make one with `openssl rand -hex 32`)"
	if n, what := secretBytes(s); n < MinSecretBytes {
		return fmt.Errorf("the worker secret is too short: %s, it needs at least %d random bytes%s", what, MinSecretBytes, how)
	}
	distinct := map[byte]bool{}
	for _, c := range s {
		distinct[c] = true
	}
	if len(distinct) < 8 || periodic(s) {
		return errors.New("the worker secret is a short pattern repeated, not random bytes" + how)
	}
	return nil
}

// secretBytes is how many bytes of key material s holds by its encoding,
// and how that was counted.
func secretBytes(s []byte) (int, string) {
	isHex := true
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			isHex = false
			break
		}
	}
	if isHex {
		return len(s) / 2, fmt.Sprintf("%d hex digits hold %d bytes", len(s), len(s)/2)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(string(s)); err == nil {
			return len(b), fmt.Sprintf("%d characters of base64 hold %d bytes", len(s), len(b))
		}
	}
	return len(s), fmt.Sprintf("%d characters", len(s))
}

// periodic reports whether s is a shorter string repeated.
func periodic(s []byte) bool {
	ss := append(bytes.Clone(s), s...)
	return bytes.Contains(ss[1:len(ss)-1], s)
}

// NewID16 returns a random identifier.
func NewID16() ID16 {
	var id ID16
	if _, err := rand.Read(id[:]); err != nil {
		panic(err)
	}
	return id
}

// NewNonce returns NonceSize fresh random bytes.
func NewNonce() []byte {
	b := make([]byte, NonceSize)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// Channel is one authenticated conversation between a worker and a
// dispatcher: a push connection, or a pull lane socket. It holds the two
// direction keys and the sequence numbers; it is not safe for concurrent
// use.
type Channel struct {
	ID ID16
	// Name, Session and Lane are the worker's identity, from its HELLO
	// and bound into the keys.
	Name    string
	Session ID16
	Lane    int

	send, recv []byte
	sent       uint64 // the last sequence number sealed
	got        uint64 // the last sequence number accepted
}

// WorkerChannel is the worker's side of the channel that challenge (a
// CHALLENGE) opens in answer to hello (the worker's HELLO).
func WorkerChannel(secret []byte, hello, challenge *Message) *Channel {
	c := newChannel(challenge.Channel, hello)
	c.send, c.recv = c.key(secret, "w2d", hello.Nonce, challenge.Nonce), c.key(secret, "d2w", hello.Nonce, challenge.Nonce)
	return c
}

// DispatcherChannel is the dispatcher's side of the channel it opens with
// id and nonce (its CHALLENGE) in answer to hello.
func DispatcherChannel(secret []byte, hello *Message, id ID16, nonce []byte) *Channel {
	c := newChannel(id, hello)
	c.send, c.recv = c.key(secret, "d2w", hello.Nonce, nonce), c.key(secret, "w2d", hello.Nonce, nonce)
	return c
}

func newChannel(id ID16, hello *Message) *Channel {
	return &Channel{ID: id, Name: hello.Name, Session: hello.Session, Lane: hello.Lane}
}

// key derives the key of one direction (see wire.go).
func (c *Channel) key(secret []byte, dir string, nw, nd []byte) []byte {
	ikm := secret
	if len(ikm) == 0 {
		ikm = openSecret
	}
	salt := append(append(make([]byte, 0, len(nw)+len(nd)), nw...), nd...)
	info := append([]byte("wasmfaas wire 2 "+dir+"\x00"), c.ID[:]...)
	info = binary.AppendUvarint(info, uint64(len(c.Name)))
	info = append(info, c.Name...)
	info = append(info, c.Session[:]...)
	info = binary.AppendUvarint(info, uint64(max(c.Lane, 0)))
	k, err := hkdf.Key(sha256.New, ikm, salt, string(info), 32)
	if err != nil {
		panic(err) // only for keys shorter than 14 bytes in FIPS-only mode
	}
	return k
}

func mac(key, b []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(nil)
}

// Seal encodes m sealed with the next sequence number of this side.
func (c *Channel) Seal(m *Message) []byte {
	c.sent++
	return c.SealAs(m, c.sent)
}

// SealAs encodes m sealed with sequence number seq (a pull reply carries
// its request's). m's seal fields are set.
func (c *Channel) SealAs(m *Message, seq uint64) []byte {
	m.Sealed, m.Channel, m.Seq, m.MAC = true, c.ID, seq, [MACSize]byte{}
	b := m.Encode(nil)
	copy(m.MAC[:], mac(c.send, b[:len(b)-MACSize]))
	copy(b[len(b)-MACSize:], m.MAC[:])
	return b
}

// Verify checks that m (decoded from a frame) is sealed by the other side
// of this channel and unchanged. It does not look at its sequence number.
func (c *Channel) Verify(m *Message) error {
	switch {
	case !m.Sealed:
		return fmt.Errorf("%w: an unsealed %s", ErrUnauthenticated, m.Type)
	case m.Channel != c.ID:
		return fmt.Errorf("%w: %s sealed for another channel", ErrUnauthenticated, m.Type)
	case m.signed == nil:
		return fmt.Errorf("%w: %s was not received", ErrUnauthenticated, m.Type)
	case !hmac.Equal(mac(c.recv, m.signed), m.MAC[:]):
		return fmt.Errorf("%w: %s has a wrong mac (wrong key, or changed on the way)", ErrUnauthenticated, m.Type)
	}
	return nil
}

// Open checks m as Verify does, and that its sequence number is larger
// than every one accepted before; then it is accepted.
func (c *Channel) Open(m *Message) error {
	if err := c.Verify(m); err != nil {
		return err
	}
	if m.Seq <= c.got {
		return fmt.Errorf("%w: %s with sequence number %d after %d", ErrReplay, m.Type, m.Seq, c.got)
	}
	c.got = m.Seq
	return nil
}

// OpenReply checks a pull reply: as Open, and that it answers the request
// sealed with sequence number seq.
func (c *Channel) OpenReply(m *Message, seq uint64) error {
	if err := c.Verify(m); err != nil {
		return err
	}
	if m.Seq != seq || m.Seq <= c.got {
		return fmt.Errorf("%w: a %s for request %d in answer to request %d", ErrReplay, m.Type, m.Seq, seq)
	}
	c.got = m.Seq
	return nil
}

// Proved reports whether a message of the other side has been accepted on
// the channel (for a dispatcher: the worker proved it holds the secret).
func (c *Channel) Proved() bool { return c.got > 0 }

// Sent is the last sequence number sealed with Seal.
func (c *Channel) Sent() uint64 { return c.sent }

// CheckHello validates a HELLO's identity fields and says what is wrong.
func CheckHello(m *Message) error {
	switch {
	case m.Name == "" || len(m.Name) > 256:
		return errors.New("the worker name must be 1 to 256 bytes")
	case m.Session.IsZero():
		return errors.New("no session")
	case m.Lane > MaxCapacity:
		return fmt.Errorf("lane %d", m.Lane)
	}
	return nil
}

// IsLoopback reports whether a listening address is reachable from this
// host only.
func IsLoopback(a net.Addr) bool {
	if a == nil {
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
