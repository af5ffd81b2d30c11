package wire

import (
	"errors"
	"testing"
	"time"
)

func helloFrom(t *testing.T, name string) *Message {
	t.Helper()
	m, err := Decode((&Message{Type: MsgHello, Name: name, Session: NewID16(), Nonce: NewNonce()}).Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGateAdmission(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef0123456789abcdef")
	now := time.Now()
	for _, c := range []struct {
		name          string
		workerSecret  []byte
		wantFirstErr  error
		wantForgotten bool
	}{
		{"holder of the secret", secret, nil, false},
		{"no secret", nil, ErrRefused, true},
		{"another secret", []byte("ffffffffffffffffffffffffffffffffffffffffffffffffffff"), ErrRefused, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewGate[string](secret)
			hello := helloFrom(t, "w1")
			ch, challenge, err := g.Hello(hello)
			if err != nil || !challenge.Secured || challenge.Channel != ch.ID {
				t.Fatalf("Hello: %v %+v", err, challenge)
			}
			g.Add("conn", ch, now)
			if g.Pending() != 1 {
				t.Fatalf("pending %d", g.Pending())
			}
			wc := WorkerChannel(c.workerSecret, hello, challenge)
			m, err := Decode(wc.Seal(&Message{Type: MsgRegister, Capacity: 2}))
			if err != nil {
				t.Fatal(err)
			}
			_, first, err := g.Open("conn", m, now)
			if !first || !errors.Is(err, c.wantFirstErr) && !(c.wantFirstErr == nil && err == nil) {
				t.Fatalf("Open: first %v err %v, want %v", first, err, c.wantFirstErr)
			}
			if (g.Get("conn") == nil) != c.wantForgotten || g.Pending() != 0 {
				t.Fatalf("after the proof: channel kept %v, pending %d", g.Get("conn") != nil, g.Pending())
			}
			if c.wantForgotten {
				if _, _, err := g.Open("conn", m, now); !errors.Is(err, ErrUnknownChannel) {
					t.Fatalf("Open after refusal: %v", err)
				}
				return
			}
			// A replay on the established channel fails, but is not a refusal.
			if _, first, err := g.Open("conn", m, now); first || err == nil || errors.Is(err, ErrRefused) {
				t.Fatalf("replay: first %v err %v", first, err)
			}
		})
	}
}

func TestGateBoundsPending(t *testing.T) {
	g := NewGate[int](nil)
	now := time.Now()
	evicted := 0
	for i := 0; i < maxPending+10; i++ {
		ch, _, err := g.Hello(helloFrom(t, "w"))
		if err != nil {
			t.Fatal(err)
		}
		evicted += g.Add(i, ch, now)
	}
	if g.Pending() != maxPending || evicted != 10 {
		t.Fatalf("pending %d evicted %d", g.Pending(), evicted)
	}
	if g.Get(0) != nil || g.Get(maxPending+9) == nil {
		t.Fatal("the oldest should go first")
	}
	g.Expire(now.Add(time.Hour), func(int, *Channel, time.Duration) bool { return true })
	if g.Pending() != 0 || len(g.chans) != 0 {
		t.Fatalf("after Expire: pending %d, %d channels", g.Pending(), len(g.chans))
	}
}
