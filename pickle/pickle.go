package pickle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Structural pickle inspection.
//
// Unpickling runs code, so the host never unpickles what a client sends.
// Instead it walks the opcode stream (protocols 0-5, every opcode of Python
// 3.11's pickletools) with a symbolic stack that records only the kind of
// each object: enough to tell a function from plain data, to check that
// arguments are an (args, kwargs) pair, and to find every reference to a
// module the sandbox cannot import. The walk follows CPython's C unpickler
// (_pickle.c, checked against it by TestInspectorAgreesWithCPython) in what
// it rejects: unknown opcodes, truncated arguments, stack underflow
// (including popping through a MARK), missing MARKs, bad memo references,
// odd DICT/SETITEMS counts, STACK_GLOBAL on non-strings, text arguments
// CPython cannot parse or decode, unhashable dict keys and set members, and
// operations on plain data that cannot take them (REDUCE of an int, APPEND
// to a str, ...). It also rejects what the sandbox cannot load (persistent
// ids, extension codes, out-of-band buffers) and, like Python's own
// unpickler but unlike the C one, an opcode that straddles the end of a
// protocol 4 frame; and bytes after STOP. Limits on the stack, the memo and
// the nesting of tuples keep its memory bounded whatever the input.

// kind is what the inspector knows about an object.
type kind uint8

const (
	kindUnknown   kind = iota // result of something the inspector does not model
	kindNone                  // None
	kindBool                  // True, False
	kindInt                   // int
	kindFloat                 // float
	kindComplex               // complex (protocol < 3 REDUCE of builtins.complex)
	kindStr                   // str (and protocol 0-2 byte strings, loaded as str)
	kindBytes                 // bytes
	kindBytearray             // bytearray
	kindTuple                 // tuple
	kindList                  // list
	kindDict                  // dict
	kindSet                   // set
	kindFrozenset             // frozenset
	kindGlobal                // a module attribute by reference: function, class, ...
	kindFunction              // a function pickled by value (dill's _create_function)
	kindReduce                // the result of calling a global (REDUCE)
	kindObject                // an instance made by NEWOBJ, NEWOBJ_EX, OBJ or INST
)

var kindNames = [...]string{
	kindUnknown: "object of unknown type", kindNone: "None", kindBool: "bool", kindInt: "int",
	kindFloat: "float", kindComplex: "complex", kindStr: "str", kindBytes: "bytes",
	kindBytearray: "bytearray", kindTuple: "tuple", kindList: "list", kindDict: "dict",
	kindSet: "set", kindFrozenset: "frozenset", kindGlobal: "reference", kindFunction: "function",
	kindReduce: "object", kindObject: "instance",
}

// isData reports whether objects of kind k are plain data, never callable.
func (k kind) isData() bool { return k >= kindNone && k <= kindFrozenset }

// value is one symbolic object.
type value struct {
	kind     kind
	strKnown bool // str holds the text of a kindStr (short, no escapes)
	// unhashable: a tuple with an unhashable member.
	unhashable bool
	// depth is how deeply tuples nest in a tuple (0 for anything else).
	depth uint16
	// n is the length of a kindTuple (-1: unknown); item its members when
	// n <= 2 (the only ones the checks look at).
	n    int32
	item [2]*value
	str  string
	// module and name: the global of a kindGlobal, the callable of a
	// kindReduce or the class of a kindObject, when known.
	module, name string
}

// tupleItems are the members of a tuple of at most two, else nil.
func (v *value) tupleItems() []*value {
	if v.kind != kindTuple || v.n > int32(len(v.item)) || v.n < 0 {
		return nil
	}
	return v.item[:v.n]
}

// Shared immutable values for the common scalars, so that a long list of
// numbers costs no allocation per element.
// Mutable containers qualify too: the inspector tracks no contents.
var (
	valNone       = &value{kind: kindNone}
	valBool       = &value{kind: kindBool}
	valInt        = &value{kind: kindInt}
	valFloat      = &value{kind: kindFloat}
	valStr        = &value{kind: kindStr}
	valEmptyStr   = &value{kind: kindStr, strKnown: true}
	valUnknown    = &value{kind: kindUnknown}
	valEmptyTuple = &value{kind: kindTuple}
	valAnyTuple   = &value{kind: kindTuple, n: -1} // a tuple of unknown length
	// dataValues has one shared value per data kind.
	dataValues = func() (d [kindFrozenset + 1]*value) {
		for k := kindNone; k <= kindFrozenset; k++ {
			d[k] = &value{kind: k}
		}
		d[kindNone], d[kindBool], d[kindInt], d[kindFloat], d[kindStr] = valNone, valBool, valInt, valFloat, valStr
		d[kindTuple] = valAnyTuple
		return d
	}()
)

// Limits that bound the inspection's memory (to about 200 MB for the worst
// input) whatever the payload; real pickles stay far below them.
const (
	maxKnownStr = 512     // longest str whose text is kept (module and attribute names)
	maxStack    = 1 << 20 // objects on the stack at once (a tuple of a million items)
	maxMemo     = 1 << 20 // memoized objects
	// maxDepth bounds how deeply tuples nest (CPython's pickler cannot
	// write more than about a thousand levels of anything).
	maxDepth = 10000
)

func (v *value) qualname() string {
	if v.module == "" {
		return ""
	}
	return v.module + "." + v.name
}

// describe is a noun phrase for v, used after "a pickled".
func (v *value) describe() string {
	switch v.kind {
	case kindTuple:
		if v.n < 0 {
			return "tuple"
		}
		if v.n == 1 {
			return "tuple of 1 item"
		}
		return fmt.Sprintf("tuple of %d items", v.n)
	case kindGlobal:
		return "reference to " + v.qualname()
	case kindReduce:
		if q := v.qualname(); q != "" {
			return "object made by " + q
		}
		return kindNames[kindUnknown]
	case kindObject:
		if q := v.qualname(); q != "" {
			return "instance of " + q
		}
		return "instance of an unknown class"
	}
	return kindNames[v.kind]
}

// moduleRef is a reference to a module attribute found in the stream.
type moduleRef struct {
	module, name string
	pos          int    // offset of the opcode
	via          string // "" for a global reference, else how it was reached
}

// pickleInfo is what the inspection found.
type pickleInfo struct {
	top   *value     // the object the pickle loads to
	proto int        // highest PROTO seen (0 without one)
	ops   int        // opcodes walked
	bad   *moduleRef // first reference to a module the sandbox does not have
	// topBad: the top object is itself the reference to bad (a function
	// pickled by reference).
	topBad bool
	// foreignCode is the number of fields of the first code object (dill's
	// _create_code) whose shape is not CPython 3.11's, 0 if none: a function
	// pickled by another Python version.
	foreignCode int32
}

// Error says why a payload is not a valid pickle.
type Error struct {
	Pos int    // byte offset of the offending opcode
	Op  string // opcode name, if known
	Msg string
}

func (e *Error) Error() string {
	if e.Op != "" {
		return fmt.Sprintf("%s at byte %d (%s)", e.Msg, e.Pos, e.Op)
	}
	return fmt.Sprintf("%s at byte %d", e.Msg, e.Pos)
}

type inspector struct {
	data  []byte
	pos   int // next byte to read
	opPos int // offset of the current opcode
	op    string
	stack []*value
	marks []int
	memo  memo
	info  pickleInfo
	// bundled are the top-level modules of the function's bundle.
	bundled []string
	// frameEnd is the end of the current protocol 4 frame, 0 outside one.
	// As in Python's unpickler, no opcode may straddle a frame's end.
	frameEnd int
}

// inspectPickle walks a pickle without running it. bundled are top-level
// modules the function's bundle provides, beyond the sandbox's own.
func inspectPickle(data []byte, bundled ...string) (*pickleInfo, error) {
	in := &inspector{data: data, bundled: bundled}
	if err := in.run(); err != nil {
		return nil, err
	}
	return &in.info, nil
}

func (in *inspector) fail(format string, args ...any) error {
	return &Error{Pos: in.opPos, Op: in.op, Msg: fmt.Sprintf(format, args...)}
}

// frameCheck leaves a frame that has been read to its end, and
// reports an error if a read of n bytes would cross the end of the current
// frame.
func (in *inspector) frameCheck(n uint64) error {
	if in.frameEnd == 0 {
		return nil
	}
	if in.pos == in.frameEnd {
		in.frameEnd = 0
		return nil
	}
	if n > uint64(in.frameEnd-in.pos) {
		return in.fail("pickle exhausted before end of frame")
	}
	return nil
}

// read returns the next n bytes.
func (in *inspector) read(n uint64) ([]byte, error) {
	if err := in.frameCheck(n); err != nil {
		return nil, err
	}
	if n > uint64(len(in.data)-in.pos) {
		return nil, in.fail("truncated: needs %d more bytes, %d left", n, len(in.data)-in.pos)
	}
	b := in.data[in.pos : in.pos+int(n)]
	in.pos += int(n)
	return b, nil
}

// readLine returns the bytes up to the next newline, without it.
func (in *inspector) readLine() (string, error) {
	i := bytes.IndexByte(in.data[in.pos:], '\n')
	if i < 0 {
		return "", in.fail("truncated: no end of line")
	}
	if err := in.frameCheck(uint64(i + 1)); err != nil {
		return "", err
	}
	line := string(in.data[in.pos : in.pos+i])
	in.pos += i + 1
	return line, nil
}

func (in *inspector) readUint(size int) (uint64, error) {
	b, err := in.read(uint64(size))
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.LittleEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.LittleEndian.Uint32(b)), nil
	default:
		return binary.LittleEndian.Uint64(b), nil
	}
}

// readSigned32Len reads the signed 4-byte length of BINSTRING and LONG4.
func (in *inspector) readSigned32Len() (uint64, error) {
	n, err := in.readUint(4)
	if err != nil {
		return 0, err
	}
	if int32(uint32(n)) < 0 {
		return 0, in.fail("negative byte count")
	}
	return n, nil
}

func (in *inspector) fence() int {
	if len(in.marks) == 0 {
		return 0
	}
	return in.marks[len(in.marks)-1]
}

func (in *inspector) push(v *value) { in.stack = append(in.stack, v) }

// memo maps memo indexes to objects: a slice for the dense indexes that
// MEMOIZE and ordinary picklers write, a map for the rest.
type memo struct {
	dense  []*value
	sparse map[uint64]*value
	count  int // indexes set, which is the index MEMOIZE uses
}

func (m *memo) get(idx uint64) *value {
	if idx < uint64(len(m.dense)) {
		return m.dense[idx]
	}
	return m.sparse[idx]
}

func (m *memo) put(idx uint64, v *value) {
	switch {
	case idx < uint64(len(m.dense)):
		if m.dense[idx] == nil {
			m.count++
		}
		m.dense[idx] = v
		return
	case idx == uint64(len(m.dense)) && m.sparse[idx] == nil:
		m.dense = append(m.dense, v)
		m.count++
		return
	}
	if m.sparse == nil {
		m.sparse = make(map[uint64]*value)
	}
	if m.sparse[idx] == nil {
		m.count++
	}
	m.sparse[idx] = v
}

func (in *inspector) pop() (*value, error) {
	if len(in.stack) <= in.fence() {
		return nil, in.fail("stack underflow")
	}
	v := in.stack[len(in.stack)-1]
	in.stack = in.stack[:len(in.stack)-1]
	return v, nil
}

func (in *inspector) peek() (*value, error) {
	if len(in.stack) <= in.fence() {
		return nil, in.fail("stack underflow")
	}
	return in.stack[len(in.stack)-1], nil
}

// popMark pops everything above the topmost MARK, and the MARK. The slice
// aliases the stack: copy what must outlive the next push.
func (in *inspector) popMark() ([]*value, error) {
	if len(in.marks) == 0 {
		return nil, in.fail("no MARK on the stack")
	}
	m := in.marks[len(in.marks)-1]
	in.marks = in.marks[:len(in.marks)-1]
	items := in.stack[m:]
	in.stack = in.stack[:m]
	return items, nil
}

var tupleShapes = func() [3]*value {
	var s [3]*value
	for n := range s {
		s[n] = &value{kind: kindTuple, n: int32(n)}
	}
	s[0] = valEmptyTuple
	return s
}()

// tupleShape is a shared stand-in for tuple t that knows only its length
// (and, for lengths above 2, nothing about members or depth).
func tupleShape(t *value) *value {
	if t.n >= 0 && int(t.n) < len(tupleShapes) && !t.unhashable {
		return tupleShapes[t.n]
	}
	return &value{kind: kindTuple, n: t.n, unhashable: t.unhashable, depth: t.depth}
}

// sharedTuples are the tuples of one or two shared values ((None,),
// (1, 2), ...), so that they cost no allocation either.
var (
	sharedTuplesMu sync.Mutex
	sharedTuples   = make(map[[3]*value]*value)
	shared         = func() map[*value]bool {
		m := map[*value]bool{valUnknown: true, valEmptyStr: true}
		for _, v := range dataValues {
			if v != nil {
				m[v] = true
			}
		}
		for _, v := range tupleShapes {
			m[v] = true
		}
		return m
	}()
)

func (in *inspector) newTuple(items []*value) (*value, error) {
	if len(items) == 0 {
		return valEmptyTuple, nil
	}
	if len(items) <= 2 && shared[items[0]] && shared[items[len(items)-1]] {
		key := [3]*value{tupleShapes[len(items)], items[0], items[len(items)-1]}
		sharedTuplesMu.Lock()
		t := sharedTuples[key]
		sharedTuplesMu.Unlock()
		if t != nil {
			return t, nil
		}
		t, err := in.buildTuple(items)
		if err != nil {
			return nil, err
		}
		sharedTuplesMu.Lock()
		sharedTuples[key] = t
		sharedTuplesMu.Unlock()
		return t, nil
	}
	return in.buildTuple(items)
}

func (in *inspector) buildTuple(items []*value) (*value, error) {
	v := &value{kind: kindTuple, n: int32(len(items))}
	if len(items) <= len(v.item) {
		// A member that is itself a tuple is kept only as its shape, so
		// tuples never hold trees of tuples alive.
		for i, it := range items {
			if it.kind == kindTuple {
				it = tupleShape(it)
			}
			v.item[i] = it
		}
	}
	for _, it := range items {
		if !hashable(it) {
			v.unhashable = true
		}
		if it.depth >= v.depth {
			if it.depth >= maxDepth {
				return nil, in.fail("tuples nested more than %d deep", maxDepth)
			}
			v.depth = it.depth + 1
		}
	}
	return v, nil
}

func newStr(s []byte) *value {
	if len(s) > maxKnownStr {
		return valStr
	}
	if len(s) == 0 {
		return valEmptyStr
	}
	return &value{kind: kindStr, str: string(s), strKnown: true}
}

// global records a reference to module.name and returns it as a value.
func (in *inspector) global(module, name string) *value {
	if in.info.proto < 3 {
		module, name = fixImports(module, name)
	}
	in.checkModule(module, name, "")
	return &value{kind: kindGlobal, module: module, name: name}
}

func (in *inspector) checkModule(module, name, via string) {
	if name == "__dict__" && via == "" && isModuleName(module) {
		// A module's namespace, which dill writes as the globals of a
		// function nested in an importable module: the sandbox gives the
		// function a fresh namespace standing for the module (pyshim), so
		// the module itself need not be there.
		return
	}
	if in.info.bad == nil && !sandboxHasModule(module) && !in.inBundle(module) {
		in.info.bad = &moduleRef{module: module, name: name, pos: in.opPos, via: via}
	}
}

// inBundle reports whether module (dotted) lives in a top-level module of
// the function's bundle.
func (in *inspector) inBundle(module string) bool {
	top, _, _ := strings.Cut(module, ".")
	return slices.Contains(in.bundled, top)
}

// dataConstructors are globals whose call result is plain data: how
// protocols 0-2 write sets, bytes, complex numbers and the like.
var dataConstructors = map[string]kind{
	"builtins.set": kindSet, "builtins.frozenset": kindFrozenset, "builtins.bytearray": kindBytearray,
	"builtins.bytes": kindBytes, "builtins.complex": kindComplex, "builtins.list": kindList,
	"builtins.dict": kindDict, "builtins.tuple": kindTuple, "builtins.str": kindStr,
	"builtins.int": kindInt, "builtins.float": kindFloat, "builtins.bool": kindBool,
	"_codecs.encode": kindBytes,
}

// memoIndex reads the memo key of a PUT or GET opcode: a decimal line
// (protocol 0), one byte or four.
func (in *inspector) memoIndex(code byte) (uint64, error) {
	switch code {
	case opPUT, opGET:
		line, err := in.readLine()
		if err != nil {
			return 0, err
		}
		idx, ok := parseMemoKey(line)
		if !ok {
			return 0, in.fail("invalid memo key %.40q", line)
		}
		return idx, nil
	case opBINPUT, opBINGET:
		return in.readUint(1)
	default:
		return in.readUint(4)
	}
}

// reduce models callable(*args).
func (in *inspector) reduce(callable, args *value) *value {
	if callable.kind != kindGlobal {
		return valUnknown
	}
	q := callable.qualname()
	switch q {
	case "dill._dill._create_function", "dill.dill._create_function":
		return &value{kind: kindFunction, module: callable.module, name: callable.name}
	case "dill._dill._load_type", "dill.dill._load_type":
		// dill pickles built-in types by name: _load_type("set").
		if items := args.tupleItems(); len(items) == 1 && items[0].strKnown {
			if _, ok := dataConstructors["builtins."+items[0].str]; ok {
				return &value{kind: kindGlobal, module: "builtins", name: items[0].str}
			}
		}
	case "dill._dill._create_code", "dill.dill._create_code":
		// dill 0.3.6 writes 19 fields for a 3.11 code object (co_lnotab
		// first); other Pythons write other counts (see codeFieldsPython).
		if args.kind == kindTuple && args.n >= 0 && args.n != codeFields311 && in.info.foreignCode == 0 {
			in.info.foreignCode = args.n
		}
	case "dill._dill._import_module", "dill.dill._import_module":
		// dill pickles a module object as _import_module("name").
		if items := args.tupleItems(); len(items) == 1 && items[0].strKnown {
			in.checkModule(items[0].str, "", "module object")
		}
	}
	if k, ok := dataConstructors[q]; ok {
		return dataValues[k]
	}
	return &value{kind: kindReduce, module: callable.module, name: callable.name}
}

// checkTarget checks that the object an opcode modifies in place (the top
// of the stack) can take it: one of the data kinds in ok, or an object of
// a kind the inspector does not model.
func (in *inspector) checkTarget(ok ...kind) error {
	v, err := in.peek()
	if err != nil {
		return err
	}
	if v.kind.isData() && !slices.Contains(ok, v.kind) {
		return in.fail("cannot apply to a %s", v.describe())
	}
	return nil
}

// checkKeys checks the keys of key, value pairs stored into an object of
// kind target: dict keys must be hashable, list and bytearray indexes
// integers.
func (in *inspector) checkKeys(target kind, pairs []*value) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		k := pairs[i]
		switch target {
		case kindDict:
			if !hashable(k) {
				return in.fail("unhashable dict key: a %s", k.describe())
			}
		case kindList, kindBytearray:
			if k.kind.isData() && k.kind != kindInt && k.kind != kindBool {
				return in.fail("%s index is a %s, not an int", kindNames[target], k.describe())
			}
		}
	}
	return nil
}

// checkHashable checks the members of a set or frozenset.
func (in *inspector) checkHashable(items []*value) error {
	for _, v := range items {
		if !hashable(v) {
			return in.fail("unhashable set member: a %s", v.describe())
		}
	}
	return nil
}

// hashable is false for what is certainly unhashable.
func hashable(v *value) bool {
	switch v.kind {
	case kindList, kindDict, kindSet, kindBytearray:
		return false
	case kindTuple:
		return !v.unhashable
	}
	return true
}

func isNoneState(v *value) bool {
	if v.kind == kindNone {
		return true
	}
	items := v.tupleItems()
	return len(items) == 2 && items[0].kind == kindNone && items[1].kind == kindNone
}

func newObject(cls *value) *value {
	if cls.kind == kindGlobal {
		return &value{kind: kindObject, module: cls.module, name: cls.name}
	}
	return &value{kind: kindObject}
}

func (in *inspector) run() error {
	for {
		if in.pos >= len(in.data) {
			if in.info.ops == 0 {
				return &Error{Pos: in.pos, Msg: "empty"}
			}
			return &Error{Pos: in.pos, Msg: "truncated: no STOP opcode"}
		}
		in.opPos = in.pos
		in.op = ""
		if err := in.frameCheck(1); err != nil {
			return err
		}
		code := in.data[in.pos]
		in.pos++
		in.info.ops++
		in.op = opNames[code]
		if in.op == "" {
			return in.fail("unknown opcode 0x%02x", code)
		}
		done, err := in.step(code)
		if err != nil {
			return err
		}
		if len(in.stack) > maxStack {
			return in.fail("too many objects on the stack (more than %d) to check", maxStack)
		}
		if done {
			if in.pos != len(in.data) {
				return &Error{Pos: in.pos, Msg: fmt.Sprintf("%d bytes after the STOP opcode", len(in.data)-in.pos)}
			}
			return nil
		}
	}
}

// step executes one opcode symbolically; it reports true after STOP.
func (in *inspector) step(code byte) (bool, error) {
	switch code {
	case opSTOP:
		top, err := in.pop()
		if err != nil {
			return false, err
		}
		in.info.top = top
		if b := in.info.bad; b != nil && b.via == "" && top.kind == kindGlobal && top.module == b.module && top.name == b.name {
			in.info.topBad = true
		}
		return true, nil

	case opPROTO:
		p, err := in.readUint(1)
		if err != nil {
			return false, err
		}
		if p > 5 {
			return false, in.fail("unsupported pickle protocol %d", p)
		}
		in.info.proto = int(p)
	case opFRAME:
		n, err := in.readUint(8)
		if err != nil {
			return false, err
		}
		if n > uint64(len(in.data)-in.pos) {
			return false, in.fail("truncated: frame of %d bytes, %d left", n, len(in.data)-in.pos)
		}
		if in.frameEnd != 0 && in.pos < in.frameEnd {
			return false, in.fail("beginning of a new frame before end of current frame")
		}
		in.frameEnd = in.pos + int(n)
		if n == 0 {
			in.frameEnd = 0
		}

	case opMARK:
		if len(in.marks) >= maxStack {
			return false, in.fail("too many open MARKs (more than %d) to check", maxStack)
		}
		in.marks = append(in.marks, len(in.stack))
	case opPOP:
		if n := len(in.marks); n > 0 && in.marks[n-1] == len(in.stack) {
			in.marks = in.marks[:n-1] // CPython pops the MARK here
		} else if _, err := in.pop(); err != nil {
			return false, err
		}
	case opPOP_MARK:
		if _, err := in.popMark(); err != nil {
			return false, err
		}
	case opDUP:
		v, err := in.peek()
		if err != nil {
			return false, err
		}
		in.push(v)

	// Scalars.
	case opNONE:
		in.push(valNone)
	case opNEWTRUE, opNEWFALSE:
		in.push(valBool)
	case opINT:
		line, err := in.readLine()
		if err != nil {
			return false, err
		}
		switch {
		case line == "00" || line == "01":
			in.push(valBool)
		case validINT(line):
			in.push(valInt)
		default:
			return false, in.fail("invalid integer %.40q", line)
		}
	case opLONG:
		line, err := in.readLine()
		if err != nil {
			return false, err
		}
		if !validLONG(line) {
			return false, in.fail("invalid integer %.40q", line)
		}
		in.push(valInt)
	case opBININT, opBININT1, opBININT2:
		size := uint64(4)
		switch code {
		case opBININT1:
			size = 1
		case opBININT2:
			size = 2
		}
		if _, err := in.read(size); err != nil {
			return false, err
		}
		in.push(valInt)
	case opLONG1, opLONG4:
		var n uint64
		var err error
		if code == opLONG1 {
			n, err = in.readUint(1)
		} else {
			n, err = in.readSigned32Len()
		}
		if err != nil {
			return false, err
		}
		if _, err := in.read(n); err != nil {
			return false, err
		}
		in.push(valInt)
	case opFLOAT:
		line, err := in.readLine()
		if err != nil {
			return false, err
		}
		if !validFLOAT(line) {
			return false, in.fail("invalid float %.40q", line)
		}
		in.push(valFloat)
	case opBINFLOAT:
		if _, err := in.read(8); err != nil {
			return false, err
		}
		in.push(valFloat)

	// Strings and bytes.
	case opSTRING:
		line, err := in.readLine()
		if err != nil {
			return false, err
		}
		if len(line) < 2 || line[0] != line[len(line)-1] || (line[0] != '\'' && line[0] != '"') {
			return false, in.fail("the STRING argument must be quoted")
		}
		b, ok := decodeBytesEscape(line[1 : len(line)-1])
		if !ok {
			return false, in.fail("invalid escape in STRING argument")
		}
		if !isASCIIBytes(b) {
			return false, in.fail("non-ASCII byte string (Python 2 str) cannot be loaded as str")
		}
		in.push(newStr(b))
	case opUNICODE:
		line, err := in.readLine()
		if err != nil {
			return false, err
		}
		if !validRawUnicodeEscape(line) {
			return false, in.fail("invalid \\u escape in UNICODE argument")
		}
		if strings.ContainsRune(line, '\\') || !isASCIIBytes([]byte(line)) {
			in.push(valStr) // raw-unicode-escape: text not tracked
		} else {
			in.push(newStr([]byte(line)))
		}
	case opBINSTRING, opSHORT_BINSTRING, opBINUNICODE, opSHORT_BINUNICODE, opBINUNICODE8:
		var n uint64
		var err error
		switch code {
		case opBINSTRING:
			n, err = in.readSigned32Len()
		case opSHORT_BINSTRING, opSHORT_BINUNICODE:
			n, err = in.readUint(1)
		case opBINUNICODE:
			n, err = in.readUint(4)
		default:
			n, err = in.readUint(8)
		}
		if err != nil {
			return false, err
		}
		b, err := in.read(n)
		if err != nil {
			return false, err
		}
		if code == opBINSTRING || code == opSHORT_BINSTRING {
			if !isASCIIBytes(b) {
				return false, in.fail("non-ASCII byte string (Python 2 str) cannot be loaded as str")
			}
		} else if !validUTF8(b, true) {
			return false, in.fail("invalid UTF-8")
		}
		in.push(newStr(b))
	case opBINBYTES, opSHORT_BINBYTES, opBINBYTES8, opBYTEARRAY8:
		size := 8
		switch code {
		case opBINBYTES:
			size = 4
		case opSHORT_BINBYTES:
			size = 1
		}
		n, err := in.readUint(size)
		if err != nil {
			return false, err
		}
		if _, err := in.read(n); err != nil {
			return false, err
		}
		if code == opBYTEARRAY8 {
			in.push(dataValues[kindBytearray])
		} else {
			in.push(dataValues[kindBytes])
		}

	// Containers.
	case opEMPTY_TUPLE:
		in.push(valEmptyTuple)
	case opTUPLE:
		items, err := in.popMark()
		if err != nil {
			return false, err
		}
		t, err := in.newTuple(items)
		if err != nil {
			return false, err
		}
		in.push(t)
	case opTUPLE1, opTUPLE2, opTUPLE3:
		n := int(code-opTUPLE1) + 1
		if len(in.stack)-in.fence() < n {
			return false, in.fail("stack underflow")
		}
		items := in.stack[len(in.stack)-n:]
		t, err := in.newTuple(items)
		if err != nil {
			return false, err
		}
		in.stack = in.stack[:len(in.stack)-n]
		in.push(t)
	case opEMPTY_LIST:
		in.push(dataValues[kindList])
	case opLIST:
		if _, err := in.popMark(); err != nil {
			return false, err
		}
		in.push(dataValues[kindList])
	case opAPPEND:
		if _, err := in.pop(); err != nil {
			return false, err
		}
		if err := in.checkTarget(kindList); err != nil {
			return false, err
		}
	case opAPPENDS, opADDITEMS:
		items, err := in.popMark()
		if err != nil {
			return false, err
		}
		if _, err := in.peek(); err != nil {
			return false, err
		}
		if len(items) > 0 { // CPython does nothing for no items
			want := kindList
			if code == opADDITEMS {
				want = kindSet
			}
			if err := in.checkTarget(want); err != nil {
				return false, err
			}
			if code == opADDITEMS && in.stack[len(in.stack)-1].kind == kindSet {
				if err := in.checkHashable(items); err != nil {
					return false, err
				}
			}
		}
	case opEMPTY_DICT:
		in.push(dataValues[kindDict])
	case opDICT:
		items, err := in.popMark()
		if err != nil {
			return false, err
		}
		if len(items)%2 != 0 {
			return false, in.fail("odd number of items for DICT")
		}
		if err := in.checkKeys(kindDict, items); err != nil {
			return false, err
		}
		in.push(dataValues[kindDict])
	case opSETITEM:
		val, err := in.pop()
		if err != nil {
			return false, err
		}
		key, err := in.pop()
		if err != nil {
			return false, err
		}
		if err := in.checkTarget(kindDict, kindList, kindBytearray); err != nil {
			return false, err
		}
		if err := in.checkKeys(in.stack[len(in.stack)-1].kind, []*value{key, val}); err != nil {
			return false, err
		}
	case opSETITEMS:
		items, err := in.popMark()
		if err != nil {
			return false, err
		}
		if _, err := in.peek(); err != nil {
			return false, err
		}
		if len(items) > 0 { // CPython does nothing for no items
			if len(items)%2 != 0 {
				return false, in.fail("odd number of items for SETITEMS")
			}
			if err := in.checkTarget(kindDict, kindList, kindBytearray); err != nil {
				return false, err
			}
			if err := in.checkKeys(in.stack[len(in.stack)-1].kind, items); err != nil {
				return false, err
			}
		}
	case opEMPTY_SET:
		in.push(dataValues[kindSet])
	case opFROZENSET:
		items, err := in.popMark()
		if err != nil {
			return false, err
		}
		if err := in.checkHashable(items); err != nil {
			return false, err
		}
		in.push(dataValues[kindFrozenset])

	// Memo.
	case opPUT, opBINPUT, opLONG_BINPUT, opMEMOIZE:
		idx := uint64(in.memo.count) // MEMOIZE: the next index
		if code != opMEMOIZE {
			var err error
			if idx, err = in.memoIndex(code); err != nil {
				return false, err
			}
		}
		v, err := in.peek()
		if err != nil {
			return false, err
		}
		in.memo.put(idx, v)
		if in.memo.count > maxMemo {
			return false, in.fail("too many memoized objects (more than %d) to check", maxMemo)
		}
	case opGET, opBINGET, opLONG_BINGET:
		idx, err := in.memoIndex(code)
		if err != nil {
			return false, err
		}
		v := in.memo.get(idx)
		if v == nil {
			return false, in.fail("memo key %d was never stored", idx)
		}
		in.push(v)

	// References and calls.
	case opGLOBAL:
		module, err := in.readLine()
		if err != nil {
			return false, err
		}
		name, err := in.readLine()
		if err != nil {
			return false, err
		}
		if !validUTF8([]byte(module), false) || !validUTF8([]byte(name), false) {
			return false, in.fail("invalid UTF-8 in module or attribute name")
		}
		in.push(in.global(module, name))
	case opSTACK_GLOBAL:
		name, err := in.pop()
		if err != nil {
			return false, err
		}
		module, err := in.pop()
		if err != nil {
			return false, err
		}
		if module.kind != kindStr || name.kind != kindStr {
			return false, in.fail("STACK_GLOBAL requires two str, got %s and %s", module.describe(), name.describe())
		}
		if !module.strKnown || !name.strKnown {
			return false, in.fail("STACK_GLOBAL with a module or attribute name that cannot be checked")
		}
		in.push(in.global(module.str, name.str))
	case opREDUCE:
		args, err := in.pop()
		if err != nil {
			return false, err
		}
		callable, err := in.pop()
		if err != nil {
			return false, err
		}
		if args.kind.isData() && args.kind != kindTuple {
			return false, in.fail("REDUCE arguments must be a tuple, got a %s", args.describe())
		}
		if callable.kind.isData() {
			return false, in.fail("REDUCE of a %s, which is not callable", callable.describe())
		}
		in.push(in.reduce(callable, args))
	case opBUILD:
		state, err := in.pop()
		if err != nil {
			return false, err
		}
		obj, err := in.peek()
		if err != nil {
			return false, err
		}
		// Built-in data has no __dict__ (and, in 3.11, no __setstate__):
		// only a None state (or a (None, None) pair) leaves it alone.
		if obj.kind.isData() && !isNoneState(state) {
			return false, in.fail("BUILD on a %s", obj.describe())
		}
	case opINST:
		module, err := in.readLine()
		if err != nil {
			return false, err
		}
		name, err := in.readLine()
		if err != nil {
			return false, err
		}
		if !validUTF8([]byte(module), false) || !validUTF8([]byte(name), false) {
			return false, in.fail("invalid UTF-8 in module or attribute name")
		}
		if _, err := in.popMark(); err != nil {
			return false, err
		}
		in.push(newObject(in.global(module, name)))
	case opOBJ:
		items, err := in.popMark()
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			return false, in.fail("stack underflow")
		}
		if items[0].kind.isData() {
			return false, in.fail("OBJ class is a %s, not a class", items[0].describe())
		}
		in.push(newObject(items[0]))
	case opNEWOBJ, opNEWOBJ_EX:
		var kwargs *value
		if code == opNEWOBJ_EX {
			var err error
			if kwargs, err = in.pop(); err != nil {
				return false, err
			}
		}
		args, err := in.pop()
		if err != nil {
			return false, err
		}
		cls, err := in.pop()
		if err != nil {
			return false, err
		}
		switch {
		case cls.kind.isData():
			return false, in.fail("class argument is a %s, not a class", cls.describe())
		case args.kind.isData() && args.kind != kindTuple:
			return false, in.fail("args argument is a %s, not a tuple", args.describe())
		case kwargs != nil && kwargs.kind.isData() && kwargs.kind != kindDict:
			return false, in.fail("kwargs argument is a %s, not a dict", kwargs.describe())
		}
		in.push(newObject(cls))

	// What the sandbox cannot load.
	case opPERSID, opBINPERSID:
		return false, in.fail("persistent ids are not supported (the pickle needs a custom persistent_load)")
	case opEXT1, opEXT2, opEXT4:
		return false, in.fail("extension codes are not supported (the pickle needs a copyreg extension registry)")
	case opNEXT_BUFFER:
		return false, in.fail("out-of-band buffers are not supported (pickle protocol 5 buffers must be in-band)")
	case opREADONLY_BUFFER:
		if err := in.checkTarget(kindBytes, kindBytearray); err != nil {
			return false, err
		}

	default:
		return false, in.fail("unknown opcode 0x%02x", code)
	}
	return false, nil
}
