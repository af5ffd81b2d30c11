// Package wire is the dispatcher-worker protocol of push and pull mode:
// the message format and its codec (this file), worker admission and
// message sealing (auth.go: Channel, Gate), and the checked ZeroMQ
// transport (conn.go). It owns no Redis client and no sandbox: a worker
// binary links wire, faastype and runtime, never the store.
//
// The task and result items inside messages are faastype's binary form of
// faastype.Task and faastype.Result, the very encoding the sandbox pipes
// use, so a field of either travels both ways or neither.
package wire

// The dispatcher <-> worker wire format (push and pull modes).
//
// Transport. ZeroMQ over TCP (github.com/go-zeromq/zmq4): ROUTER in the
// dispatcher and DEALER in push workers; REP in the dispatcher and REQ in
// pull workers. ZeroMQ's own envelope frames (the ROUTER identity, the
// REQ/REP empty delimiter) are handled by the sockets; after them every
// message is exactly one frame, laid out as below. The frame stream is
// checked before the ZeroMQ library sees it (see conn.go): a peer that
// does not speak ZMTP 3 with the NULL mechanism is disconnected during the
// handshake, ZMTP commands after the handshake are dropped, and a message
// larger than the configured maximum (MaxMessage, derived from the task
// limits) is skipped without being buffered and arrives as an empty frame,
// which the decoder rejects.
//
// Frame layout (version 4):
//
//	byte 0   version, WireVersion (4)
//	byte 1   message type (below)
//	byte 2   seal: 0 open, 1 sealed (see Authentication)
//	sealed:  channel id16 (not zero), seq uint (at least 1)
//	bytes …  the type's fields, in order
//	sealed:  mac, the last 32 bytes of the frame
//
// Field encodings:
//
//	uint   unsigned LEB128 varint (Go's binary.Uvarint), at most 10 bytes
//	bytes  uint length, then that many bytes (raw: pickles are not escaped)
//	str    bytes holding UTF-8 text (ids, names, messages)
//	id16   bytes of length 0 (none) or 16 (a random identifier)
//	nonce  bytes of length 32 (fresh random bytes)
//	bool   one byte, 0 or 1
//	f64    8 bytes, IEEE 754 binary64, little endian
//	list   uint count, then count items
//
// Shared item layouts:
//
//	Task   = fence uint, attempt uint, then a faastype Task: id str
//	         (not empty), function str (the warm-reuse key: the function
//	         id), isolation str, timeout_ms uint, want_json bool, fn bytes,
//	         args bytes, bundle str (the content hash of the function's
//	         bundle, "" none), bundle_data bytes (always empty from a
//	         dispatcher: a worker gets a bundle with FETCH, once, and
//	         keeps it)
//	Result = id str, fence uint, then a faastype Result: status str,
//	         kind str, message str, traceback str, payload bytes, stdout
//	         bytes, stderr bytes, flags byte (bit 0 output truncated, bit 1
//	         warm), timings 6 f64 (queue, boot, deserialize, run,
//	         serialize, total; seconds), json bytes
//	(faastype/codec.go is the reference for the two faastype items)
//	Ref    = id str, fence uint
//	Ack    = id str, fence uint, recorded bool
//	Held   = id str, fence uint, elapsed_ms uint, done bool (the task
//	         finished and its result awaits an Ack)
//
// Message types. W is a worker, D the dispatcher. HELLO and CHALLENGE are
// always open, ERROR is sealed when its sender has the channel's key and
// open otherwise, every other message is always sealed (a decoder rejects
// it open).
//
//	0x0C HELLO      W→D both  name str, session id16, lane uint, nonce
//	0x0D CHALLENGE  D→W both  channel id16, nonce, secured bool
//	0x01 REGISTER   W→D push  capacity uint, held list<Held>, max_message uint,
//	                          walls str (optional: the sandboxes' OS walls)
//	0x02 WELCOME    D→W push  incarnation id16, heartbeat_ms uint,
//	                          misses uint, timeout_ms uint, max_message uint
//	0x03 HEARTBEAT  both push free uint
//	0x04 TASK       D→W push  Task
//	0x05 RESULT     W→D push  Result
//	0x06 ACK        D→W push  list<Ack>
//	0x07 CANCEL     D→W push  list<Ref>   (the lease is gone: stop the task)
//	0x08 RELEASE    W→D push  list<Ref>   (not run, or stopped: requeue it)
//	0x09 DRAIN      W→D push  (no fields) send this worker no more tasks
//	0x0A BYE        both push (no fields) this side is leaving
//	0x0B ERROR      D→W both  code uint, message str
//	0x10 PULL       W→D pull  incarnation id16, got_seq uint, free uint,
//	                          draining bool, held list<Held>,
//	                          results list<Result>, released list<Ref>,
//	                          max_message uint, walls str (optional)
//	0x11 WORK       D→W pull  incarnation id16, seq uint, retry_ms uint,
//	                          tasks list<Task>, acks list<Ack>,
//	                          cancels list<Ref>, max_message uint
//	0x12 FETCH      W→D both  task id str, fence uint, hash str
//	0x13 BUNDLE     D→W both  task id str, fence uint, hash str (the FETCH's),
//	                          code uint, error str, retry_ms uint, data bytes
//
// A push connection is HELLO → CHALLENGE → REGISTER → WELCOME, then
// heartbeats, tasks and results both ways. A pull lane socket is HELLO →
// CHALLENGE, then PULL → WORK as often as the worker asks (and FETCH →
// BUNDLE between them when a task needs a bundle). The worker's
// name, session and lane are said once, in HELLO, and bound into the
// channel's keys (below); they are its identity on every later message.
//
// A WORK reply without tasks is the "none" answer; retry_ms is the longest
// the worker should wait before asking again. A pull worker asks on one REQ
// socket per sandbox, its lanes (REQ allows one request in flight, and a
// worker with one socket for all its sandboxes leaves sandboxes idle while
// it waits); each lane is its own conversation with its own seq, and all
// lanes of a process hold their leases under one name. A PULL's got_seq is
// the seq of the reply to the lane's previous request (0 if that request
// got no reply) and incarnation the dispatcher incarnation that sent it:
// the dispatcher requeues, without counting an attempt, the tasks of any
// other reply it sent that lane, since a REQ socket abandoned after a
// timeout never delivers them. (WORK's seq field is this bookkeeping; the
// seq of the sealed header is the channel's, below.)
//
// Bundles. A task whose function carries a bundle (a zip of Python modules,
// package bundle) names it by hash in its Task item; the dispatcher never
// sends the zip along. A worker that does not hold that bundle yet asks for
// it with FETCH, naming the task it holds and the claim's fence: the
// dispatcher answers only for a task it sees this worker (push: this
// connection's session; pull: this lane) hold under that fence with that
// bundle, and reads the bundle from the store for the task's tenant. Its
// BUNDLE answer carries the zip (code OK) or says why not:
//
//	0 OK           data is the bundle's zip
//	1 MISSING      the store has no such bundle for the task's tenant: the
//	               task cannot run (the worker fails it, BAD_PAYLOAD)
//	2 TOO_LARGE    the zip does not fit in a message the worker takes (its
//	               max_message): the worker fails it, PAYLOAD_TOO_LARGE
//	3 UNAVAILABLE  not now (the store is away): the worker hands the task
//	               back (RELEASE), and it runs later
//	4 REFUSED      the dispatcher does not see this worker holding that
//	               task with that fence and bundle: handed back too
//	5 PENDING      pull only: the dispatcher is reading it; ask again after
//	               retry_ms
//
// (a code the worker does not know counts as UNAVAILABLE, and so do no
// answer within the worker's bundle timeout and a lost connection). A
// BUNDLE names the FETCH it answers (task id and fence); the bytes of one
// do for every task that waits for that bundle. In push mode the
// dispatcher reads the store off its socket loop and sends BUNDLE when it
// has the answer; in pull mode a FETCH is a request of its own on the
// lane's REQ socket, between PULLs, and the REP loop never waits for the
// store: it answers PENDING and starts the read, and a later FETCH gets
// the bytes. A FETCH and its BUNDLE are not a PULL and a WORK: neither
// side's got_seq or seq bookkeeping moves, and the next PULL names the last
// WORK as before.
//
// Decoders ignore bytes after the last known field (but before the mac), so
// a field may be added at the end of a message without a version change;
// any other change bumps WireVersion. A frame of an unknown type, or that
// ends inside a field, is rejected with an error (the receiver logs it,
// rate-limited, and drops it; the dispatcher answers an ERROR where the
// socket needs an answer). Lengths are checked against the frame before
// anything is allocated, and payloads are sub-slices of the frame.
//
// Versions. Version 1 had no HELLO, CHALLENGE or seal byte (REGISTER and
// PULL carried a name, a session and an unused token). Version 2 had a
// task and result layout of its own that carried neither want_json nor the
// result's JSON form (so a call with JSON arguments lost its result_json in
// push and pull mode), and keyed warm reuse by a payload hash. Version 3
// had no bundle fields in the Task item, and no FETCH or BUNDLE. A frame of
// another version is a clear error on both sides: the dispatcher logs it
// (rate-limited) and answers ERROR code VERSION, laid out in version 1 for
// a version-1 peer so that it can read it; a worker logs both versions and
// keeps retrying (the dispatcher may be upgraded under it).
//
// max_message is the largest message the sender takes. A dispatcher fails a
// task at once with PAYLOAD_TOO_LARGE rather than send a worker a message
// it would drop (and answers a FETCH whose bundle would not fit with
// TOO_LARGE); a worker cuts a result's output, or fails it with
// RESULT_TOO_LARGE, rather than send the dispatcher one it would drop. The
// default (DefaultMaxMessage) makes room for a BundleRoom-byte zip.
//
// # Authentication (worker admission)
//
// The dispatcher and its workers may share a worker secret
// (--worker-secret-file or FAAS_WORKER_SECRET, at least 32 random bytes;
// see ParseSecret). go-zeromq/zmq4 has no CURVE mechanism (only NULL and
// PLAIN), so admission is done in this format, with HMAC-SHA256:
//
//  1. HELLO carries a fresh random nonce Nw of the worker; CHALLENGE a
//     fresh random channel id C and a fresh random nonce Nd of the
//     dispatcher (one per connection in push mode, per lane socket in pull
//     mode), and whether the dispatcher has a secret (a hint for clear
//     error messages only: a worker never trusts it to admit a dispatcher).
//  2. Both sides derive one key per direction with HKDF-SHA256 (RFC 5869):
//     K_wd and K_dw = HKDF(secret, salt Nw‖Nd, info "wasmfaas wire 2 w2d"
//     or "… d2w" ‖ C ‖ name ‖ session ‖ lane), 32 bytes each. Without a
//     secret the input is a fixed public string instead: the keys are then
//     anyone's and sealing only catches corruption (open admission).
//  3. Every later message is sealed: its header names C and a sequence
//     number that starts at 1 and grows by one with each message a side
//     sends on the channel; its mac is HMAC-SHA256(K, every byte of the
//     frame before the mac) under the sender's direction key, so it covers
//     the version, type, channel, sequence number and every field. The
//     receiver compares macs with hmac.Equal, and accepts a sequence number
//     only if it is larger than every one it accepted on the channel (gaps
//     are allowed: a transport may drop a message; going back is not). A
//     pull reply (WORK, sealed ERROR) carries the sequence number of the
//     request it answers and the worker accepts no other.
//  4. A valid mac on the worker's first sealed message (REGISTER, or the
//     first PULL) proves the worker knows the secret: only a holder can
//     derive K_wd. The dispatcher's first sealed answer (WELCOME, WORK)
//     is its proof to the worker. Neither side ever sends the secret.
//
// A dispatcher with a secret admits no worker that fails this: it answers
// the failed proof with an open ERROR code UNAUTHORIZED and forgets the
// channel; such a worker is never registered, never counted as capacity,
// gets no task, and its RESULT, RELEASE and PULL messages are dropped
// before anything reaches the store. Sealed messages that fail on an
// established channel (tampered, replayed, reordered, for another channel)
// are not looked at either: dropped in push mode, answered with an open
// ERROR in pull mode (REP must answer); failures are logged rate-limited,
// never with a mac or the secret. A worker with a secret refuses, and
// reconnects to try again later, a dispatcher that says it has none or
// whose first WELCOME or WORK does not verify, so a rogue dispatcher
// cannot feed it tasks; later it drops a push message that does not verify
// and treats a pull reply that does not as no reply (a new socket). A
// worker without a secret, told that the dispatcher has one, does not try.
//
// What this protects against: workers and dispatchers without the secret
// (admission, task theft, forged results and releases, rogue dispatchers);
// replay of captured messages, in the same channel (sequence numbers) or
// another (fresh nonces and channel ids); tampering with, truncating or
// extending a message; reflecting a message back to its sender (one key
// per direction). Channels that have proved nothing yet are few (at most
// maxPending) and short-lived, so HELLO floods cost little memory.
//
// What it does not protect against: nothing is encrypted, so anyone who
// can watch the network sees function code, arguments, results and output
// in clear; run workers on a private network, or through a TLS tunnel
// (stunnel, a WireGuard or SSH tunnel), where payloads must stay
// confidential. A man in the middle can still delay, drop or cut traffic,
// or spoil a handshake (HELLO, CHALLENGE and open ERRORs are not
// authenticated): a denial of service, never a forged message. Every
// holder of the secret is trusted alike (a worker with it may use any
// name); a leaked secret must be replaced on every side. How random the
// secret is cannot be measured: ParseSecret only catches mistakes.

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// WireVersion is the version byte of every message this build sends.
const WireVersion byte = 4

// MsgType is the second byte of a message.
type MsgType byte

// Message types; see the table above.
const (
	MsgRegister  MsgType = 0x01
	MsgWelcome   MsgType = 0x02
	MsgHeartbeat MsgType = 0x03
	MsgTask      MsgType = 0x04
	MsgResult    MsgType = 0x05
	MsgAck       MsgType = 0x06
	MsgCancel    MsgType = 0x07
	MsgRelease   MsgType = 0x08
	MsgDrain     MsgType = 0x09
	MsgBye       MsgType = 0x0A
	MsgError     MsgType = 0x0B
	MsgHello     MsgType = 0x0C
	MsgChallenge MsgType = 0x0D
	MsgPull      MsgType = 0x10
	MsgWork      MsgType = 0x11
	MsgFetch     MsgType = 0x12
	MsgBundle    MsgType = 0x13
)

var msgNames = map[MsgType]string{
	MsgRegister: "REGISTER", MsgWelcome: "WELCOME", MsgHeartbeat: "HEARTBEAT", MsgTask: "TASK",
	MsgResult: "RESULT", MsgAck: "ACK", MsgCancel: "CANCEL", MsgRelease: "RELEASE", MsgDrain: "DRAIN",
	MsgBye: "BYE", MsgError: "ERROR", MsgHello: "HELLO", MsgChallenge: "CHALLENGE", MsgPull: "PULL", MsgWork: "WORK",
	MsgFetch: "FETCH", MsgBundle: "BUNDLE",
}

func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("0x%02x", byte(t))
}

// Sealing says how a message type travels.
type Sealing int

const (
	OpenOnly   Sealing = iota // HELLO, CHALLENGE: never sealed
	SealedOnly                // every message on an established channel
	EitherSeal                // ERROR: sealed once its sender has the channel's key
)

// Sealing says how messages of type t travel.
func (t MsgType) Sealing() Sealing {
	switch t {
	case MsgHello, MsgChallenge:
		return OpenOnly
	case MsgError:
		return EitherSeal
	}
	return SealedOnly
}

// ERROR codes.
const (
	ErrCodeVersion        = 1 // the frame's version is not supported
	ErrCodeMalformed      = 2 // the frame could not be decoded
	ErrCodeUnknownSession = 3 // register again (push) / start over (pull)
	ErrCodeUnauthorized   = 4 // worker authentication failed: start over
	ErrCodeUnexpected     = 5 // a valid message this side does not accept
)

// BUNDLE codes (see the file comment).
const (
	BundleOK          = 0 // the message carries the bundle
	BundleMissing     = 1 // not in the store: the task cannot run
	BundleTooLarge    = 2 // does not fit in a message the worker takes
	BundleUnavailable = 3 // not now: hand the task back
	BundleRefused     = 4 // the worker does not hold that task (as the dispatcher sees it)
	BundlePending     = 5 // pull: being read, ask again after RetryAfter
)

// BundleRoom is the largest bundle zip DefaultMaxMessage makes room for.
const BundleRoom = 16 << 20

// Decoding errors.
var (
	ErrWireVersion = errors.New("wire: unsupported version")
	ErrWireType    = errors.New("wire: unknown message type")
	ErrWireFormat  = errors.New("wire: malformed message")
)

// ID16 is a random 16-byte identifier (worker session, dispatcher
// incarnation, channel). The zero value means none.
type ID16 [16]byte

// IsZero reports whether id is the zero (absent) identifier.
func (id ID16) IsZero() bool { return id == ID16{} }

func (id ID16) String() string { return fmt.Sprintf("%x", id[:4]) }

// Task is a task sent to a worker: the sandbox task (in faastype's binary
// form) with the claim it runs under.
type Task struct {
	faastype.Task
	Fence   int64
	Attempt int
}

// Result is a task's outcome sent back by a worker, for the claim it ran
// under.
type Result struct {
	ID     string
	Fence  int64
	Result *faastype.Result
}

// Ref names one claim of a task.
type Ref struct {
	ID    string
	Fence int64
}

// Ack tells a worker that the dispatcher is done with a result: recorded,
// or rejected because the claim moved on. Either way it is not sent again.
type Ack struct {
	ID       string
	Fence    int64
	Recorded bool
}

// Held is a task a worker holds: running, or finished with its result not
// yet acknowledged (Done).
type Held struct {
	ID      string
	Fence   int64
	Elapsed time.Duration
	Done    bool
}

// Message is any wire message; which fields are used depends on Type (see
// the table in the file comment).
type Message struct {
	Type MsgType

	// Sealed messages (see Channel.Seal): the channel, the sender's
	// sequence number on it and the mac. Decode fills them in; Encode
	// writes them as they are.
	Sealed  bool
	Channel ID16
	Seq     uint64
	MAC     [MACSize]byte
	// signed is what the mac covers, as received (set by Decode).
	signed []byte

	// HELLO
	Name    string
	Session ID16
	Lane    int
	// HELLO, CHALLENGE
	Nonce []byte
	// CHALLENGE (also Channel: the channel it opens)
	Secured bool

	// REGISTER
	Capacity int
	// REGISTER, PULL
	Held []Held

	// WELCOME, WORK, PULL
	Incarnation ID16
	Heartbeat   time.Duration // WELCOME
	Misses      int           // WELCOME
	Timeout     time.Duration // WELCOME
	// MaxMessage is the largest message the sender takes (all types that
	// have it; 0 means not said).
	MaxMessage int
	// Walls (REGISTER, PULL; a trailing field older peers neither send nor
	// read) is the worker's report of the OS-level walls its sandbox
	// processes put up (runtime's "up: ...; missing: ...").
	Walls string

	// HEARTBEAT, PULL
	Free int

	// PULL
	GotSeq   uint64
	Draining bool
	Results  []Result
	Released []Ref

	// WORK
	WorkSeq uint64
	// WORK, BUNDLE
	RetryAfter time.Duration
	// WORK
	Tasks   []Task
	Acks    []Ack
	Cancels []Ref

	// TASK: Tasks[0]; RESULT: Results[0]; ACK: Acks; CANCEL: Cancels;
	// RELEASE: Released.

	// FETCH, BUNDLE: the task whose bundle is asked for (a BUNDLE names
	// the FETCH it answers).
	Fetch Ref
	// FETCH, BUNDLE: the bundle's content hash.
	Bundle string
	// BUNDLE: the bundle's zip (Code BundleOK), or Code and Text say why
	// not; RetryAfter with BundlePending.
	BundleData []byte

	// ERROR, BUNDLE (a BUNDLE code)
	Code int
	Text string
}

// Encode appends the message's frame to b (which may be nil). A sealed
// message gets its header and its MAC as they are in m: use Channel.Seal to
// make one that verifies.
func (m *Message) Encode(b []byte) []byte {
	e := wenc{faastype.Encoder{B: append(b, WireVersion, byte(m.Type))}}
	if m.Sealed {
		e.B = append(e.B, 1)
		e.id16(m.Channel)
		e.Uint(m.Seq)
	} else {
		e.B = append(e.B, 0)
	}
	switch m.Type {
	case MsgHello:
		e.Str(m.Name)
		e.id16(m.Session)
		e.Uint(uint64(max(m.Lane, 0)))
		e.Bytes(m.Nonce)
	case MsgChallenge:
		e.id16(m.Channel)
		e.Bytes(m.Nonce)
		e.Bool(m.Secured)
	case MsgRegister:
		e.Uint(uint64(max(m.Capacity, 0)))
		e.helds(m.Held)
		e.Uint(uint64(max(m.MaxMessage, 0)))
		e.Str(m.Walls)
	case MsgWelcome:
		e.id16(m.Incarnation)
		e.dur(m.Heartbeat)
		e.Uint(uint64(max(m.Misses, 0)))
		e.dur(m.Timeout)
		e.Uint(uint64(max(m.MaxMessage, 0)))
	case MsgHeartbeat:
		e.Uint(uint64(max(m.Free, 0)))
	case MsgTask:
		var t Task
		if len(m.Tasks) > 0 {
			t = m.Tasks[0]
		}
		e.task(&t)
	case MsgResult:
		var r Result
		if len(m.Results) > 0 {
			r = m.Results[0]
		}
		e.result(&r)
	case MsgAck:
		e.acks(m.Acks)
	case MsgCancel:
		e.refs(m.Cancels)
	case MsgRelease:
		e.refs(m.Released)
	case MsgDrain, MsgBye:
	case MsgError:
		e.Uint(uint64(max(m.Code, 0)))
		e.Str(m.Text)
	case MsgPull:
		e.id16(m.Incarnation)
		e.Uint(m.GotSeq)
		e.Uint(uint64(max(m.Free, 0)))
		e.Bool(m.Draining)
		e.helds(m.Held)
		e.Uint(uint64(len(m.Results)))
		for i := range m.Results {
			e.result(&m.Results[i])
		}
		e.refs(m.Released)
		e.Uint(uint64(max(m.MaxMessage, 0)))
		e.Str(m.Walls)
	case MsgWork:
		e.id16(m.Incarnation)
		e.Uint(m.WorkSeq)
		e.dur(m.RetryAfter)
		e.Uint(uint64(len(m.Tasks)))
		for i := range m.Tasks {
			e.task(&m.Tasks[i])
		}
		e.acks(m.Acks)
		e.refs(m.Cancels)
		e.Uint(uint64(max(m.MaxMessage, 0)))
	case MsgFetch:
		e.Str(m.Fetch.ID)
		e.fence(m.Fetch.Fence)
		e.Str(m.Bundle)
	case MsgBundle:
		e.Str(m.Fetch.ID)
		e.fence(m.Fetch.Fence)
		e.Str(m.Bundle)
		e.Uint(uint64(max(m.Code, 0)))
		e.Str(m.Text)
		e.dur(m.RetryAfter)
		e.Bytes(m.BundleData)
	}
	if m.Sealed {
		e.B = append(e.B, m.MAC[:]...)
	}
	return e.B
}

// Decode parses one frame. Byte slices in the result (payloads, nonces)
// point into b. A sealed message is only parsed: Channel.Open checks it.
func Decode(b []byte) (*Message, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d-byte frame", ErrWireFormat, len(b))
	}
	if b[0] != WireVersion {
		return nil, fmt.Errorf("%w %d (this side speaks %d)", ErrWireVersion, b[0], WireVersion)
	}
	if len(b) < 3 {
		return nil, fmt.Errorf("%w: %d-byte frame", ErrWireFormat, len(b))
	}
	m := &Message{Type: MsgType(b[1])}
	if _, ok := msgNames[m.Type]; !ok {
		return nil, fmt.Errorf("%w %s", ErrWireType, m.Type)
	}
	d := wdec{faastype.Decoder{B: b[3:]}}
	switch b[2] {
	case 0:
	case 1:
		if len(b) < 3+MACSize {
			return nil, fmt.Errorf("%w: %s: a sealed frame too short for its mac", ErrWireFormat, m.Type)
		}
		m.Sealed = true
		m.signed = b[: len(b)-MACSize : len(b)-MACSize]
		copy(m.MAC[:], b[len(b)-MACSize:])
		d.B = b[3 : len(b)-MACSize]
		m.Channel = d.id16()
		m.Seq = d.Uint()
		if d.Err == nil && (m.Channel.IsZero() || m.Seq == 0) {
			d.Fail("sealed without a channel or a sequence number")
		}
	default:
		return nil, fmt.Errorf("%w: %s: seal byte %d", ErrWireFormat, m.Type, b[2])
	}
	switch s := m.Type.Sealing(); {
	case s == OpenOnly && m.Sealed:
		return nil, fmt.Errorf("%w: a sealed %s", ErrWireFormat, m.Type)
	case s == SealedOnly && !m.Sealed:
		return nil, fmt.Errorf("%w: an unsealed %s (every %s is sealed since wire version 2)", ErrWireFormat, m.Type, m.Type)
	}
	switch m.Type {
	case MsgHello:
		m.Name = d.Str()
		m.Session = d.id16()
		m.Lane = d.int()
		m.Nonce = d.nonce()
	case MsgChallenge:
		m.Channel = d.id16()
		m.Nonce = d.nonce()
		m.Secured = d.Bool()
		if d.Err == nil && m.Channel.IsZero() {
			d.Fail("no channel")
		}
	case MsgRegister:
		m.Capacity = d.int()
		m.Held = d.helds()
		m.MaxMessage = d.int()
		m.Walls = d.walls()
	case MsgWelcome:
		m.Incarnation = d.id16()
		m.Heartbeat = d.dur()
		m.Misses = d.int()
		m.Timeout = d.dur()
		m.MaxMessage = d.int()
	case MsgHeartbeat:
		m.Free = d.int()
	case MsgTask:
		m.Tasks = []Task{d.task()}
	case MsgResult:
		m.Results = []Result{d.result()}
	case MsgAck:
		m.Acks = d.acks()
	case MsgCancel:
		m.Cancels = d.refs()
	case MsgRelease:
		m.Released = d.refs()
	case MsgDrain, MsgBye:
	case MsgError:
		m.Code = d.int()
		m.Text = d.Str()
	case MsgPull:
		m.Incarnation = d.id16()
		m.GotSeq = d.Uint()
		m.Free = d.int()
		m.Draining = d.Bool()
		m.Held = d.helds()
		n := d.count(8)
		for i := 0; i < n && d.Err == nil; i++ {
			m.Results = append(m.Results, d.result())
		}
		m.Released = d.refs()
		m.MaxMessage = d.int()
		m.Walls = d.walls()
	case MsgWork:
		m.Incarnation = d.id16()
		m.WorkSeq = d.Uint()
		m.RetryAfter = d.dur()
		n := d.count(8)
		for i := 0; i < n && d.Err == nil; i++ {
			m.Tasks = append(m.Tasks, d.task())
		}
		m.Acks = d.acks()
		m.Cancels = d.refs()
		m.MaxMessage = d.int()
	case MsgFetch:
		m.Fetch = Ref{ID: d.id(), Fence: d.fence()}
		m.Bundle = d.hash()
		if d.Err == nil && m.Bundle == "" {
			d.Fail("no bundle hash")
		}
	case MsgBundle:
		m.Fetch = Ref{ID: d.id(), Fence: d.fence()}
		m.Bundle = d.hash()
		m.Code = d.int()
		m.Text = d.Str()
		m.RetryAfter = d.dur()
		m.BundleData = d.Bytes()
	}
	if d.Err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWireFormat, m.Type, d.Err)
	}
	return m, nil
}

// FrameVersion is the version byte of a frame (0 if it is empty), for
// reporting a version mismatch.
func FrameVersion(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// VersionError is the ERROR a side answers a frame of version peer with:
// laid out in version 1 for a version-1 peer (so that it can read it), in
// this version otherwise.
func VersionError(peer byte) []byte {
	text := fmt.Sprintf("wire version %d is not supported: this side speaks version %d (run the same faas release on the dispatcher and its workers)", peer, WireVersion)
	if peer == 1 {
		e := wenc{faastype.Encoder{B: []byte{1, byte(MsgError)}}}
		e.Uint(ErrCodeVersion)
		e.Str(text)
		return e.B
	}
	return (&Message{Type: MsgError, Code: ErrCodeVersion, Text: text}).Encode(nil)
}

// DefaultMaxMessage is the largest message a side accepts when it runs
// tasks under limits l: a task with both payloads at their cap, a result
// and its JSON form at their cap with both outputs at theirs, or a bundle
// of BundleRoom bytes, plus room for ids, tracebacks and envelopes.
func DefaultMaxMessage(l faastype.Limits) int {
	l = l.WithDefaults()
	return max(2*l.ArgBytes, 2*l.ResultBytes+2*l.OutputBytes, BundleRoom) + 1<<20
}

// ---- encoding ----

// wenc and wdec add the wire's own fields to the encodings of faastype
// (the same varints, byte strings and numbers the Task and Result codec
// uses).
type wenc struct{ faastype.Encoder }

func (e *wenc) dur(d time.Duration) { e.Uint(uint64(max(d, 0) / time.Millisecond)) }
func (e *wenc) id16(id ID16) {
	if id.IsZero() {
		e.Uint(0)
		return
	}
	e.Bytes(id[:])
}
func (e *wenc) fence(f int64) { e.Uint(uint64(max(f, 0))) }

func (e *wenc) task(t *Task) {
	e.fence(t.Fence)
	e.Uint(uint64(max(t.Attempt, 0)))
	e.Task(&t.Task)
}

func (e *wenc) result(r *Result) {
	e.Str(r.ID)
	e.fence(r.Fence)
	res := r.Result
	if res == nil {
		res = faastype.Failure(faastype.KindSandboxCrash, "no result")
	}
	e.Result(res)
}

func (e *wenc) refs(rs []Ref) {
	e.Uint(uint64(len(rs)))
	for _, r := range rs {
		e.Str(r.ID)
		e.fence(r.Fence)
	}
}

func (e *wenc) acks(as []Ack) {
	e.Uint(uint64(len(as)))
	for _, a := range as {
		e.Str(a.ID)
		e.fence(a.Fence)
		e.Bool(a.Recorded)
	}
}

func (e *wenc) helds(hs []Held) {
	e.Uint(uint64(len(hs)))
	for _, h := range hs {
		e.Str(h.ID)
		e.fence(h.Fence)
		e.dur(h.Elapsed)
		e.Bool(h.Done)
	}
}

// ---- decoding ----

// wdec reads fields; after the first error every read returns a zero value
// and Err stays set.
type wdec struct{ faastype.Decoder }

// int reads a uint that must fit an int32 (counts, sizes, capacities).
func (d *wdec) int() int {
	v := d.Uint()
	if v > math.MaxInt32 {
		d.Fail("number out of range")
		return 0
	}
	return int(v)
}

func (d *wdec) fence() int64 {
	v := d.Uint()
	if v > math.MaxInt64 {
		d.Fail("fence out of range")
		return 0
	}
	return int64(v)
}

func (d *wdec) dur() time.Duration {
	v := d.Uint()
	if v > uint64(math.MaxInt64/int64(time.Millisecond)) {
		d.Fail("duration out of range")
		return 0
	}
	return time.Duration(v) * time.Millisecond
}

func (d *wdec) id16() ID16 {
	b := d.Bytes()
	var id ID16
	switch len(b) {
	case 0:
	case 16:
		copy(id[:], b)
	default:
		d.Fail("identifier is not 16 bytes")
	}
	return id
}

// count reads a list length; every item takes at least minItem bytes, so a
// count the rest of the frame cannot hold is an error (and nothing is
// allocated for it).
func (d *wdec) count(minItem int) int {
	n := d.Uint()
	if d.Err != nil {
		return 0
	}
	if n > uint64(len(d.B)/minItem) {
		d.Fail("list longer than the frame")
		return 0
	}
	return int(n)
}

func (d *wdec) id() string {
	s := d.Str()
	if d.Err == nil && (s == "" || len(s) > 256) {
		d.Fail("bad task id")
	}
	return s
}

// hash reads a bundle hash ("" none).
func (d *wdec) hash() string {
	s := d.Str()
	if d.Err == nil && len(s) > 256 {
		d.Fail("bundle hash too long")
	}
	return s
}

func (d *wdec) task() Task {
	var t Task
	t.Fence = d.fence()
	t.Attempt = d.int()
	t.Task = d.Task()
	if d.Err == nil && t.ID == "" {
		d.Fail("bad task id")
	}
	return t
}

func (d *wdec) result() Result {
	var r Result
	r.ID = d.id()
	r.Fence = d.fence()
	r.Result = d.Result()
	return r
}

func (d *wdec) refs() []Ref {
	n := d.count(2)
	var out []Ref
	for i := 0; i < n && d.Err == nil; i++ {
		out = append(out, Ref{ID: d.id(), Fence: d.fence()})
	}
	return out
}

func (d *wdec) acks() []Ack {
	n := d.count(3)
	var out []Ack
	for i := 0; i < n && d.Err == nil; i++ {
		out = append(out, Ack{ID: d.id(), Fence: d.fence(), Recorded: d.Bool()})
	}
	return out
}

func (d *wdec) helds() []Held {
	n := d.count(4)
	var out []Held
	for i := 0; i < n && d.Err == nil; i++ {
		out = append(out, Held{ID: d.id(), Fence: d.fence(), Elapsed: d.dur(), Done: d.Bool()})
	}
	return out
}

func (d *wdec) nonce() []byte {
	b := d.Bytes()
	if d.Err == nil && len(b) != NonceSize {
		d.Fail(fmt.Sprintf("a %d-byte nonce (want %d)", len(b), NonceSize))
	}
	return b
}

// walls reads the optional trailing walls report (absent from older
// workers' messages), at most maxWalls bytes.
func (d *wdec) walls() string {
	if d.Err != nil || len(d.B) == 0 {
		return ""
	}
	s := d.Str()
	if len(s) > maxWalls {
		d.Fail("walls report too long")
	}
	return s
}

const maxWalls = 4096

// MaxCapacity bounds the sandboxes one worker may announce (REGISTER's
// capacity, PULL's free count and HELLO's lane).
const MaxCapacity = 4096
