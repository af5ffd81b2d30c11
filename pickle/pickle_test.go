package pickle

import (
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"

	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestFunctionPicklesAccepted(t *testing.T) {
	for _, name := range []string{
		"lambda_p0", "lambda_p1", "lambda_p2", "lambda_p3", "lambda_p4", "lambda_p5",
		"closure", "fib", "uses_json", "uses_math_global_recurse",
		"math_sqrt", "math_sqrt_p0", "builtins_print", "builtins_len_p2",
		"partial", "callable_instance", "class_by_value", "stdlib_class",
		// Globals of a function nested in an importable module: that
		// module's __dict__, which the sandbox stands in for.
		"nested_in_module", "lambda_in_module",
	} {
		t.Run(name, func(t *testing.T) {
			if err := CheckFunction(pyfixture.Bytes(t, name)); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

func TestFunctionPicklesRejected(t *testing.T) {
	byRef := []string{`function is pickled by reference to module "tests.mod"`, "__main__", "source text"}
	for _, c := range []struct {
		name string
		want []string // substrings of the detail
	}{
		{"byref_tests_mod", byRef},
		{"byref_tests_mod_recurse", byRef},
		{"byref_tests_mod_p2", byRef},
		{"byref_tests_mod_p0", byRef},
		{"uses_mymod_recurse", []string{`payload refers to module "mymod"`, "does not have", "__main__"}},
		{"partial_of_byref", []string{`payload refers to tests.mod.double from module "tests.mod"`, "does not have"}},
		{"left_out_stdlib", []string{`payload refers to _ctypes.sizeof from module "_ctypes"`, "left out of the sandbox"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckFunction(pyfixture.Bytes(t, c.name))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("detail %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestPlainDataIsNotAFunction(t *testing.T) {
	kinds := map[string]string{
		"str": "str", "bytes": "bytes", "int": "int", "bigint": "int", "float": "float",
		"none": "None", "bool": "bool", "list": "list", "dict": "dict", "tuple": "tuple of 2 items",
		"set": "set", "frozenset": "frozenset", "bytearray": "bytearray", "complex": "complex",
	}
	for name, kind := range kinds {
		for _, p := range []int{0, 2, 4, 5} {
			fx := fmt.Sprintf("data_%s_p%d", name, p)
			t.Run(fx, func(t *testing.T) {
				err := CheckFunction(pyfixture.Bytes(t, fx))
				want := "payload is a pickled " + kind + ", not a function"
				if err == nil || err.Error() != want {
					t.Fatalf("err = %v, want %q", err, want)
				}
			})
		}
	}
}

func TestArgsPicklesAccepted(t *testing.T) {
	for _, name := range []string{
		"args_empty", "args_simple", "args_simple_p0", "args_simple_p1", "args_simple_p2",
		"args_simple_p3", "args_simple_p4", "args_simple_p5", "args_list", "args_big_list",
		"args_nested", "args_function", "args_shared", "args_nested_in_module",
	} {
		t.Run(name, func(t *testing.T) {
			if err := CheckArgs(pyfixture.Bytes(t, name)); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

func TestArgsPicklesRejected(t *testing.T) {
	const pre = "payload must be serialize((args_tuple, kwargs_dict))"
	for _, c := range []struct{ name, want string }{
		{"args_int", pre + ", got a pickled int"},
		{"args_not_pair", pre + ", got a pickled tuple of 3 items"},
		{"args_single", pre + ", got a pickled tuple of 1 item"},
		{"args_list_pair", pre + ", got a pickled list"},
		{"args_kwargs_list", pre + ": its second item is a pickled list, not a dict"},
		{"args_args_dict", pre + ": its first item is a pickled dict, not a tuple or list"},
		{"lambda_p4", pre + ", got a pickled function"},
		{"math_sqrt", pre + ", got a pickled reference to math.sqrt"},
		{"args_point", `arguments refer to tests.mod.Point from module "tests.mod", which the sandbox does not have`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckArgs(pyfixture.Bytes(t, c.name))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// Every strict prefix of a valid pickle is invalid, and so is a valid
// pickle with anything after its STOP.
func TestTruncatedAndTrailingBytes(t *testing.T) {
	for name := range pyfixture.All(t) {
		data := pyfixture.Bytes(t, name)
		step := 1
		if len(data) > 1000 {
			step = len(data) / 200
		}
		for n := 0; n < len(data); n += step {
			if _, err := inspectPickle(data[:n]); err == nil {
				t.Fatalf("%s: prefix of %d/%d bytes accepted", name, n, len(data))
			}
		}
		for _, tail := range []string{".", "\x00", "garbage"} {
			_, err := inspectPickle(append(bytes.Clone(data), tail...))
			if err == nil || !strings.Contains(err.Error(), "after the STOP opcode") {
				t.Fatalf("%s + %q: err = %v", name, tail, err)
			}
		}
	}
}

func TestInvalidPickles(t *testing.T) {
	for _, c := range []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "empty"},
		{"text", "zebra", "unknown opcode 0x7a"},
		{"zero byte", "\x00", "unknown opcode 0x00"},
		{"no stop", "\x80\x04K\x01", "no STOP"},
		{"stop on empty stack", "\x80\x04.", "stack underflow"},
		{"protocol 6", "\x80\x06N.", "unsupported pickle protocol 6"},
		{"bad memo get", "\x80\x04h\x05.", "memo key 5 was never stored"},
		{"memo put on empty stack", "\x80\x04\x94N.", "stack underflow"},
		{"pop through mark", "\x80\x04N(\x85.", "stack underflow"},
		{"tuple without mark", "\x80\x04Nt.", "no MARK"},
		{"odd dict", "\x80\x04(K\x01d.", "odd number of items for DICT"},
		{"odd setitems", "\x80\x04}(K\x01u.", "odd number of items for SETITEMS"},
		{"setitem underflow", "\x80\x04K\x01K\x02s.", "stack underflow"},
		{"append underflow", "\x80\x04K\x01a.", "stack underflow"},
		{"reduce underflow", "\x80\x04)R.", "stack underflow"},
		{"stack global on ints", "\x80\x04K\x01K\x02\x93.", "STACK_GLOBAL requires two str"},
		{"negative binstring", "T\xff\xff\xff\xff.", "negative byte count"},
		{"huge binbytes8", "\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xffN.", "truncated"},
		{"huge frame", "\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N.", "truncated: frame"},
		{"unquoted STRING", "Sabc\n.", "must be quoted"},
		{"bad INT", "Ixyz\n.", "invalid integer"},
		{"bad FLOAT", "Fxyz\n.", "invalid float"},
		{"global without newline", "cmath", "no end of line"},
		{"persistent id", "\x80\x04K\x01Q.", "persistent ids"},
		{"persid", "P1\n.", "persistent ids"},
		{"ext1", "\x80\x02\x82\x01.", "extension codes"},
		{"next buffer", "\x80\x05\x97.", "out-of-band buffers"},
		{"reduce with int args", "\x80\x04\x8c\x04math\x8c\x04sqrt\x93K\x01R.", "REDUCE arguments must be a tuple"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := inspectPickle([]byte(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			// The API detail says what is wrong and where.
			if derr := CheckFunction([]byte(c.data)); derr == nil || !strings.HasPrefix(derr.Error(), "payload is not a valid pickle: ") {
				t.Fatalf("CheckFunction err = %v", derr)
			}
		})
	}
}

// Hand-written streams for opcodes dill does not emit.
func TestRareOpcodes(t *testing.T) {
	for _, c := range []struct {
		name, data string
		want       kind
	}{
		{"INST", "(cbuiltins\nobject\nq\x00ibuiltins\nobject\n.", kindObject},
		{"OBJ", "(cbuiltins\nobject\no.", kindObject},
		{"NEWOBJ_EX", "\x80\x04cbuiltins\nobject\n)}\x92.", kindObject},
		{"POP_MARK", "N(K\x01K\x021.", kindNone},
		{"POP of a MARK", "N(0.", kindNone},
		{"DUP", "K\x012\x86.", kindTuple},
		{"LONG", "L123L\n.", kindInt},
		{"LONG4", "\x8b\x02\x00\x00\x00\x01\x02.", kindInt},
		{"INT bool", "I01\n.", kindBool},
		{"INT underscores", "I1_000\n.", kindInt},
		{"FLOAT", "F1.5\n.", kindFloat},
		{"UNICODE", "Vhello\n.", kindStr},
		{"BINUNICODE8", "\x80\x04\x8d\x01\x00\x00\x00\x00\x00\x00\x00a.", kindStr},
		{"BYTEARRAY8", "\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00a.", kindBytearray},
		{"READONLY_BUFFER", "\x80\x05C\x01a\x98.", kindBytes},
		{"FROZENSET", "\x80\x04(K\x01\x91.", kindFrozenset},
		{"ADDITEMS", "\x80\x04\x8f(K\x01\x90.", kindSet},
		{"LIST", "(K\x01l.", kindList},
		{"DICT", "(K\x01K\x02d.", kindDict},
		{"PUT GET", "K\x01p7\n0g7\n.", kindInt},
		{"LONG_BINPUT LONG_BINGET", "K\x01r\x07\x00\x00\x000j\x07\x00\x00\x00.", kindInt},
		{"leftover stack like CPython", "K\x01K\x02.", kindInt},
	} {
		t.Run(c.name, func(t *testing.T) {
			info, err := inspectPickle([]byte(c.data))
			if err != nil {
				t.Fatal(err)
			}
			if info.top.kind != c.want {
				t.Fatalf("top is %s, want %s", info.top.describe(), kindNames[c.want])
			}
		})
	}
}

func TestCompatImportsForOldProtocols(t *testing.T) {
	// Python 2 names resolve (protocol < 3) to modules the sandbox has...
	for _, s := range []string{"c__builtin__\nset\n)R.", "ccopy_reg\n_reconstructor\n.", "cexceptions\nValueError\n."} {
		if _, err := inspectPickle([]byte(s)); err != nil {
			t.Errorf("%q: %v", s, err)
		}
		info, _ := inspectPickle([]byte(s))
		if info != nil && info.bad != nil {
			t.Errorf("%q: reference to %s.%s reported missing", s, info.bad.module, info.bad.name)
		}
	}
	// ...and a Python 2 name that maps to a left-out module is caught.
	info, err := inspectPickle([]byte("cTkinter\nTk\n."))
	if err != nil || info.bad == nil || info.bad.module != "tkinter" {
		t.Fatalf("Tkinter reference: info %+v, err %v", info, err)
	}
}

// Every opcode of Python 3.11's pickletools is known under its name, and no
// other byte is.
func TestOpcodeTableMatchesPickletools(t *testing.T) {
	var ops map[string]string // byte (as decimal string) -> name
	pyfixture.Run(t, `
import json, pickletools, sys
json.dump({str(ord(o.code)): o.name for o in pickletools.opcodes}, sys.stdout)
`, nil, &ops)
	if len(ops) != 68 {
		t.Fatalf("pickletools has %d opcodes, expected 68 (Python 3.11)", len(ops))
	}
	for b := range 256 {
		name := ops[fmt.Sprint(b)]
		if opNames[b] != name {
			t.Errorf("opcode 0x%02x: we say %q, pickletools says %q", b, opNames[b], name)
		}
	}
}

func TestModuleSet(t *testing.T) {
	for _, c := range []struct {
		module string
		want   bool
	}{
		{"math", true}, {"os.path", true}, {"collections.abc", true}, {"dill._dill", true},
		{"__main__", true}, {"__builtin__", true}, {"builtins", true}, {"copyreg", true}, {"_codecs", true},
		{"json", true}, {"xml.etree.ElementTree", true},
		{"numpy", false}, {"tests.mod", false}, {"tests", false}, {"", false},
		{"ctypes", false}, {"ctypes.util", false}, {"sqlite3", true}, {"_sqlite3", true}, {"bz2", true}, {"lzma", true}, {"tkinter", false},
		{"_ssl", false}, {"test", false}, {"test.support", false},
	} {
		if got := sandboxHasModule(c.module); got != c.want {
			t.Errorf("sandboxHasModule(%q) = %v, want %v", c.module, got, c.want)
		}
	}
}
