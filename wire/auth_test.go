package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

var (
	secretA = []byte(strings.Repeat("0123456789abcdef", 3) + "fedcba9876543210") // 64 hex digits
	secretB = []byte("3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=")             // base64 of 32 bytes
)

// sealedSamples are the sample messages that travel sealed.
func sealedSamples() []*Message {
	var out []*Message
	for _, m := range sampleMessages() {
		if m.Sealed || m.Type.Sealing() != OpenOnly {
			out = append(out, m)
		}
	}
	return out
}

func decodeOK(t testing.TB, b []byte) *Message {
	t.Helper()
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Both directions seal and open, in either admission mode, and the
// sequence numbers go up by one per message sent.
func TestChannelBothWays(t *testing.T) {
	for _, secret := range [][]byte{nil, secretA} {
		w, d := testChannels(t, secret, secret)
		for i, m := range sealedSamples() {
			c := *m
			got := decodeOK(t, w.Seal(&c))
			if got.Seq != uint64(i+1) {
				t.Fatalf("seq %d, want %d", got.Seq, i+1)
			}
			if err := d.Open(got); err != nil {
				t.Fatalf("%s worker->dispatcher: %v", m.Type, err)
			}
			c = *m
			if err := w.Open(decodeOK(t, d.Seal(&c))); err != nil {
				t.Fatalf("%s dispatcher->worker: %v", m.Type, err)
			}
		}
		if !d.Proved() || !w.Proved() {
			t.Fatal("not proved")
		}
	}
}

// Changing any byte of a sealed frame (or cutting it, or adding to it)
// makes it fail: decoding, or the mac.
func TestChannelTamper(t *testing.T) {
	w, d := testChannels(t, secretA, secretA)
	for _, m := range sealedSamples() {
		c := *m
		b := w.Seal(&c)
		for i := range b {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				tb := bytes.Clone(b)
				tb[i] ^= x
				got, err := Decode(tb)
				if err != nil {
					continue
				}
				if err := d.Verify(got); err == nil {
					t.Fatalf("%s with byte %d ^ %#x verified", m.Type, i, x)
				} else if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("%s: %v", m.Type, err)
				}
			}
		}
		for _, tb := range [][]byte{b[:len(b)-1], append(bytes.Clone(b), 0), append(bytes.Clone(b[:len(b)-MACSize]), make([]byte, MACSize)...)} {
			if got, err := Decode(tb); err == nil && d.Verify(got) == nil {
				t.Fatalf("%s: a cut, extended or zeroed frame verified", m.Type)
			}
		}
		if err := d.Open(decodeOK(t, b)); err != nil {
			t.Fatalf("%s: the original: %v", m.Type, err)
		}
	}
}

// A message is accepted once: a replay, or an older message after a newer
// one, is refused.
func TestChannelReplay(t *testing.T) {
	w, d := testChannels(t, secretA, secretA)
	first := w.Seal(&Message{Type: MsgHeartbeat, Free: 1})
	second := w.Seal(&Message{Type: MsgHeartbeat, Free: 2})
	if err := d.Open(decodeOK(t, first)); err != nil {
		t.Fatal(err)
	}
	if err := d.Open(decodeOK(t, first)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	third := w.Seal(&Message{Type: MsgHeartbeat, Free: 3})
	if err := d.Open(decodeOK(t, third)); err != nil {
		t.Fatal(err) // a gap is allowed
	}
	if err := d.Open(decodeOK(t, second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("reordered: %v", err)
	}
	// A pull reply must answer the request it is for.
	req := w.Seal(&Message{Type: MsgPull})
	rm := decodeOK(t, req)
	if err := d.Open(rm); err != nil {
		t.Fatal(err)
	}
	reply := d.SealAs(&Message{Type: MsgWork, WorkSeq: 1}, rm.Seq)
	if err := w.OpenReply(decodeOK(t, reply), rm.Seq+1); !errors.Is(err, ErrReplay) {
		t.Fatalf("a reply to another request: %v", err)
	}
	if err := w.OpenReply(decodeOK(t, reply), rm.Seq); err != nil {
		t.Fatal(err)
	}
	if err := w.OpenReply(decodeOK(t, reply), rm.Seq); !errors.Is(err, ErrReplay) {
		t.Fatalf("a replayed reply: %v", err)
	}
}

// Keys differ by secret, by direction, by channel and by the identity in
// the HELLO: a frame verifies on its own channel, in its direction, only.
func TestChannelKeys(t *testing.T) {
	msg := func() *Message { return &Message{Type: MsgResult, Results: []Result{{ID: "t", Fence: 1}}} }
	refused := func(name string, from, to *Channel) {
		t.Helper()
		if err := to.Open(decodeOK(t, from.Seal(msg()))); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	w, d := testChannels(t, secretA, secretB)
	refused("other secret", w, d)
	w, d = testChannels(t, nil, secretA)
	refused("no secret against a secret", w, d)
	w, d = testChannels(t, secretA, nil)
	refused("a secret against none", w, d)
	refused("rogue dispatcher", d, w)
	w, d = testChannels(t, secretA, secretA)
	refused("reflected to its sender", w, w)
	w2, d2 := testChannels(t, secretA, secretA)
	refused("another channel", w, d2)
	refused("another channel's dispatcher", d2, w)
	_ = w2

	// An identity changed on the way (the worker name in the HELLO).
	hello := &Message{Type: MsgHello, Name: "w1", Session: ID16{1}, Nonce: NewNonce()}
	forged := *hello
	forged.Name = "w2"
	id, nonce := NewID16(), NewNonce()
	ch := decodeOK(t, (&Message{Type: MsgChallenge, Channel: id, Nonce: nonce, Secured: true}).Encode(nil))
	refused("another name", WorkerChannel(secretA, hello, ch), DispatcherChannel(secretA, &forged, id, nonce))
	// The same handshake gives the same keys.
	if err := DispatcherChannel(secretA, hello, id, nonce).Open(decodeOK(t, WorkerChannel(secretA, hello, ch).Seal(msg()))); err != nil {
		t.Error(err)
	}
	// An unsealed message never opens.
	if err := d.Open(decodeOK(t, (&Message{Type: MsgError, Code: 1}).Encode(nil))); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("open ERROR: %v", err)
	}
}

// Whatever the fuzzer makes of sealed frames, none verifies but an
// original, byte for byte.
func FuzzSealed(f *testing.F) {
	w, d := testChannels(f, secretA, secretA)
	var originals [][]byte
	for _, m := range sealedSamples() {
		c := *m
		b := w.Seal(&c)
		originals = append(originals, b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if d.Verify(m) != nil {
			return
		}
		for _, o := range originals {
			if bytes.Equal(o, b) {
				return
			}
		}
		t.Fatalf("a frame that is no original verified: %x", b)
	})
}

func TestParseSecret(t *testing.T) {
	random := make([]byte, 32)
	for i := range random {
		random[i] = byte(i*37 + 11)
	}
	for _, c := range []struct {
		text string
		ok   bool
	}{
		{hex.EncodeToString(random), true},
		{hex.EncodeToString(random) + "\n", true},
		{"  " + base64.StdEncoding.EncodeToString(random) + "\r\n", true},
		{base64.RawURLEncoding.EncodeToString(random), true},
		{"correct horse battery staple, 32+", true},
		{hex.EncodeToString(random[:31]), false},                // 31 bytes in hex
		{hex.EncodeToString(random[:16]), false},                // 32 hex digits: 16 bytes
		{base64.StdEncoding.EncodeToString(random[:24]), false}, // 32 characters: 24 bytes
		{"short secret", false},
		{"", false},
		{" \n\t", false},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("abcdefghij", 8), false},  // repeated
		{strings.Repeat("0123456789", 10), false}, // repeated
		{strings.Repeat("x", maxSecretText+1), false},
	} {
		s, err := ParseSecret([]byte(c.text))
		if (err == nil) != c.ok {
			t.Errorf("ParseSecret(%.40q): %v, want ok=%v", c.text, err, c.ok)
		}
		if err == nil && string(s) != strings.TrimSpace(c.text) {
			t.Errorf("ParseSecret(%q) = %q", c.text, s)
		}
		if err != nil && len(c.text) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(c.text)[:8]) {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
	if CheckSecret(nil) != nil {
		t.Error("no secret is not an error")
	}
}

// A version-1 peer gets an ERROR it can read.
func TestVersionError(t *testing.T) {
	b := VersionError(1)
	if b[0] != 1 || MsgType(b[1]) != MsgError || b[2] != ErrCodeVersion {
		t.Fatalf("% x", b[:3])
	}
	m := decodeOK(t, VersionError(3))
	if m.Type != MsgError || m.Code != ErrCodeVersion || !strings.Contains(m.Text, "version 3") {
		t.Fatalf("%+v", m)
	}
}
