package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/ratelog"
)

func sampleMessages() []*Message {
	res := &faastype.Result{Status: faastype.Failed, Payload: []byte("\x80\x04K\x51."),
		Error:  &faastype.TaskError{Kind: faastype.KindUserException, Message: "boom", Traceback: "tb"},
		Stdout: []byte("out"), Stderr: []byte("err"), OutputTruncated: true, Warm: true,
		Timings: faastype.Timings{Queue: 0.5, Boot: 1, Deserialize: 2, Run: 3, Serialize: 4, Total: 5}}
	ok := &faastype.Result{Status: faastype.Completed, Payload: []byte{0, 1, 2, 255}}
	task := Task{Fence: 42, Attempt: 2, Task: faastype.Task{ID: "t-1", Function: "fn-1", Isolation: faastype.Fresh,
		Timeout: 3 * time.Second, WantJSON: true, Fn: []byte("fn\x00\xff"), Args: []byte("args"), Bundle: "b-hash"}}
	sess := ID16{1, 2, 3}
	held := []Held{{ID: "a", Fence: 1, Elapsed: 1500 * time.Millisecond}, {ID: "b", Fence: 9, Done: true}}
	nonce := bytes.Repeat([]byte{0xAB}, NonceSize)
	return []*Message{
		{Type: MsgHello, Name: "w1", Session: sess, Lane: 2, Nonce: nonce},
		{Type: MsgChallenge, Channel: ID16{5, 6}, Nonce: nonce, Secured: true},
		{Type: MsgRegister, Capacity: 4, Held: held, MaxMessage: 1 << 20},
		{Type: MsgWelcome, Incarnation: ID16{9}, Heartbeat: 200 * time.Millisecond, Misses: 3, Timeout: 30 * time.Second, MaxMessage: 1 << 20},
		{Type: MsgHeartbeat, Free: 3},
		{Type: MsgTask, Tasks: []Task{task}},
		{Type: MsgResult, Results: []Result{{ID: "t-1", Fence: 42, Result: res}}},
		{Type: MsgResult, Results: []Result{{ID: "t-2", Fence: 1, Result: ok}}},
		{Type: MsgAck, Acks: []Ack{{ID: "t-1", Fence: 42, Recorded: true}, {ID: "t-2", Fence: 1}}},
		{Type: MsgCancel, Cancels: []Ref{{ID: "t-3", Fence: 5}}},
		{Type: MsgRelease, Released: []Ref{{ID: "t-4", Fence: 6}}},
		{Type: MsgDrain},
		{Type: MsgBye},
		{Type: MsgError, Code: ErrCodeUnknownSession, Text: "register again"},
		{Type: MsgError, Code: ErrCodeUnauthorized, Text: "sealed", Sealed: true},
		{Type: MsgPull, Incarnation: ID16{7}, GotSeq: 12, Free: 1, Draining: true, Held: held,
			Results:  []Result{{ID: "t-1", Fence: 42, Result: res}, {ID: "t-2", Fence: 1, Result: ok}},
			Released: []Ref{{ID: "x", Fence: 1}}, MaxMessage: 7},
		{Type: MsgWork, Incarnation: ID16{7}, WorkSeq: 13, RetryAfter: 250 * time.Millisecond, Tasks: []Task{task, task},
			Acks: []Ack{{ID: "t-1", Fence: 42, Recorded: true}}, Cancels: []Ref{{ID: "y", Fence: 2}}, MaxMessage: 5 << 20},
		{Type: MsgWork, WorkSeq: 1},
		{Type: MsgFetch, Fetch: Ref{ID: "t-1", Fence: 42}, Bundle: "b-hash"},
		{Type: MsgBundle, Fetch: Ref{ID: "t-1", Fence: 42}, Bundle: "b-hash", BundleData: []byte("PK\x03\x04 zip\x00\xff")},
		{Type: MsgBundle, Fetch: Ref{ID: "t-1", Fence: 42}, Bundle: "b-hash", Code: BundleMissing, Text: "not in the store"},
		{Type: MsgBundle, Fetch: Ref{ID: "t-1", Fence: 42}, Bundle: "b-hash", Code: BundlePending, RetryAfter: 20 * time.Millisecond},
	}
}

// testChannels is a worker and a dispatcher channel of one handshake.
func testChannels(t testing.TB, workerSecret, dispatcherSecret []byte) (w, d *Channel) {
	t.Helper()
	hello := &Message{Type: MsgHello, Name: "w1", Session: ID16{1, 2, 3}, Lane: 1, Nonce: NewNonce()}
	hb, err := Decode(hello.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	id, nonce := NewID16(), NewNonce()
	d = DispatcherChannel(dispatcherSecret, hb, id, nonce)
	ch, err := Decode((&Message{Type: MsgChallenge, Channel: id, Nonce: nonce, Secured: len(dispatcherSecret) > 0}).Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	return WorkerChannel(workerSecret, hello, ch), d
}

// frame encodes a sample as it travels: sealed by the worker (messages of
// either direction: the decoder does not care who sealed) if its type
// must be, or if the sample says so.
func frame(w *Channel, m *Message) []byte {
	if m.Sealed || m.Type.Sealing() == SealedOnly {
		c := *m
		return w.Seal(&c)
	}
	return m.Encode(nil)
}

func normalize(m *Message) *Message {
	c := *m
	c.signed = nil
	c.Sealed, c.Seq, c.MAC = false, 0, [MACSize]byte{}
	if m.Type != MsgChallenge {
		c.Channel = ID16{}
	}
	for i := range c.Results {
		r := *c.Results[i].Result
		for _, p := range []*[]byte{&r.Payload, &r.Stdout, &r.Stderr} {
			if len(*p) == 0 {
				*p = nil
			}
		}
		c.Results[i].Result = &r
	}
	return &c
}

func TestWireRoundTrip(t *testing.T) {
	w, d := testChannels(t, nil, nil)
	for _, m := range sampleMessages() {
		b := frame(w, m)
		if b[0] != WireVersion || MsgType(b[1]) != m.Type {
			t.Fatalf("%s: header % x", m.Type, b[:2])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", m.Type, got, m)
		}
		if got.Sealed {
			if err := d.Open(got); err != nil {
				t.Errorf("%s: %v", m.Type, err)
			}
			// Re-encoding a decoded sealed message gives the same frame.
			if !bytes.Equal(got.Encode(nil), b) {
				t.Errorf("%s: re-encoded differently", m.Type)
			}
		} else {
			// Extra trailing bytes are ignored (room for new fields)...
			if _, err := Decode(append(b, 1, 2, 3)); err != nil {
				t.Errorf("%s with trailing bytes: %v", m.Type, err)
			}
		}
		// ...but every truncation is an error, never a panic, except one
		// that drops exactly the optional trailing walls report (what an
		// older worker sends).
		optional := -1
		if m.Type == MsgRegister || m.Type == MsgPull {
			optional = len(b) - len(binary.AppendUvarint(nil, uint64(len(m.Walls)))) - len(m.Walls)
		}
		for i := 0; i < len(b); i++ {
			if i == optional {
				continue
			}
			if _, err := Decode(b[:i]); err == nil {
				t.Errorf("%s truncated to %d bytes decoded", m.Type, i)
			}
		}
	}
	// Room for new fields in sealed messages too: bytes after the last
	// known field, before the mac, are covered by it and ignored.
	m := &Message{Type: MsgHeartbeat, Free: 3, Sealed: true, Channel: w.ID, Seq: w.Sent() + 1}
	b := m.Encode(nil)
	b = append(b[:len(b)-MACSize], 7, 7, 7)
	b = append(b, mac(w.send, b)...)
	w.sent++
	got, err := Decode(b)
	if err != nil || got.Free != 3 {
		t.Fatalf("sealed with trailing bytes: %v %+v", err, got)
	}
	if err := d.Open(got); err != nil {
		t.Fatalf("sealed with trailing bytes: %v", err)
	}
}

func TestWireRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrWireFormat},
		{"one byte", []byte{1}, ErrWireFormat},
		{"version 1", []byte{1, byte(MsgHeartbeat), 0}, ErrWireVersion},
		{"version 2", []byte{2, byte(MsgHeartbeat), 0, 0}, ErrWireVersion},
		{"version 3", []byte{3, byte(MsgHeartbeat), 0, 0}, ErrWireVersion},
		{"version 5", []byte{5, byte(MsgHeartbeat), 0, 0}, ErrWireVersion},
		{"version 0", []byte{0, byte(MsgHeartbeat), 0}, ErrWireVersion},
		{"no seal byte", []byte{WireVersion, byte(MsgError)}, ErrWireFormat},
		{"bad seal byte", []byte{WireVersion, byte(MsgError), 2, 0, 0}, ErrWireFormat},
		{"unknown type", []byte{WireVersion, 0x7f, 0}, ErrWireType},
		{"huge length", binary.AppendUvarint([]byte{WireVersion, byte(MsgError), 0, 1}, 1<<62), ErrWireFormat},
		{"huge count", sealedRaw(binary.AppendUvarint(nil, 1<<40), MsgAck), ErrWireFormat},
		{"bad varint", sealedRaw([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, MsgHeartbeat), ErrWireFormat},
		{"bad isolation", sealedMsg(&Message{Type: MsgTask, Tasks: []Task{{Task: faastype.Task{ID: "x", Isolation: "lukewarm"}}}}), ErrWireFormat},
		{"task without id", sealedMsg(&Message{Type: MsgTask, Tasks: []Task{{}}}), ErrWireFormat},
		{"empty id", sealedMsg(&Message{Type: MsgCancel, Cancels: []Ref{{ID: ""}}}), ErrWireFormat},
		{"failed without error", sealedMsg(&Message{Type: MsgResult, Results: []Result{{ID: "x", Result: &faastype.Result{Status: faastype.Failed}}}}), ErrWireFormat},
		{"unsealed heartbeat", (&Message{Type: MsgHeartbeat, Free: 1}).Encode(nil), ErrWireFormat},
		{"unsealed result", (&Message{Type: MsgResult, Results: []Result{{ID: "x", Result: &faastype.Result{Status: faastype.Completed}}}}).Encode(nil), ErrWireFormat},
		{"sealed hello", sealedMsg(&Message{Type: MsgHello, Name: "x", Session: ID16{1}, Nonce: make([]byte, NonceSize)}), ErrWireFormat},
		{"sealed without channel", (&Message{Type: MsgHeartbeat, Sealed: true, Seq: 1}).Encode(nil), ErrWireFormat},
		{"sealed with seq 0", (&Message{Type: MsgHeartbeat, Sealed: true, Channel: ID16{1}}).Encode(nil), ErrWireFormat},
		{"sealed without room for a mac", []byte{WireVersion, byte(MsgBye), 1, 16, 1, 2, 3}, ErrWireFormat},
		{"short nonce", (&Message{Type: MsgHello, Name: "x", Session: ID16{1}, Nonce: make([]byte, 31)}).Encode(nil), ErrWireFormat},
		{"fetch without hash", sealedMsg(&Message{Type: MsgFetch, Fetch: Ref{ID: "x", Fence: 1}}), ErrWireFormat},
		{"fetch without task id", sealedMsg(&Message{Type: MsgFetch, Bundle: "h"}), ErrWireFormat},
		{"bundle hash too long", sealedMsg(&Message{Type: MsgBundle, Fetch: Ref{ID: "x", Fence: 1}, Bundle: strings.Repeat("h", 257)}), ErrWireFormat},
		{"bundle without task id", sealedMsg(&Message{Type: MsgBundle, Bundle: "h", BundleData: []byte("zip")}), ErrWireFormat},
		{"unsealed bundle", (&Message{Type: MsgBundle, Fetch: Ref{ID: "x", Fence: 1}, Bundle: "h", BundleData: []byte("zip")}).Encode(nil), ErrWireFormat},
		{"unsealed fetch", (&Message{Type: MsgFetch, Fetch: Ref{ID: "x", Fence: 1}, Bundle: "h"}).Encode(nil), ErrWireFormat},
		{"challenge without channel", (&Message{Type: MsgChallenge, Nonce: make([]byte, NonceSize)}).Encode(nil), ErrWireFormat},
	} {
		if _, err := Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

// sealedMsg is m sealed (with a zero mac: the decoder does not check it).
func sealedMsg(m *Message) []byte {
	m.Sealed, m.Channel, m.Seq = true, ID16{1}, 1
	return m.Encode(nil)
}

// sealedRaw is a sealed frame of type t with the given body.
func sealedRaw(body []byte, t MsgType) []byte {
	b := []byte{WireVersion, byte(t), 1, 16}
	b = append(b, ID16{1}.bytes()...)
	b = append(b, 1)
	b = append(b, body...)
	return append(b, make([]byte, MACSize)...)
}

func (id ID16) bytes() []byte { return id[:] }

func FuzzDecode(f *testing.F) {
	w, _ := testChannels(f, nil, nil)
	for _, m := range sampleMessages() {
		f.Add(frame(w, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same thing.
		m2, err := Decode(m.Encode(nil))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(m2)) {
			t.Fatalf("re-decode differs:\n%+v\n%+v", m, m2)
		}
	})
}

func TestDefaultMaxMessage(t *testing.T) {
	// Small limits: room for a bundle of BundleRoom bytes all the same.
	l := faastype.Limits{ArgBytes: 1000, ResultBytes: 5000, OutputBytes: 100}
	if got := DefaultMaxMessage(l); got != BundleRoom+1<<20 {
		t.Fatalf("DefaultMaxMessage = %d", got)
	}
	l = faastype.Limits{ArgBytes: 1000, ResultBytes: 10 << 20, OutputBytes: 100}
	if got := DefaultMaxMessage(l); got != 20<<20+200+1<<20 {
		t.Fatalf("DefaultMaxMessage = %d", got)
	}
	l = faastype.Limits{ArgBytes: 20 << 20, ResultBytes: 1000, OutputBytes: 100}
	if got := DefaultMaxMessage(l); got != 40<<20+1<<20 {
		t.Fatalf("DefaultMaxMessage = %d", got)
	}
	// A BUNDLE with a zip of BundleRoom bytes fits the default.
	b := (&Message{Type: MsgBundle, Fetch: Ref{ID: strings.Repeat("t", 36), Fence: 1 << 40}, Bundle: strings.Repeat("a", 64),
		BundleData: make([]byte, BundleRoom),
		Sealed:     true, Channel: ID16{1}, Seq: 1}).Encode(nil)
	if n := DefaultMaxMessage(faastype.Limits{ArgBytes: 1, ResultBytes: 1, OutputBytes: 1}); len(b) > n {
		t.Fatalf("a %d-byte BUNDLE does not fit in %d bytes", len(b), n)
	}
}

// ---- transport ----

// captureLog collects log lines for assertions.
type captureLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *captureLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *captureLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func freeTCP(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testWireOpts(logs *captureLog, maxMsg int) Options {
	return Options{MaxMessage: maxMsg, WriteTimeout: 2 * time.Second, HandshakeTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
}

// recvTimeout receives with a deadline (zmq4 has none).
func recvTimeout(t *testing.T, s zmq4.Socket, d time.Duration) zmq4.Msg {
	t.Helper()
	type res struct {
		m   zmq4.Msg
		err error
	}
	ch := make(chan res, 1)
	go func() { m, err := s.Recv(); ch <- res{m, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("recv: %v", r.err)
		}
		return r.m
	case <-time.After(d):
		t.Fatalf("no message within %s", d)
	}
	return zmq4.Msg{}
}

func TestTransportRouterDealer(t *testing.T) {
	logs := &captureLog{}
	o := testWireOpts(logs, 64<<10)
	addr := "tcp://" + freeTCP(t)
	ctx := context.Background()
	router, err := ListenRouter(ctx, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()

	// Junk first: a raw TCP peer that sends nothing keeps its connection
	// open (it must not block the accept loop), others send garbage, one
	// sends a READY whose metadata would make zmq4 index out of range, one
	// announces an enormous frame.
	var junk []net.Conn
	defer func() {
		for _, c := range junk {
			c.Close()
		}
	}()
	rawDial := func() net.Conn {
		c, err := net.Dial("tcp", strings.TrimPrefix(addr, "tcp://"))
		if err != nil {
			t.Fatal(err)
		}
		junk = append(junk, c)
		return c
	}
	rawDial() // silent
	rawDial().Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	rnd := make([]byte, 4096)
	for i := range rnd {
		rnd[i] = byte(rand.IntN(256))
	}
	rawDial().Write(rnd)
	c := rawDial()
	c.Write(nullGreeting)
	// A property without its value length: plain zmq4 panics on this
	// ("slice bounds out of range" in Property.Write).
	c.Write([]byte{zmtpCommand, 10, 5, 'R', 'E', 'A', 'D', 'Y', 3, 'a', 'b', 'c'})
	c = rawDial()
	c.Write(nullGreeting)
	ready := readyCmd("DEALER")
	c.Write(ready)
	// A 2^62-byte frame: plain zmq4 panics in makeslice.
	c.Write([]byte{zmtpLong, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	dealer, err := DialDealer(ctx, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer dealer.Close()
	msg := (&Message{Type: MsgHeartbeat, Free: 2}).Encode(nil)
	if err := dealer.Send(zmq4.NewMsg(msg)); err != nil {
		t.Fatal(err)
	}
	got := recvTimeout(t, router, 5*time.Second)
	if len(got.Frames) != 2 || !bytes.Equal(got.Frames[1], msg) {
		t.Fatalf("router got %q", got.Frames)
	}
	id := got.Frames[0]
	// Router -> dealer, a message just under the limit.
	big := bytes.Repeat([]byte{7}, 60<<10)
	if err := router.Send(zmq4.NewMsgFrom(id, big)); err != nil {
		t.Fatal(err)
	}
	if g := recvTimeout(t, dealer, 5*time.Second); len(g.Frames) != 1 || !bytes.Equal(g.Frames[0], big) {
		t.Fatalf("dealer got %d frames", len(g.Frames))
	}
	// An oversized message is dropped: the router sees an empty frame and
	// the connection keeps working.
	if err := dealer.Send(zmq4.NewMsg(bytes.Repeat([]byte{1}, 100<<10))); err != nil {
		t.Fatal(err)
	}
	if g := recvTimeout(t, router, 5*time.Second); len(g.Frames) != 2 || len(g.Frames[1]) != 0 {
		t.Fatalf("after an oversized message the router got %d frames", len(g.Frames))
	}
	if err := dealer.Send(zmq4.NewMsg(msg)); err != nil {
		t.Fatal(err)
	}
	if g := recvTimeout(t, router, 5*time.Second); !bytes.Equal(g.Frames[1], msg) {
		t.Fatalf("router got %q", g.Frames)
	}
	// A second dealer connects while the silent junk connection still
	// hangs around.
	d2, err := DialDealer(ctx, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Send(zmq4.NewMsg(msg)); err != nil {
		t.Fatal(err)
	}
	recvTimeout(t, router, 5*time.Second)
	out := logs.String()
	for _, want := range []string{"failed the ZMTP handshake", "larger than the limit"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

// readyCmd is a READY command frame as a peer of socket type typ sends it.
func readyCmd(typ string) []byte {
	body := []byte{5, 'R', 'E', 'A', 'D', 'Y'}
	prop := func(k, v string) {
		body = append(body, byte(len(k)))
		body = append(body, k...)
		body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
		body = append(body, v...)
	}
	prop("Socket-Type", typ)
	prop("Identity", "")
	return append([]byte{zmtpCommand, byte(len(body))}, body...)
}

func TestTransportReqRep(t *testing.T) {
	logs := &captureLog{}
	o := testWireOpts(logs, 1<<20)
	addr := "tcp://" + freeTCP(t)
	ctx := context.Background()
	rep, err := ListenRep(ctx, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	// A ROUTER peer is not accepted by the REP socket.
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(nullGreeting)
	c.Write(readyCmd("ROUTER"))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			m, err := rep.Recv()
			if err != nil {
				t.Error(err)
				return
			}
			rep.Send(zmq4.NewMsg(append([]byte("re:"), m.Frames[0]...)))
		}
	}()
	for i := 0; i < 3; i++ {
		req, err := DialReq(ctx, addr, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := req.Send(zmq4.NewMsgString(fmt.Sprint("q", i))); err != nil {
			t.Fatal(err)
		}
		m := recvTimeout(t, req, 5*time.Second)
		if string(m.Frames[0]) != fmt.Sprint("re:q", i) {
			t.Fatalf("reply %q", m.Frames)
		}
		req.Close()
	}
	wg.Wait()
	buf := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		if _, err := c.Read(buf); err != nil {
			if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") {
				break
			}
			t.Fatalf("ROUTER peer not disconnected: %v", err)
		}
	}
	if !strings.Contains(logs.String(), "not accepted here") {
		t.Errorf("logs: %s", logs.String())
	}
}

// A worker dialing something that accepts TCP but never speaks ZMTP gives
// up after the handshake timeout instead of hanging.
func TestDialHandshakeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	o := testWireOpts(&captureLog{}, 1<<20)
	o.HandshakeTimeout = 300 * time.Millisecond
	start := time.Now()
	s, err := DialReq(context.Background(), "tcp://"+l.Addr().String(), o)
	if err == nil {
		s.Close()
		t.Fatal("dial succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dial took %s", d)
	}
}

// Random frames after a valid handshake never crash the receiving side and
// never reach it as anything but whole messages or empty frames.
func FuzzWireConnFrames(f *testing.F) {
	f.Add([]byte{0, 3, 1, 3, 0})
	f.Add([]byte{zmtpLong, 0xff, 0, 0, 0, 0, 0, 0, 9})
	f.Add([]byte{zmtpCommand, 4, 4, 'P', 'I', 'N', 'G'})
	f.Add([]byte{zmtpMore, 1, 9, zmtpCommand, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := &wireTransport{opts: Options{MaxMessage: 64, WriteTimeout: time.Second}.WithDefaults(), rlog: ratelog.New(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour)}
		tr.opts.MaxMessage = 64
		stream := append(append(append([]byte(nil), nullGreeting...), readyCmd("DEALER")...), b...)
		a, z := net.Pipe()
		defer a.Close()
		go func() { z.Write(stream); z.Close() }()
		c := newWireConn(a, tr, nil, false)
		out, _ := io.ReadAll(io.LimitReader(c, 1<<20))
		// What comes out is a greeting, a READY and well-formed message
		// frames whose messages respect the limit.
		out = out[64:]
		hl := 2 + int(out[1])
		out = out[hl:]
		budget, inMsg := 64, false
		for len(out) >= 2 {
			fl, size := out[0], uint64(out[1])
			h := 2
			if fl&zmtpLong != 0 {
				if len(out) < 9 {
					break
				}
				size, h = binary.BigEndian.Uint64(out[1:9]), 9
			}
			if fl&zmtpCommand != 0 {
				t.Fatalf("command passed through")
			}
			if !inMsg {
				budget = 64
			}
			if size > uint64(budget) {
				t.Fatalf("oversized frame passed through: %d", size)
			}
			budget -= int(size)
			inMsg = fl&zmtpMore != 0
			if uint64(len(out)) < uint64(h)+size {
				break
			}
			out = out[uint64(h)+size:]
		}
	})
}

// A peer that stops reading (SIGSTOPped, wedged) does not block the ROUTER
// forever: its connection is dropped once it has taken no data for the
// write timeout, and sends to it return.
func TestTransportStuckPeer(t *testing.T) {
	logs := &captureLog{}
	o := testWireOpts(logs, 4<<20)
	o.WriteTimeout = 300 * time.Millisecond
	addr := freeTCP(t)
	router, err := ListenRouter(context.Background(), "tcp://"+addr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	body := []byte{5, 'R', 'E', 'A', 'D', 'Y'}
	for _, kv := range [][2]string{{"Socket-Type", "DEALER"}, {"Identity", "stuck"}} {
		body = append(body, byte(len(kv[0])))
		body = append(body, kv[0]...)
		body = binary.BigEndian.AppendUint32(body, uint32(len(kv[1])))
		body = append(body, kv[1]...)
	}
	c.Write(nullGreeting)
	c.Write(append([]byte{zmtpCommand, byte(len(body))}, body...))
	// It says hello (so the router knows it) and then reads nothing more.
	c.Write([]byte{0, 2, 'h', 'i'})
	recvTimeout(t, router, 5*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		big := make([]byte, 1<<20)
		for i := 0; i < 64; i++ {
			router.Send(zmq4.NewMsgFrom([]byte("stuck"), big))
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("sends to a peer that reads nothing are still blocked")
	}
	if !strings.Contains(logs.String(), "took no data") {
		t.Errorf("logs: %s", logs.String())
	}
}
