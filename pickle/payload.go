package pickle

import (
	"errors"
	"fmt"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// Checks of the two kinds of payload a client sends, on the decoded pickle
// bytes. Each returns an error whose text is the 400 detail.

// CheckFunction accepts a pickle that can load to a callable: a
// function pickled by value (dill's _create_function), any reference to a
// module attribute the sandbox has (math.sqrt, a class), or an object of a
// type the inspector does not know (a class instance may define __call__).
// It rejects plain data and any reference to a module the sandbox lacks.
// bundled are the top-level modules of the bundle registered with the
// function (package bundle): references into them are accepted.
func CheckFunction(b []byte, bundled ...string) error {
	info, err := inspectPickle(b, bundled...)
	if err != nil {
		return pickleInvalid(err)
	}
	if bad := info.bad; bad != nil {
		if info.topBad && !isLeftOutStdlib(bad.module) {
			return fmt.Errorf("function is pickled by reference to module %q, which the sandbox does not have; "+
				"dill does this for functions defined at the top level of an importable module. "+
				"Send the module with the function (a bundle: \"modules\" or \"bundle\" at registration, "+
				"or the wasmfaas Python client's register(fn, modules=[...])), define the function in your "+
				"script's __main__, or register it as source text.", bad.module)
		}
		return missingModule("payload", bad)
	}
	if info.top.kind.isData() {
		return fmt.Errorf("payload is a pickled %s, not a function", info.top.describe())
	}
	if n := info.foreignCode; n != 0 {
		return foreignBytecode(n)
	}
	return nil
}

// SandboxModule reports whether the sandbox itself has top-level module
// name (the standard library it keeps, dill): a bundle may not shadow one.
func SandboxModule(name string) bool { return sandboxModules[name] }

// codeFields311 is how many fields dill writes for a CPython 3.11 code
// object; codeFieldsPython names the Pythons that write other counts.
const codeFields311 = 19

var codeFieldsPython = map[int32]string{15: "Python 3.7", 16: "Python 3.8 or 3.9", 17: "Python 3.10", 21: "a Python 3.11 alpha"}

func foreignBytecode(fields int32) error {
	who, ok := codeFieldsPython[fields]
	if !ok {
		who = fmt.Sprintf("another Python (its code objects have %d fields)", fields)
	}
	return fmt.Errorf("the function was pickled by %s, whose bytecode differs from the sandbox's Python %s: "+
		"dill would load it as %s code and it would run wrongly. Pickle it with Python 3.11, or register it "+
		`as source text ({"name", "source", "entrypoint"}), which runs from any Python`,
		who, faastype.PythonVersion, "3.11")
}

// CheckArgs accepts serialize((args, kwargs)): a 2-tuple of a tuple or
// list and a dict. bundled are as for CheckFunction.
func CheckArgs(b []byte, bundled ...string) error {
	info, err := inspectPickle(b, bundled...)
	if err != nil {
		return pickleInvalid(err)
	}
	if info.bad != nil {
		return missingModule("arguments", info.bad)
	}
	if n := info.foreignCode; n != 0 {
		return foreignBytecode(n)
	}
	const want = "payload must be serialize((args_tuple, kwargs_dict))"
	top := info.top
	items := top.tupleItems()
	if len(items) != 2 {
		return fmt.Errorf("%s, got a pickled %s", want, top.describe())
	}
	if k := items[0].kind; k != kindTuple && k != kindList {
		return fmt.Errorf("%s: its first item is a pickled %s, not a tuple or list", want, items[0].describe())
	}
	if items[1].kind != kindDict {
		return fmt.Errorf("%s: its second item is a pickled %s, not a dict", want, items[1].describe())
	}
	return nil
}

func pickleInvalid(err error) error {
	var pe *Error
	if errors.As(err, &pe) {
		return fmt.Errorf("payload is not a valid pickle: %s", pe.Error())
	}
	return fmt.Errorf("payload is not a valid pickle: %w", err)
}

func missingModule(what string, bad *moduleRef) error {
	subject := "payload refers to"
	if what == "arguments" {
		subject = "arguments refer to"
	}
	head := fmt.Sprintf("%s %s.%s from module %q", subject, bad.module, bad.name, bad.module)
	if bad.via != "" {
		head = fmt.Sprintf("%s module %q (%s)", subject, bad.module, bad.via)
	}
	if isLeftOutStdlib(bad.module) {
		return fmt.Errorf("%s, which is part of Python's standard library but left out of the sandbox "+
			"(it has no native libraries, terminals, databases or OS process and user services)", head)
	}
	return fmt.Errorf("%s, which the sandbox does not have: it has only the Python 3.11 standard library "+
		"and dill. dill pickles functions and classes defined at the top level of an importable module "+
		"by reference (module and name only): send that module with the function (a bundle: \"modules\" "+
		"or \"bundle\" at registration), define them in your script's __main__, or use the wasmfaas "+
		"Python client, which sends functions by value or bundles your modules", head)
}
