package wire

// A checked TCP transport for zmq4.
//
// github.com/go-zeromq/zmq4 v0.17.0 trusts its peers: it allocates whatever
// frame length a peer announces (a 2^62-byte frame header panics the
// process in makeslice), its handshake metadata parser indexes past the end
// of a short READY command (a panic in the accept goroutine), its listener
// performs every handshake inside its single accept loop without a
// deadline (one silent TCP connection stops all later ones from being
// accepted), it never closes a connection whose handshake failed, and its
// socket writes have no deadline (a stopped peer with a full TCP window
// blocks every send of a ROUTER, whose writer holds one lock for all
// peers). The dispatcher port is open to the network, so this file puts a
// ZMTP-aware layer under zmq4, registered as a zmq4 transport:
//
//   - the listener does the first half of each handshake itself, in a
//     goroutine per connection with a deadline: it sends the (constant) NULL
//     greeting, reads and checks the peer's greeting and READY command
//     (well-formed metadata, an accepted socket type), and only then hands
//     the connection to zmq4 with those bytes replayed, so zmq4's accept
//     loop never waits on a peer; junk is dropped after at most
//     HandshakeTimeout and never reaches zmq4;
//   - every connection parses the frame stream it passes up: reserved flag
//     bits or a malformed command close the connection; ZMTP commands after
//     the handshake are dropped; a message larger than MaxMessage (all its
//     frames together) or with too many frames is skipped as it streams in,
//     never buffered, and zmq4 sees an empty final frame in its place, which
//     the wire decoder rejects ("logged and dropped");
//   - writes are coalesced per message (one syscall instead of two per
//     frame) and carry a deadline (at least WriteTimeout plus time for the
//     bytes at 1 MiB/s, at most twice that); a peer that does not take its
//     data in time is disconnected.
//
// Dialing connections are checked the same way (greeting, READY and frames),
// with HandshakeTimeout on the handshake, so a worker cannot be crashed or
// hung by what it connects to either.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/ratelog"
)

// Options configure the sockets of the dispatcher and the workers.
type Options struct {
	// MaxMessage is the largest message accepted, all frames together;
	// default DefaultMaxMessage of the default limits.
	MaxMessage int
	// WriteTimeout bounds how long a peer may leave written data untaken
	// (plus 1 µs per byte); default 5s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the ZMTP handshake of a new connection;
	// default 5s.
	HandshakeTimeout time.Duration
	// Logger gets rate-limited reports of what was dropped.
	Logger *slog.Logger
}

// WithDefaults returns o with every zero field set to its default (the
// defaults named on each field).
func (o Options) WithDefaults() Options {
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxMessage(faastype.DefaultLimits)
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ZMTP constants.
const (
	zmtpMore    = 0x01
	zmtpLong    = 0x02
	zmtpCommand = 0x04
	// maxCommand bounds a ZMTP command body (READY carries two short
	// properties).
	maxCommand = 8 << 10
	// maxFrames bounds the frames of one message (ours have one, plus the
	// REQ/REP delimiter).
	maxFrames = 8
	// minWriteRate is the slowest a peer may take data before it is
	// considered stuck.
	minWriteRate = 1 << 20
)

// nullGreeting is the 64-byte ZMTP 3.0 greeting of the NULL mechanism as
// zmq4 writes it (signature, version 3.0, "NULL", as-server 0, filler).
var nullGreeting = func() []byte {
	g := make([]byte, 64)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 0
	copy(g[12:32], "NULL")
	return g
}()

func checkGreeting(g []byte) error {
	if len(g) != 64 || g[0] != 0xFF || g[9] != 0x7F {
		return errors.New("not a ZMTP peer (bad signature)")
	}
	if g[10] < 3 {
		return fmt.Errorf("ZMTP version %d.%d is too old", g[10], g[11])
	}
	mech := g[12:32]
	if i := bytes.IndexByte(mech, 0); i >= 0 {
		if bytes.ContainsFunc(mech[i:], func(r rune) bool { return r != 0 }) {
			return errors.New("bad security mechanism field")
		}
		mech = mech[:i]
	}
	if string(mech) != "NULL" {
		return fmt.Errorf("security mechanism %q is not supported", mech)
	}
	if g[32] > 1 {
		return errors.New("bad as-server flag")
	}
	return nil
}

// checkReady validates a READY command body: the name, then metadata
// properties (name length byte, name, 4-byte big-endian value length,
// value) that exactly fill it; and, when peers is not empty, that the
// Socket-Type is one of peers.
func checkReady(body []byte, peers []string) error {
	if len(body) < 6 || body[0] != 5 || string(body[1:6]) != "READY" {
		return errors.New("first command is not READY")
	}
	p := body[6:]
	var sockType string
	for len(p) > 0 {
		kl := int(p[0])
		if kl == 0 || 1+kl+4 > len(p) {
			return errors.New("malformed READY metadata")
		}
		key := string(p[1 : 1+kl])
		vl := binary.BigEndian.Uint32(p[1+kl:])
		p = p[1+kl+4:]
		if uint64(vl) > uint64(len(p)) {
			return errors.New("malformed READY metadata")
		}
		if strings.EqualFold(key, "Socket-Type") {
			sockType = string(p[:vl])
		}
		if strings.EqualFold(key, "Identity") && vl > 255 {
			return errors.New("identity longer than 255 bytes")
		}
		p = p[vl:]
	}
	if len(peers) > 0 {
		for _, t := range peers {
			if strings.EqualFold(t, sockType) {
				return nil
			}
		}
		return fmt.Errorf("peer socket type %q is not accepted here (want %s)", sockType, strings.Join(peers, " or "))
	}
	return nil
}

// ---- transport registration ----

type transportKey struct {
	opts  Options
	peers string
}

var (
	transportsMu sync.Mutex
	transports   = map[transportKey]string{}
)

// scheme registers (once per distinct options) a zmq4 transport and returns
// its scheme name.
func scheme(o Options, peers []string) string {
	k := transportKey{opts: o, peers: strings.Join(peers, ",")}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if s, ok := transports[k]; ok {
		return s
	}
	s := fmt.Sprintf("faas-tcp-%d", len(transports)+1)
	t := &wireTransport{opts: o, peers: peers, rlog: ratelog.New(o.Logger, 10*time.Second)}
	if err := zmq4.RegisterTransport(s, t); err != nil {
		panic(err) // names are unique
	}
	transports[k] = s
	return s
}

// endpoint turns a tcp://host:port URL (host may be * when listening) into
// the endpoint of the checked transport.
func endpoint(url string, o Options, peers []string) (string, error) {
	rest, ok := strings.CutPrefix(url, "tcp://")
	if !ok {
		return "", fmt.Errorf("dispatcher address %q: only tcp://host:port is supported", url)
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return "", fmt.Errorf("dispatcher address %q: %v", url, err)
	}
	return scheme(o, peers) + "://" + rest, nil
}

type wireTransport struct {
	opts  Options
	peers []string
	rlog  *ratelog.Logger
}

var _ transport.Transport = (*wireTransport)(nil)

func (t *wireTransport) Addr(ep string) (string, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", err
	}
	if port == "*" || port == "" {
		port = "0"
	}
	if host == "*" || host == "" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, port), nil
}

func (t *wireTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(t.opts.HandshakeTimeout))
	return newWireConn(c, t, nil, false), nil
}

func (t *wireTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	wl := &wireListener{Listener: l, t: t, conns: make(chan net.Conn), done: make(chan struct{}),
		sem: make(chan struct{}, 256)}
	go wl.loop()
	return wl, nil
}

// ---- listener ----

type wireListener struct {
	net.Listener
	t     *wireTransport
	conns chan net.Conn
	done  chan struct{}
	sem   chan struct{} // handshakes in progress
	once  sync.Once
}

func (l *wireListener) loop() {
	defer l.once.Do(func() { close(l.done) })
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.t.rlog.Warn("accept", "accepting a connection failed", "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		select {
		case l.sem <- struct{}{}:
			go func() {
				defer func() { <-l.sem }()
				l.handshake(c)
			}()
		default:
			l.t.rlog.Warn("handshakes", "too many connections in their handshake; dropping one", "remote", c.RemoteAddr().String())
			c.Close()
		}
	}
}

// handshake does the peer-facing half of a ZMTP handshake, then hands the
// connection to zmq4 with the peer's bytes replayed.
func (l *wireListener) handshake(c net.Conn) {
	t := l.t
	_ = c.SetDeadline(time.Now().Add(t.opts.HandshakeTimeout))
	replay, err := func() ([]byte, error) {
		if _, err := c.Write(nullGreeting); err != nil {
			return nil, err
		}
		buf := make([]byte, 64, 64+64)
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if err := checkGreeting(buf); err != nil {
			return nil, err
		}
		var hdr [9]byte
		if _, err := io.ReadFull(c, hdr[:2]); err != nil {
			return nil, err
		}
		if hdr[0]&zmtpCommand == 0 || hdr[0]&^(zmtpLong|zmtpCommand) != 0 {
			return nil, errors.New("handshake: expected a READY command")
		}
		size := uint64(hdr[1])
		hl := 2
		if hdr[0]&zmtpLong != 0 {
			if _, err := io.ReadFull(c, hdr[2:9]); err != nil {
				return nil, err
			}
			size, hl = binary.BigEndian.Uint64(hdr[1:9]), 9
		}
		if size > maxCommand {
			return nil, fmt.Errorf("handshake: %d-byte command", size)
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(c, body); err != nil {
			return nil, err
		}
		if err := checkReady(body, t.peers); err != nil {
			return nil, err
		}
		buf = append(buf, hdr[:hl]...)
		return append(buf, body...), nil
	}()
	if err != nil {
		t.rlog.Warn("handshake", "dropped a connection that failed the ZMTP handshake", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	wc := newWireConn(c, t, replay, true)
	select {
	case l.conns <- wc:
	case <-l.done:
		c.Close()
	}
}

func (l *wireListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *wireListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.done) })
	return err
}

// ---- connection ----

// wireError is what a checked connection returns when it gives up: a
// net.Error that is not a timeout, so zmq4 marks the connection closed and
// removes it.
type wireError struct{ err error }

func (e *wireError) Error() string   { return "wire: " + e.err.Error() }
func (e *wireError) Unwrap() error   { return e.err }
func (e *wireError) Timeout() bool   { return false }
func (e *wireError) Temporary() bool { return false }

var _ net.Error = (*wireError)(nil)

const (
	phaseGreeting = iota
	phaseReady
	phaseFrames
)

type wireConn struct {
	net.Conn
	t      *wireTransport
	br     *bufio.Reader
	server bool

	// read side (zmq4 reads from one goroutine)
	phase  int
	out    []byte // bytes ready for zmq4
	body   uint64 // body bytes of the current frame still to stream
	budget int    // bytes the current message may still take
	frames int
	inMsg  bool // the last frame had MORE
	rerr   error

	// write side
	wmu   sync.Mutex
	skip  []byte // greeting bytes zmq4 writes that the listener already sent
	raw   int    // greeting bytes to pass before frames start
	whdr  []byte
	wbody uint64
	wmore bool
	wbuf  []byte
	werr  error
	wdl   time.Time // the write deadline set

	closeOnce sync.Once
}

func newWireConn(c net.Conn, t *wireTransport, replay []byte, server bool) *wireConn {
	var r io.Reader = c
	if len(replay) > 0 {
		r = io.MultiReader(bytes.NewReader(replay), c)
	}
	wc := &wireConn{Conn: c, t: t, br: bufio.NewReaderSize(r, 64<<10), server: server, whdr: make([]byte, 0, 9)}
	if server {
		wc.skip = append([]byte(nil), nullGreeting...)
	} else {
		wc.raw = 64
	}
	return wc
}

func (c *wireConn) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.Conn.Close() })
	return err
}

// fail closes the connection and returns the error zmq4 should see.
func (c *wireConn) fail(err error, report bool) error {
	if report {
		c.t.rlog.Warn("frames", "closing a connection that broke the protocol", "remote", c.RemoteAddr().String(), "err", err)
	}
	c.Close()
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	var we *wireError
	if errors.As(err, &we) {
		return we
	}
	return &wireError{err}
}

func (c *wireConn) Read(p []byte) (int, error) {
	if c.rerr != nil {
		return 0, c.rerr
	}
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.body > 0 {
			k := uint64(len(p))
			if k > c.body {
				k = c.body
			}
			n, err := c.br.Read(p[:k])
			c.body -= uint64(n)
			if err != nil {
				c.rerr = c.fail(err, false)
				return n, c.rerr
			}
			return n, nil
		}
		if len(p) == 0 {
			return 0, nil
		}
		if report, err := c.next(); err != nil {
			c.rerr = c.fail(err, report)
			return 0, c.rerr
		}
	}
}

// readHeader reads a frame header; it returns flags, size and the raw
// header bytes.
func (c *wireConn) readHeader(hdr *[9]byte) (byte, uint64, int, error) {
	if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
		return 0, 0, 0, err
	}
	f := hdr[0]
	if f&^(zmtpMore|zmtpLong|zmtpCommand) != 0 {
		return 0, 0, 0, &wireError{fmt.Errorf("reserved frame flag bits 0x%02x", f)}
	}
	if f&zmtpLong == 0 {
		return f, uint64(hdr[1]), 2, nil
	}
	if _, err := io.ReadFull(c.br, hdr[2:9]); err != nil {
		return 0, 0, 0, err
	}
	size := binary.BigEndian.Uint64(hdr[1:9])
	if size > 1<<62 {
		return 0, 0, 0, &wireError{fmt.Errorf("frame size %d", size)}
	}
	return f, size, 9, nil
}

// next reads the next unit of the stream and makes it ready for zmq4. The
// bool says whether a failure is the peer's fault (worth a log line) rather
// than a plain disconnect.
func (c *wireConn) next() (bool, error) {
	var hdr [9]byte
	switch c.phase {
	case phaseGreeting:
		g := make([]byte, 64)
		if _, err := io.ReadFull(c.br, g); err != nil {
			return false, err
		}
		if err := checkGreeting(g); err != nil {
			return true, err
		}
		c.out, c.phase = g, phaseReady
		return false, nil
	case phaseReady:
		f, size, hl, err := c.readHeader(&hdr)
		if err != nil {
			return isWireErr(err), err
		}
		if f&zmtpCommand == 0 || f&zmtpMore != 0 || size > maxCommand {
			return true, errors.New("handshake: expected a READY command")
		}
		body := make([]byte, hl+int(size))
		copy(body, hdr[:hl])
		if _, err := io.ReadFull(c.br, body[hl:]); err != nil {
			return false, err
		}
		var peers []string
		if c.server {
			peers = c.t.peers
		}
		if err := checkReady(body[hl:], peers); err != nil {
			return true, err
		}
		if !c.server {
			_ = c.Conn.SetReadDeadline(time.Time{})
		}
		c.out, c.phase = body, phaseFrames
		return false, nil
	}
	max := c.t.opts.MaxMessage
	for {
		f, size, hl, err := c.readHeader(&hdr)
		if err != nil {
			return isWireErr(err), err
		}
		if f&zmtpCommand != 0 {
			// PING, ERROR, a second READY...: zmq4 does nothing useful
			// with them after the handshake; drop them.
			if c.inMsg || f&zmtpMore != 0 || size > maxCommand {
				return true, errors.New("command frame inside a message")
			}
			if _, err := c.br.Discard(int(size)); err != nil {
				return false, err
			}
			continue
		}
		if !c.inMsg {
			c.budget, c.frames = max, 0
		}
		c.frames++
		if size > uint64(c.budget) || c.frames > maxFrames {
			return c.skipMessage(f, size)
		}
		c.budget -= int(size)
		c.inMsg = f&zmtpMore != 0
		c.out = append(c.out[:0], hdr[:hl]...)
		c.body = size
		return false, nil
	}
}

// skipMessage discards the rest of a message that is too large, frame by
// frame as it streams in, and gives zmq4 an empty final frame instead.
func (c *wireConn) skipMessage(f byte, size uint64) (bool, error) {
	max := c.t.opts.MaxMessage
	total, frames := size, c.frames
	var hdr [9]byte
	for {
		// A frame beyond any sane size is not worth reading through.
		if size > uint64(4*max)+1<<20 {
			return true, fmt.Errorf("%d-byte frame (limit %d per message)", size, max)
		}
		if err := c.discard(size); err != nil {
			return false, err
		}
		if f&zmtpMore == 0 {
			break
		}
		var err error
		var hl int
		f, size, hl, err = c.readHeader(&hdr)
		_ = hl
		if err != nil {
			return isWireErr(err), err
		}
		if f&zmtpCommand != 0 {
			return true, errors.New("command frame inside a message")
		}
		total += size
		frames++
	}
	c.t.rlog.Warn("oversized", "dropped a message larger than the limit", "remote", c.RemoteAddr().String(),
		"bytes", total, "frames", frames, "max_bytes", max, "max_frames", maxFrames)
	c.inMsg = false
	c.out = append(c.out[:0], 0, 0) // an empty final frame ends what zmq4 has
	return false, nil
}

func (c *wireConn) discard(n uint64) error {
	for n > 0 {
		k := min(n, 1<<20)
		d, err := c.br.Discard(int(k))
		n -= uint64(d)
		if err != nil {
			return err
		}
	}
	return nil
}

func isWireErr(err error) bool {
	var we *wireError
	return errors.As(err, &we)
}

// Write buffers zmq4's writes and sends each message in one go.
func (c *wireConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	n := len(p)
	if len(c.skip) > 0 {
		k := min(len(c.skip), len(p))
		if !bytes.Equal(c.skip[:k], p[:k]) {
			c.werr = c.fail(errors.New("zmq4 sent an unexpected greeting"), true)
			return 0, c.werr
		}
		c.skip, p = c.skip[k:], p[k:]
	}
	for len(p) > 0 {
		switch {
		case c.raw > 0:
			k := min(c.raw, len(p))
			c.wbuf = append(c.wbuf, p[:k]...)
			c.raw -= k
			p = p[k:]
			if c.raw == 0 {
				if err := c.flush(); err != nil {
					return 0, err
				}
			}
		case c.wbody > 0:
			k := int(min(c.wbody, uint64(len(p))))
			if len(c.wbuf)+k > 64<<10 {
				if err := c.flush(); err != nil {
					return 0, err
				}
				if err := c.writeOut(p[:k]); err != nil {
					return 0, err
				}
			} else {
				c.wbuf = append(c.wbuf, p[:k]...)
			}
			c.wbody -= uint64(k)
			p = p[k:]
			if c.wbody == 0 && !c.wmore {
				if err := c.flush(); err != nil {
					return 0, err
				}
			}
		default:
			c.whdr = append(c.whdr, p[0])
			p = p[1:]
			need := 2
			if c.whdr[0]&zmtpLong != 0 {
				need = 9
			}
			if len(c.whdr) < need {
				continue
			}
			if need == 2 {
				c.wbody = uint64(c.whdr[1])
			} else {
				c.wbody = binary.BigEndian.Uint64(c.whdr[1:9])
			}
			c.wmore = c.whdr[0]&zmtpMore != 0
			c.wbuf = append(c.wbuf, c.whdr...)
			c.whdr = c.whdr[:0]
			if c.wbody == 0 && !c.wmore {
				if err := c.flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	return n, nil
}

func (c *wireConn) flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	err := c.writeOut(c.wbuf)
	if cap(c.wbuf) > 256<<10 {
		c.wbuf = nil
	} else {
		c.wbuf = c.wbuf[:0]
	}
	return err
}

func (c *wireConn) writeOut(b []byte) error {
	// Every write may take d; the deadline is moved (a costly call) only
	// when less than that is left, to twice that, so a write gets between
	// d and 2d.
	d := c.t.opts.WriteTimeout + time.Duration(len(b))*time.Second/minWriteRate
	if now := time.Now(); c.wdl.Sub(now) < d {
		c.wdl = now.Add(2 * d)
		_ = c.Conn.SetWriteDeadline(c.wdl)
	}
	if _, err := c.Conn.Write(b); err != nil {
		var ne net.Error
		report := errors.As(err, &ne) && ne.Timeout()
		if report {
			err = fmt.Errorf("the peer took no data for %s: %w", d, err)
		}
		c.werr = c.fail(err, report)
		return c.werr
	}
	return nil
}

// ---- sockets ----

// zmqLogger routes zmq4's own log lines to slog, rate-limited.
func zmqLogger(o Options) *log.Logger {
	rl := ratelog.New(o.Logger, 10*time.Second)
	return log.New(writerFunc(func(p []byte) (int, error) {
		rl.Warn("zmq4", "zmq4: "+strings.TrimSpace(string(p)))
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func socketOptions(o Options) []zmq4.Option {
	return []zmq4.Option{
		zmq4.WithLogger(zmqLogger(o)),
		zmq4.WithTimeout(o.WriteTimeout + time.Duration(o.MaxMessage)*time.Second/minWriteRate),
		zmq4.WithDialerTimeout(o.HandshakeTimeout),
		zmq4.WithDialerMaxRetries(0),
	}
}

// ListenRouter binds the push-mode ROUTER socket on url (tcp://host:port).
func ListenRouter(ctx context.Context, url string, o Options) (zmq4.Socket, error) {
	return listen(ctx, url, o.WithDefaults(), zmq4.NewRouter, []string{"DEALER"})
}

// ListenRep binds the pull-mode REP socket on url (tcp://host:port).
func ListenRep(ctx context.Context, url string, o Options) (zmq4.Socket, error) {
	return listen(ctx, url, o.WithDefaults(), zmq4.NewRep, []string{"REQ", "DEALER"})
}

func listen(ctx context.Context, url string, o Options, mk func(context.Context, ...zmq4.Option) zmq4.Socket, peers []string) (zmq4.Socket, error) {
	ep, err := endpoint(url, o, peers)
	if err != nil {
		return nil, err
	}
	s := mk(ctx, socketOptions(o)...)
	if err := s.Listen(ep); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// DialDealer connects a push worker's DEALER socket to url once (no retry).
func DialDealer(ctx context.Context, url string, o Options) (zmq4.Socket, error) {
	return dial(ctx, url, o.WithDefaults(), zmq4.NewDealer)
}

// DialReq connects a pull worker's REQ socket to url once (no retry).
func DialReq(ctx context.Context, url string, o Options) (zmq4.Socket, error) {
	return dial(ctx, url, o.WithDefaults(), zmq4.NewReq)
}

func dial(ctx context.Context, url string, o Options, mk func(context.Context, ...zmq4.Option) zmq4.Socket) (zmq4.Socket, error) {
	ep, err := endpoint(url, o, nil)
	if err != nil {
		return nil, err
	}
	s := mk(ctx, socketOptions(o)...)
	if err := s.Dial(ep); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// CheckURL reports whether url is an address the sockets accept.
func CheckURL(url string) error {
	rest, ok := strings.CutPrefix(url, "tcp://")
	if !ok {
		return fmt.Errorf("%q: only tcp://host:port is supported", url)
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return fmt.Errorf("%q: %v", url, err)
	}
	return nil
}
