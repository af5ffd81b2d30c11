package pickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Describing a result without unpickling it.
//
// Describe reads a pickle the way the inspector does (it checks it with the
// inspector first) and, when the stream builds nothing but plain data,
// evaluates it into a tree of Go values and renders Python's repr of it.
// It runs no code and imports nothing: any opcode outside plain data
// (GLOBAL, STACK_GLOBAL, REDUCE, BUILD with a state, NEWOBJ, INST, OBJ, ...)
// stops the evaluation, and the inspector's description of the top object
// is used instead ("a pickled instance of mymod.Point").

// Description is what Describe found.
type Description struct {
	// Text is repr(value) for plain data (Literal), else "a pickled
	// <what>", or why the bytes are not a valid pickle.
	Text string
	// Literal is true when Text is the value's repr.
	Literal bool
	// Truncated is true when Text was cut at the length asked for.
	Truncated bool
}

// Describe renders the value pickle b loads to, at most about maxLen
// characters of it, without running the pickle. Plain data (None, bool,
// int, float, str, bytes, bytearray, and tuples, lists, dicts, sets and
// frozensets of those) is rendered as Python's repr would (sets and dicts
// in the order the pickle adds their members, which is the order they had
// when pickled); anything else is named: "a pickled function", "a pickled
// object made by builtins.ValueError".
func Describe(b []byte, maxLen int) Description {
	info, err := inspectPickle(b)
	if err != nil {
		return Description{Text: "not a valid pickle: " + err.Error()}
	}
	d := &describer{data: b, memo: map[uint64]*pyObj{}}
	top, err := d.run()
	if err != nil {
		return Description{Text: "a pickled " + info.top.describe()}
	}
	r := &reprWriter{max: max(maxLen, 16), visiting: map[*pyObj]bool{}}
	if top.kind == kindGlobal {
		return Description{Text: "a pickled reference to " + top.text}
	}
	r.write(top, 0)
	if r.bad {
		return Description{Text: "a pickled " + info.top.describe()}
	}
	return Description{Text: r.b.String(), Literal: true, Truncated: r.cut}
}

// pyObj is one value of plain data.
type pyObj struct {
	kind kind
	// text is the repr of a scalar (None, bool, int, float); the text
	// itself of a str; the raw bytes of a bytes or bytearray.
	text string
	// items are the members of a tuple, list, set or frozenset, and the
	// keys and values of a dict, alternating.
	items []*pyObj
	// keys indexes a dict's keys or a set's members by keyOf.
	keys map[string]int
}

var errNotData = errors.New("not plain data")

type describer struct {
	data  []byte
	pos   int
	stack []*pyObj
	marks []int
	memo  map[uint64]*pyObj
}

// The stream was checked by the inspector, so reads do not fail; they are
// bounded anyway.
func (d *describer) read(n uint64) ([]byte, error) {
	if n > uint64(len(d.data)-d.pos) {
		return nil, errNotData
	}
	b := d.data[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (d *describer) uint(size int) (uint64, error) {
	b, err := d.read(uint64(size))
	if err != nil {
		return 0, err
	}
	var buf [8]byte
	copy(buf[:], b)
	return binary.LittleEndian.Uint64(buf[:]), nil
}

func (d *describer) line() (string, error) {
	i := bytes.IndexByte(d.data[d.pos:], '\n')
	if i < 0 {
		return "", errNotData
	}
	s := string(d.data[d.pos : d.pos+i])
	d.pos += i + 1
	return s, nil
}

func (d *describer) push(o *pyObj) { d.stack = append(d.stack, o) }

func (d *describer) pop() (*pyObj, error) {
	if len(d.stack) == 0 {
		return nil, errNotData
	}
	o := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	return o, nil
}

func (d *describer) top() (*pyObj, error) {
	if len(d.stack) == 0 {
		return nil, errNotData
	}
	return d.stack[len(d.stack)-1], nil
}

func (d *describer) popMark() ([]*pyObj, error) {
	if len(d.marks) == 0 {
		return nil, errNotData
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	if m > len(d.stack) {
		return nil, errNotData
	}
	items := append([]*pyObj(nil), d.stack[m:]...)
	d.stack = d.stack[:m]
	return items, nil
}

func scalar(k kind, text string) *pyObj { return &pyObj{kind: k, text: text} }

var (
	objNone  = scalar(kindNone, "None")
	objTrue  = scalar(kindBool, "True")
	objFalse = scalar(kindBool, "False")
)

func intObj(n *big.Int) *pyObj {
	// Python 3.11 refuses to print ints of more than 4300 digits.
	if n.BitLen() > 14000 {
		return scalar(kindInt, "<an int of "+strconv.Itoa(n.BitLen())+" bits>")
	}
	return scalar(kindInt, n.String())
}

// longLE is a little-endian two's complement integer (LONG1, LONG4).
func longLE(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if len(b) > 0 && b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// pyInt parses the text of INT and LONG as int(s, 0) does.
func pyInt(s string) (*big.Int, bool) {
	s = strings.TrimSpace(cString(s))
	if s == "" {
		return new(big.Int), true // strtol read nothing: 0
	}
	n, ok := new(big.Int).SetString(s, 0)
	if !ok {
		// "010": strtol reads octal, int(s, 0) refuses; what CPython
		// loads here is not worth modelling.
		return nil, false
	}
	return n, true
}

func (d *describer) run() (*pyObj, error) {
	for d.pos < len(d.data) {
		code := d.data[d.pos]
		d.pos++
		switch code {
		case opSTOP:
			return d.pop()
		case opPROTO:
			if _, err := d.read(1); err != nil {
				return nil, err
			}
		case opFRAME:
			if _, err := d.read(8); err != nil {
				return nil, err
			}
		case opMARK:
			d.marks = append(d.marks, len(d.stack))
		case opPOP:
			if n := len(d.marks); n > 0 && d.marks[n-1] == len(d.stack) {
				d.marks = d.marks[:n-1]
			} else if _, err := d.pop(); err != nil {
				return nil, err
			}
		case opPOP_MARK:
			if _, err := d.popMark(); err != nil {
				return nil, err
			}
		case opDUP:
			o, err := d.top()
			if err != nil {
				return nil, err
			}
			d.push(o)

		case opNONE:
			d.push(objNone)
		case opNEWTRUE:
			d.push(objTrue)
		case opNEWFALSE:
			d.push(objFalse)
		case opINT, opLONG:
			s, err := d.line()
			if err != nil {
				return nil, err
			}
			if code == opINT && (s == "00" || s == "01") {
				d.push(map[bool]*pyObj{true: objTrue, false: objFalse}[s == "01"])
				continue
			}
			if code == opLONG {
				s = strings.TrimSuffix(s, "L")
			}
			n, ok := pyInt(s)
			if !ok {
				return nil, errNotData
			}
			d.push(intObj(n))
		case opBININT:
			v, err := d.uint(4)
			if err != nil {
				return nil, err
			}
			d.push(scalar(kindInt, strconv.FormatInt(int64(int32(uint32(v))), 10)))
		case opBININT1, opBININT2:
			size := 1
			if code == opBININT2 {
				size = 2
			}
			v, err := d.uint(size)
			if err != nil {
				return nil, err
			}
			d.push(scalar(kindInt, strconv.FormatUint(v, 10)))
		case opLONG1, opLONG4:
			size := 1
			if code == opLONG4 {
				size = 4
			}
			n, err := d.uint(size)
			if err != nil {
				return nil, err
			}
			b, err := d.read(n)
			if err != nil {
				return nil, err
			}
			d.push(intObj(longLE(b)))
		case opFLOAT:
			s, err := d.line()
			if err != nil {
				return nil, err
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(cString(s)), 64)
			if err != nil && !isRangeErr(err) {
				return nil, errNotData
			}
			d.push(scalar(kindFloat, floatRepr(f)))
		case opBINFLOAT:
			b, err := d.read(8)
			if err != nil {
				return nil, err
			}
			d.push(scalar(kindFloat, floatRepr(math.Float64frombits(binary.BigEndian.Uint64(b)))))

		case opSTRING:
			s, err := d.line()
			if err != nil {
				return nil, err
			}
			if len(s) < 2 {
				return nil, errNotData
			}
			b, ok := decodeBytesEscape(s[1 : len(s)-1])
			if !ok {
				return nil, errNotData
			}
			d.push(&pyObj{kind: kindStr, text: string(b)})
		case opUNICODE:
			s, err := d.line()
			if err != nil {
				return nil, err
			}
			d.push(&pyObj{kind: kindStr, text: rawUnicodeEscape(s)})
		case opBINSTRING, opSHORT_BINSTRING, opBINUNICODE, opSHORT_BINUNICODE, opBINUNICODE8,
			opBINBYTES, opSHORT_BINBYTES, opBINBYTES8, opBYTEARRAY8:
			size := map[byte]int{opBINSTRING: 4, opSHORT_BINSTRING: 1, opBINUNICODE: 4, opSHORT_BINUNICODE: 1,
				opBINUNICODE8: 8, opBINBYTES: 4, opSHORT_BINBYTES: 1, opBINBYTES8: 8, opBYTEARRAY8: 8}[code]
			n, err := d.uint(size)
			if err != nil {
				return nil, err
			}
			b, err := d.read(n)
			if err != nil {
				return nil, err
			}
			k := kindStr
			switch code {
			case opBINBYTES, opSHORT_BINBYTES, opBINBYTES8:
				k = kindBytes
			case opBYTEARRAY8:
				k = kindBytearray
			}
			d.push(&pyObj{kind: k, text: string(b)})

		case opEMPTY_TUPLE:
			d.push(&pyObj{kind: kindTuple})
		case opTUPLE:
			items, err := d.popMark()
			if err != nil {
				return nil, err
			}
			d.push(&pyObj{kind: kindTuple, items: items})
		case opTUPLE1, opTUPLE2, opTUPLE3:
			n := int(code-opTUPLE1) + 1
			if len(d.stack) < n {
				return nil, errNotData
			}
			items := append([]*pyObj(nil), d.stack[len(d.stack)-n:]...)
			d.stack = d.stack[:len(d.stack)-n]
			d.push(&pyObj{kind: kindTuple, items: items})
		case opEMPTY_LIST:
			d.push(&pyObj{kind: kindList})
		case opLIST:
			items, err := d.popMark()
			if err != nil {
				return nil, err
			}
			d.push(&pyObj{kind: kindList, items: items})
		case opAPPEND:
			v, err := d.pop()
			if err != nil {
				return nil, err
			}
			l, err := d.top()
			if err != nil || l.kind != kindList {
				return nil, errNotData
			}
			l.items = append(l.items, v)
		case opAPPENDS, opADDITEMS:
			items, err := d.popMark()
			if err != nil {
				return nil, err
			}
			c, err := d.top()
			if err != nil {
				return nil, err
			}
			switch {
			case len(items) == 0:
			case code == opAPPENDS && c.kind == kindList:
				c.items = append(c.items, items...)
			case code == opADDITEMS && c.kind == kindSet:
				for _, it := range items {
					c.addMember(it)
				}
			default:
				return nil, errNotData
			}
		case opEMPTY_DICT:
			d.push(&pyObj{kind: kindDict})
		case opDICT:
			items, err := d.popMark()
			if err != nil || len(items)%2 != 0 {
				return nil, errNotData
			}
			m := &pyObj{kind: kindDict}
			for i := 0; i < len(items); i += 2 {
				m.setItem(items[i], items[i+1])
			}
			d.push(m)
		case opSETITEM, opSETITEMS:
			var items []*pyObj
			if code == opSETITEM {
				v, err := d.pop()
				if err != nil {
					return nil, err
				}
				k, err := d.pop()
				if err != nil {
					return nil, err
				}
				items = []*pyObj{k, v}
			} else {
				var err error
				if items, err = d.popMark(); err != nil {
					return nil, err
				}
			}
			m, err := d.top()
			if err != nil {
				return nil, err
			}
			if len(items) == 0 {
				continue
			}
			if m.kind != kindDict || len(items)%2 != 0 {
				return nil, errNotData // a list's SETITEM is not worth modelling
			}
			for i := 0; i < len(items); i += 2 {
				m.setItem(items[i], items[i+1])
			}
		case opEMPTY_SET:
			d.push(&pyObj{kind: kindSet})
		case opFROZENSET:
			items, err := d.popMark()
			if err != nil {
				return nil, err
			}
			s := &pyObj{kind: kindFrozenset}
			for _, it := range items {
				s.addMember(it)
			}
			d.push(s)

		case opPUT, opBINPUT, opLONG_BINPUT, opMEMOIZE, opGET, opBINGET, opLONG_BINGET:
			var idx uint64
			var err error
			switch code {
			case opMEMOIZE:
				idx = uint64(len(d.memo))
			case opPUT, opGET:
				var s string
				if s, err = d.line(); err == nil {
					var ok bool
					if idx, ok = parseMemoKey(s); !ok {
						err = errNotData
					}
				}
			case opBINPUT, opBINGET:
				idx, err = d.uint(1)
			default:
				idx, err = d.uint(4)
			}
			if err != nil {
				return nil, err
			}
			switch code {
			case opGET, opBINGET, opLONG_BINGET:
				o := d.memo[idx]
				if o == nil {
					return nil, errNotData
				}
				d.push(o)
			default:
				o, err := d.top()
				if err != nil {
					return nil, err
				}
				d.memo[idx] = o
			}
		case opBUILD:
			// Data takes only a None state (the inspector checked that); an
			// exception takes its __dict__ (the sandbox adds __notes__),
			// which its repr does not show.
			state, err := d.pop()
			if err != nil {
				return nil, err
			}
			obj, err := d.top()
			if err != nil || (state.kind != kindNone && obj.kind != kindReduce) {
				return nil, errNotData
			}
		case opGLOBAL:
			module, err := d.line()
			if err != nil {
				return nil, err
			}
			name, err := d.line()
			if err != nil {
				return nil, err
			}
			d.push(globalObj(module, name))
		case opSTACK_GLOBAL:
			name, err := d.pop()
			if err != nil {
				return nil, err
			}
			module, err := d.pop()
			if err != nil || module.kind != kindStr || name.kind != kindStr {
				return nil, errNotData
			}
			d.push(globalObj(module.text, name.text))
		case opREDUCE:
			args, err := d.pop()
			if err != nil {
				return nil, err
			}
			fn, err := d.pop()
			if err != nil || fn.kind != kindGlobal || args.kind != kindTuple {
				return nil, errNotData
			}
			if (fn.text == "dill._dill._load_type" || fn.text == "dill.dill._load_type") &&
				len(args.items) == 1 && args.items[0].kind == kindStr {
				d.push(globalObj("builtins", args.items[0].text)) // how dill pickles a built-in type
				continue
			}
			if !builtinException(fn.text) {
				return nil, errNotData
			}
			// A built-in exception: exc.__reduce__() is (type, args).
			d.push(&pyObj{kind: kindReduce, text: strings.TrimPrefix(fn.text, "builtins."), items: args.items})
		case opREADONLY_BUFFER:
		default:
			return nil, errNotData
		}
	}
	return nil, errNotData
}

// globalObj is a reference to module.name.
func globalObj(module, name string) *pyObj {
	if module == "__builtin__" || module == "exceptions" { // Python 2 names, as protocols 0-2 write them
		module = "builtins"
	}
	return &pyObj{kind: kindGlobal, text: module + "." + name}
}

// builtinException reports whether qualname names one of Python's
// built-in exception classes (by the name's form: the host imports nothing).
func builtinException(qualname string) bool {
	name, ok := strings.CutPrefix(qualname, "builtins.")
	if !ok || name == "" || strings.Contains(name, ".") {
		return false
	}
	switch name {
	case "BaseException", "Exception", "KeyboardInterrupt", "SystemExit", "StopIteration",
		"StopAsyncIteration", "GeneratorExit":
		return true
	}
	return strings.HasSuffix(name, "Error") || strings.HasSuffix(name, "Warning")
}

// keyOf is a key under which equal hashable values meet, as in a Python
// dict or set: 1, 1.0 and True are one key; "" for what is not plain
// hashable data.
func keyOf(o *pyObj) string {
	switch o.kind {
	case kindNone:
		return "N"
	case kindBool:
		if o.text == "True" {
			return "n1"
		}
		return "n0"
	case kindInt:
		return "n" + o.text
	case kindFloat:
		if f, err := strconv.ParseFloat(o.text, 64); err == nil && !math.IsInf(f, 0) && f == math.Trunc(f) {
			n, _ := big.NewFloat(f).Int(nil)
			return "n" + n.String()
		}
		return "f" + o.text // nan never equals itself in Python; close enough
	case kindStr:
		return "s" + o.text
	case kindBytes:
		return "b" + o.text
	case kindTuple, kindFrozenset:
		var b strings.Builder
		b.WriteString(map[kind]string{kindTuple: "t(", kindFrozenset: "F("}[o.kind])
		for _, it := range o.items {
			k := keyOf(it)
			if k == "" {
				return ""
			}
			b.WriteString(strconv.Quote(k))
			b.WriteByte(',')
		}
		b.WriteByte(')')
		return b.String()
	}
	return ""
}

// setItem is m[k] = v: a key already there keeps its place (and itself)
// and takes the new value.
func (m *pyObj) setItem(k, v *pyObj) {
	key := keyOf(k)
	if i, ok := m.keys[key]; ok && key != "" {
		m.items[i+1] = v
		return
	}
	if m.keys == nil {
		m.keys = map[string]int{}
	}
	m.keys[key] = len(m.items)
	m.items = append(m.items, k, v)
}

// addMember adds v to a set unless an equal member is there.
func (m *pyObj) addMember(v *pyObj) {
	key := keyOf(v)
	if _, ok := m.keys[key]; ok && key != "" {
		return
	}
	if m.keys == nil {
		m.keys = map[string]int{}
	}
	m.keys[key] = len(m.items)
	m.items = append(m.items, v)
}

// rawUnicodeEscape decodes the argument of UNICODE (raw-unicode-escape: a
// byte is a Latin-1 character, except \uXXXX and \UXXXXXXXX after an odd
// run of backslashes).
func rawUnicodeEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			b.WriteRune(rune(s[i]))
			i++
			continue
		}
		n := 0
		for i+n < len(s) && s[i+n] == '\\' {
			n++
		}
		j := i + n
		if n%2 == 1 && j < len(s) && (s[j] == 'u' || s[j] == 'U') {
			digits := 4
			if s[j] == 'U' {
				digits = 8
			}
			if j+1+digits <= len(s) {
				if r, err := strconv.ParseUint(s[j+1:j+1+digits], 16, 32); err == nil {
					b.WriteString(strings.Repeat(`\`, n-1))
					writeCodePoint(&b, rune(r))
					i = j + 1 + digits
					continue
				}
			}
		}
		b.WriteString(strings.Repeat(`\`, n))
		i = j
	}
	return b.String()
}

// writeCodePoint writes r, keeping a lone surrogate (which Go's UTF-8
// encoder would replace) as its 3-byte "surrogatepass" form.
func writeCodePoint(b *strings.Builder, r rune) {
	if r >= 0xD800 && r <= 0xDFFF {
		b.WriteByte(byte(0xE0 | r>>12))
		b.WriteByte(byte(0x80 | (r>>6)&0x3F))
		b.WriteByte(byte(0x80 | r&0x3F))
		return
	}
	b.WriteRune(r)
}

// floatRepr is Python's repr of a float: the shortest digits that read
// back, in fixed notation from 1e-4 up to 1e16 and in scientific outside.
func floatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	decpt := x + 1 // value = 0.digits × 10^decpt
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			return sign + "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			return sign + digits[:decpt] + "." + digits[decpt:]
		}
	}
	out := digits[:1]
	if len(digits) > 1 {
		out += "." + digits[1:]
	}
	es := "+"
	if x < 0 {
		es, x = "-", -x
	}
	ex := strconv.Itoa(x)
	if len(ex) < 2 {
		ex = "0" + ex
	}
	return sign + out + "e" + es + ex
}

// brackets are the opening and closing text of each container's repr, and
// its repr when empty.
var brackets = map[kind][3]string{kindTuple: {"(", ")", "()"}, kindList: {"[", "]", "[]"}, kindDict: {"{", "}", "{}"},
	kindSet: {"{", "}", "set()"}, kindFrozenset: {"frozenset({", "})", "frozenset()"}}

// reprWriter renders values as Python's repr, up to max bytes.
type reprWriter struct {
	b        strings.Builder
	max      int
	cut      bool
	bad      bool // met something it cannot render
	visiting map[*pyObj]bool
}

const maxReprDepth = 200

func (r *reprWriter) put(s string) {
	if r.cut {
		return
	}
	if r.b.Len()+len(s) > r.max {
		s = s[:max(0, r.max-r.b.Len())]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		r.b.WriteString(s)
		r.b.WriteString("…")
		r.cut = true
		return
	}
	r.b.WriteString(s)
}

func (r *reprWriter) write(o *pyObj, depth int) {
	if r.cut {
		return
	}
	if depth > maxReprDepth {
		r.put("…")
		return
	}
	switch o.kind {
	case kindStr:
		r.put(strRepr(o.text))
		return
	case kindBytes:
		r.put(bytesRepr(o.text))
		return
	case kindBytearray:
		r.put("bytearray(" + bytesRepr(o.text) + ")")
		return
	case kindReduce: // a built-in exception: ValueError('boom')
		r.put(o.text)
		r.put("(")
		for i, it := range o.items {
			if i > 0 {
				r.put(", ")
			}
			r.write(it, depth+1)
		}
		r.put(")")
		return
	case kindGlobal: // a class or function by reference: no repr without importing it
		r.bad = true
		return
	case kindTuple, kindList, kindDict, kindSet, kindFrozenset:
	default:
		r.put(o.text)
		return
	}
	br := brackets[o.kind]
	open, end := br[0], br[1]
	if len(o.items) == 0 {
		r.put(br[2])
		return
	}
	if r.visiting[o] {
		r.put(open + "..." + end) // a container inside itself, as Python shows it
		return
	}
	r.visiting[o] = true
	defer delete(r.visiting, o)
	r.put(open)
	step := 1
	if o.kind == kindDict {
		step = 2
	}
	for i := 0; i < len(o.items) && !r.cut; i += step {
		if i > 0 {
			r.put(", ")
		}
		r.write(o.items[i], depth+1)
		if step == 2 {
			r.put(": ")
			r.write(o.items[i+1], depth+1)
		}
	}
	if o.kind == kindTuple && len(o.items) == 1 {
		r.put(",")
	}
	r.put(end)
}

// strRepr is Python's repr of a str (held as UTF-8, lone surrogates in
// their 3-byte form).
func strRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			if i+2 < len(s) && s[i] == 0xED && s[i+1]&0xE0 == 0xA0 && s[i+2]&0xC0 == 0x80 {
				cp := rune(s[i]&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
				b.WriteString(`\u` + hex4(cp))
				i += 3
				continue
			}
			b.WriteString(`\x` + hex2(s[i])) // not reached for checked pickles
			i++
			continue
		}
		i += size
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x7f && r >= 0x20:
			b.WriteRune(r)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			b.WriteString(`\x` + hex2(byte(r)))
		case r <= 0xffff:
			b.WriteString(`\u` + hex4(r))
		default:
			s := strconv.FormatInt(int64(r), 16)
			b.WriteString(`\U` + strings.Repeat("0", 8-len(s)) + s)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// bytesRepr is Python's repr of bytes.
func bytesRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteString("b")
	b.WriteByte(q)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			b.WriteString(`\x` + hex2(c))
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func hex4(r rune) string {
	s := strconv.FormatInt(int64(r), 16)
	return strings.Repeat("0", 4-len(s)) + s
}
