package runtime

import (
	"errors"
	"reflect"
	"unsafe"

	"github.com/tetratelabs/wazero"
)

// dropFunctionBodies frees what wazero keeps of a compiled module's
// function bodies: the decoded module (wasm.Module, which the compiled
// module holds for instantiation) keeps every function's body and local
// types (8 bytes each), 5 MB of the guest's 8,700 functions, live in the Go heap of every
// sandbox process for good. wazero reads them only to validate and compile
// the module (wazevo's compileLocalWasmFunction, wasm's validateFunction),
// both done by the time CompileModule returns; instantiation and calls use
// the machine code, the types and the offsets (kept). wazero exports no
// way to drop them, so this reaches the fields by reflection; a wazero
// whose layout differs gets an error and keeps them (TestDropFunctionBodies
// fails on such an upgrade). It returns the bytes freed.
func dropFunctionBodies(cm wazero.CompiledModule) (int, error) {
	v := reflect.ValueOf(cm)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, errors.New("runtime: wazero's compiled module is not a struct pointer")
	}
	mod := v.Elem().FieldByName("module")
	if mod.Kind() != reflect.Pointer || mod.IsNil() || mod.Elem().Kind() != reflect.Struct {
		return 0, errors.New("runtime: wazero's compiled module has no module")
	}
	code := mod.Elem().FieldByName("CodeSection")
	if code.Kind() != reflect.Slice || code.Type().Elem().Kind() != reflect.Struct {
		return 0, errors.New("runtime: wazero's module has no code section")
	}
	ct := code.Type().Elem()
	body, ok1 := ct.FieldByName("Body")
	locals, ok2 := ct.FieldByName("LocalTypes")
	if !ok1 || !ok2 || body.Type.Kind() != reflect.Slice || locals.Type.Kind() != reflect.Slice {
		return 0, errors.New("runtime: wazero's code entries have no Body and LocalTypes")
	}
	freed := 0
	for i := range code.Len() {
		c := code.Index(i)
		for _, f := range []reflect.StructField{body, locals} {
			// Fields of a struct reached through unexported fields are
			// read-only to reflect; write them through their address.
			s := reflect.NewAt(f.Type, unsafe.Pointer(c.Field(f.Index[0]).UnsafeAddr())).Elem()
			freed += s.Cap() * int(f.Type.Elem().Size())
			s.SetZero()
		}
	}
	return freed, nil
}
