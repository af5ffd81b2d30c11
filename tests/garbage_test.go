package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/wasmfaas/wasmfaas/wire"
)

// zmtpGreeting is a ZMTP 3.0 NULL greeting.
func zmtpGreeting() []byte {
	g := make([]byte, 64)
	g[0], g[9], g[10] = 0xFF, 0x7F, 3
	copy(g[12:], "NULL")
	return g
}

func readyCommand(sockType string) []byte {
	body := []byte("\x05READY")
	body = append(body, byte(len("Socket-Type")))
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, uint32(len(sockType)))
	body = append(body, sockType...)
	return append([]byte{0x04, byte(len(body))}, body...)
}

// rawJunk opens TCP connections to addr that misbehave in every way below
// ZeroMQ: they stay open until the test ends.
func rawJunk(t *testing.T, addr, sockType string) {
	t.Helper()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial() // connects and says nothing
	dial().Write([]byte("GET / HTTP/1.1\r\nHost: faas\r\n\r\n"))
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(rand.IntN(256))
	}
	dial().Write(junk)
	c := dial() // a valid signature, then nothing
	c.Write(zmtpGreeting()[:10])
	// A READY whose metadata property has no value length: plain zmq4
	// indexes out of range on it and the process dies.
	c = dial()
	c.Write(zmtpGreeting())
	c.Write([]byte{0x04, 10, 5, 'R', 'E', 'A', 'D', 'Y', 3, 'a', 'b', 'c'})
	// A proper handshake, then a frame of 2^62 bytes: plain zmq4 panics in
	// makeslice.
	c = dial()
	c.Write(zmtpGreeting())
	c.Write(readyCommand(sockType))
	c.Write([]byte{0x02, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	// A proper handshake, then reserved flag bits.
	c = dial()
	c.Write(zmtpGreeting())
	c.Write(readyCommand(sockType))
	c.Write([]byte{0xf0, 0x01, 0x00})
}

// garbageFrames are single frames no worker sends.
func garbageFrames(maxMessage int) [][]byte {
	random := make([]byte, 1000)
	for i := range random {
		random[i] = byte(rand.IntN(256))
	}
	hello := (&wire.Message{Type: wire.MsgHello, Name: "x", Session: wire.ID16{1}, Nonce: wire.NewNonce()}).Encode(nil)
	v := wire.WireVersion
	return [][]byte{
		random,
		{},
		{v + 1, byte(wire.MsgHeartbeat), 0, 0}, // a future version
		{v, 0x7f, 0},                           // an unknown type
		hello[:len(hello)-3],                   // truncated
		(&wire.Message{Type: wire.MsgChallenge, Channel: wire.ID16{1}, Nonce: wire.NewNonce()}).Encode(nil), // a dispatcher's message
		(&wire.Message{Type: wire.MsgRegister, Capacity: 2}).Encode(nil),                                    // unsealed
		(&wire.Message{Type: wire.MsgHello, Nonce: wire.NewNonce()}).Encode(nil),                            // no name, no session
		bytes.Repeat([]byte{1}, maxMessage+1),                                                               // over the limit
	}
}

// v1Frame is a version-1 REGISTER (name "old", capacity 1), as a worker of
// the previous release sends it.
var v1Frame = []byte{1, 0x01, 3, 'o', 'l', 'd', 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 0, 0, 0}

// isV1VersionError reports whether b is an ERROR code VERSION laid out in
// wire version 1 (what a worker of the previous release can read).
func isV1VersionError(b []byte) bool {
	return len(b) > 3 && b[0] == 1 && b[1] == byte(wire.MsgError) && b[2] == wire.ErrCodeVersion
}

// sealedForNobody is a sealed message on a channel the dispatcher never
// opened (with a mac of zeros).
func sealedForNobody(m *wire.Message) []byte {
	m.Sealed, m.Channel, m.Seq = true, wire.NewID16(), 1
	return m.Encode(nil)
}

func recvWithin(s zmq4.Socket, d time.Duration) (zmq4.Msg, bool) {
	ch := make(chan zmq4.Msg, 1)
	go func() {
		m, err := s.Recv()
		if err == nil {
			ch <- m
		}
		close(ch)
	}()
	select {
	case m, ok := <-ch:
		return m, ok
	case <-time.After(d):
		return zmq4.Msg{}, false
	}
}

// Garbage on the dispatcher port, below and above ZeroMQ, does not stop it
// from serving its workers.
func TestGarbageOnDispatcherPort(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			const maxMsg = 1 << 20
			d := c.dispatcher("d1", "--max-message", strconv.Itoa(maxMsg))
			c.worker("w1", 1)
			d.waitLog(c.joined(), 1, 60*time.Second)
			addr := "127.0.0.1:" + strconv.Itoa(c.port)

			xs := seq(3)
			fn, args := payloads(t, 0, xs)
			ids := c.enqueue(fn, args)
			c.checkResults(ids, xs, c.waitFinal(ids, 60*time.Second))

			sockType := "DEALER"
			if c.mode == "pull" {
				sockType = "REQ"
			}
			rawJunk(t, addr, sockType)

			// ZeroMQ peers (plain zmq4, no checks of their own) sending
			// messages of our protocol that are wrong.
			ctx := context.Background()
			if c.mode == "push" {
				peer := zmq4.NewDealer(ctx)
				defer peer.Close()
				if err := peer.Dial("tcp://" + addr); err != nil {
					t.Fatal(err)
				}
				for _, f := range garbageFrames(maxMsg) {
					if err := peer.Send(zmq4.NewMsg(f)); err != nil {
						t.Fatal(err)
					}
				}
				peer.Send(zmq4.NewMsgFrom([]byte("two"), []byte("frames")))
				// A result from a peer that never said HELLO: ignored, and
				// the peer is told to start over.
				peer.Send(zmq4.NewMsg(sealedForNobody(&wire.Message{Type: wire.MsgResult,
					Results: []wire.Result{{ID: ids[0], Fence: 1, Result: nil}}})))
				// A worker of the previous release.
				peer.Send(zmq4.NewMsg(v1Frame))
				got := map[int]bool{}
				v1 := false
				for {
					m, ok := recvWithin(peer, 3*time.Second)
					if !ok {
						break
					}
					v1 = v1 || isV1VersionError(m.Frames[0])
					if msg, err := wire.Decode(m.Frames[0]); err == nil && msg.Type == wire.MsgError {
						got[msg.Code] = true
					}
				}
				if !got[wire.ErrCodeVersion] || !got[wire.ErrCodeUnknownSession] || !got[wire.ErrCodeMalformed] || !v1 {
					t.Errorf("ERROR replies to the garbage: %v (version 1 one: %v)", got, v1)
				}
			} else {
				for _, f := range garbageFrames(maxMsg) {
					peer := zmq4.NewReq(ctx)
					if err := peer.Dial("tcp://" + addr); err != nil {
						t.Fatal(err)
					}
					if err := peer.Send(zmq4.NewMsg(f)); err != nil {
						t.Fatal(err)
					}
					m, ok := recvWithin(peer, 5*time.Second)
					peer.Close()
					if !ok {
						t.Fatalf("no reply to a %d-byte garbage request", len(f))
					}
					// (zmq4's REP takes an empty request frame for part of
					// the envelope and echoes it: the answer is the last.)
					if msg, err := wire.Decode(m.Frames[len(m.Frames)-1]); err != nil || msg.Type != wire.MsgError {
						t.Errorf("reply to garbage: %v %v", msg, err)
					}
				}
				// A request on a channel never opened, and a worker of the
				// previous release.
				for _, f := range [][]byte{sealedForNobody(&wire.Message{Type: wire.MsgPull, Free: 2}), v1Frame} {
					peer := zmq4.NewReq(ctx)
					if err := peer.Dial("tcp://" + addr); err != nil {
						t.Fatal(err)
					}
					peer.Send(zmq4.NewMsg(f))
					m, ok := recvWithin(peer, 5*time.Second)
					peer.Close()
					if !ok {
						t.Fatal("no reply")
					}
					b := m.Frames[len(m.Frames)-1]
					if f[0] == 1 {
						if !isV1VersionError(b) {
							t.Errorf("reply to a version-1 request: % x", b)
						}
					} else if msg, err := wire.Decode(b); err != nil || msg.Code != wire.ErrCodeUnknownSession {
						t.Errorf("reply to a request on no channel: %+v %v", msg, err)
					}
				}
				// A DEALER that leaves out the REQ envelope, and one that
				// sends it with several frames.
				peer := zmq4.NewDealer(ctx)
				defer peer.Close()
				if err := peer.Dial("tcp://" + addr); err != nil {
					t.Fatal(err)
				}
				peer.Send(zmq4.NewMsg([]byte{1, 2, 3}))
				peer.Send(zmq4.NewMsgFrom(nil, []byte("a"), []byte("b")))
			}

			// It still serves: the worker gets new tasks and the results are
			// recorded.
			xs = seq(6)
			fn, args = payloads(t, 0, xs)
			ids = c.enqueue(fn, args)
			c.checkResults(ids, xs, c.waitFinal(ids, 60*time.Second))
			if !d.alive() {
				t.Fatal("the dispatcher died")
			}
			for _, want := range []string{"failed the ZMTP handshake", "larger than the limit", "malformed",
				"a worker speaks another wire version"} {
				if d.count(want) == 0 {
					t.Errorf("the dispatcher logged nothing about %q", want)
				}
			}
		})
	}
}
