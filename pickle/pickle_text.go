package pickle

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Validation of the text arguments of pickle opcodes, following what
// CPython's C unpickler (Modules/_pickle.c, 3.11) accepts.

const pySpace = `[ \t\n\v\f\r]`

var (
	// pyIntRe is what PyLong_FromString(s, NULL, 0) accepts: int(s, 0).
	pyIntRe = regexp.MustCompile(`^` + pySpace + `*[+-]?(0[xX](_?[0-9a-fA-F])+|0[oO](_?[0-7])+|0[bB](_?[01])+|0(_?0)*|[1-9](_?[0-9])*)` + pySpace + `*$`)
	// strtolRe is what strtol(s, &end, 0) consumes entirely (before the
	// newline): INT tries strtol first.
	strtolRe = regexp.MustCompile(`^` + pySpace + `*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$`)
	// pyFloatRe is what PyOS_string_to_double accepts as a whole.
	pyFloatRe = regexp.MustCompile(`^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))$`)
)

// The C parsers see a NUL-terminated string: a NUL ends the argument.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// validINT checks the argument of INT (other than the bools "00", "01"):
// strtol(s, &end, 0) must consume it all, or else int(s, 0) parse it.
func validINT(line string) bool {
	if line == "" {
		return false
	}
	s := cString(line)
	if s == "" {
		return true // strtol reads nothing and stops at the NUL: 0
	}
	if strtolRe.MatchString(s) {
		if _, err := strconv.ParseInt(strings.TrimLeft(s, " \t\n\v\f\r"), 0, 64); err == nil {
			return true
		}
		// strtol overflowed: CPython falls back to int(s, 0).
	}
	return pyIntRe.MatchString(s)
}

// validLONG checks the argument of LONG; a trailing "L" is dropped.
func validLONG(line string) bool {
	if n := len(line); n > 0 && line[n-1] == 'L' {
		line = line[:n-1]
	}
	return pyIntRe.MatchString(cString(line))
}

var memoKeyRe = regexp.MustCompile(`^` + pySpace + `*[+-]?[0-9](_?[0-9])*` + pySpace + `*$`)

// parseMemoKey parses the argument of PUT and GET: int(s, 10), not
// negative.
func parseMemoKey(line string) (uint64, bool) {
	s := cString(line)
	if !memoKeyRe.MatchString(s) {
		return 0, false
	}
	neg := strings.Contains(s, "-")
	s = strings.Map(func(r rune) rune {
		if r == '_' || strings.ContainsRune(" \t\n\v\f\r+-", r) {
			return -1
		}
		return r
	}, s)
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && (!neg || n == 0)
}

// validFLOAT checks the argument of FLOAT; overflow is an error there.
func validFLOAT(line string) bool {
	line = cString(line)
	if !pyFloatRe.MatchString(line) {
		return false
	}
	f, err := strconv.ParseFloat(line, 64)
	// CPython reports an overflow (1e999) as an error.
	return err == nil || (isRangeErr(err) && !math.IsInf(f, 0))
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// decodeBytesEscape decodes a Python 2 string literal body the way
// PyBytes_DecodeEscape does (STRING opcode).
func decodeBytesEscape(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return nil, false // trailing backslash
		}
		switch c = s[i]; c {
		case '\n':
		case '\\', '\'', '"':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 'v':
			out = append(out, '\v')
		case 'a':
			out = append(out, '\a')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
				i++
				v = v*8 + int(s[i]-'0')
			}
			out = append(out, byte(v))
		case 'x':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return nil, false
			}
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			out = append(out, byte(v))
			i += 2
		default:
			out = append(out, '\\', c)
		}
	}
	return out, true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// validRawUnicodeEscape checks what the raw_unicode_escape codec decodes
// (UNICODE opcode): a \u or \U preceded by an odd number of backslashes
// must be followed by 4 or 8 hex digits, and \U must stay within Unicode.
func validRawUnicodeEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		j := i
		for j < len(s) && s[j] == '\\' {
			j++
		}
		if (j-i)%2 == 1 && j < len(s) && (s[j] == 'u' || s[j] == 'U') {
			n := 4
			if s[j] == 'U' {
				n = 8
			}
			if j+n >= len(s) {
				return false
			}
			for k := j + 1; k <= j+n; k++ {
				if !isHex(s[k]) {
					return false
				}
			}
			if v, _ := strconv.ParseUint(s[j+1:j+1+n], 16, 32); v > utf8.MaxRune {
				return false
			}
			j += n
		}
		i = j - 1
	}
	return true
}

// validUTF8 checks UTF-8 the way Python's decoder does, optionally with the
// "surrogatepass" error handler (which admits encoded surrogates).
func validUTF8(b []byte, surrogatepass bool) bool {
	if utf8.Valid(b) {
		return true
	}
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			if surrogatepass && len(b) >= 3 && b[0] == 0xED && b[1] >= 0xA0 && b[1] <= 0xBF && b[2] >= 0x80 && b[2] <= 0xBF {
				b = b[3:]
				continue
			}
			return false
		}
		b = b[n:]
	}
	return true
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
