package runtime

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// A module exporting f() -> i32 returning 42 (local i32, so that it has
// local types too).
var fortyTwo = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
	0x03, 0x02, 0x01, 0x00, // function 0 has type 0
	0x07, 0x05, 0x01, 0x01, 'f', 0x00, 0x00, // export "f" = func 0
	0x0a, 0x08, 0x01, 0x06, 0x01, 0x01, 0x7f, 0x41, 0x2a, 0x0b, // code: 1 local i32; i32.const 42; end
}

// TestDropFunctionBodies: the bodies are dropped (this fails, rather than
// sandboxes silently keeping 5 MB more each, on a wazero whose layout
// changed) and the module still instantiates and runs.
func TestDropFunctionBodies(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []wazero.RuntimeConfig{wazero.NewRuntimeConfigCompiler(), wazero.NewRuntimeConfigInterpreter()} {
		rt := wazero.NewRuntimeWithConfig(ctx, cfg)
		cm, err := rt.CompileModule(ctx, fortyTwo)
		if err != nil {
			t.Fatal(err)
		}
		freed, err := dropFunctionBodies(cm)
		if err != nil {
			t.Fatal(err)
		}
		if freed < 3 { // body (i32.const 42; end) and one local type
			t.Errorf("freed %d bytes, want at least 3", freed)
		}
		if again, err := dropFunctionBodies(cm); err != nil || again != 0 {
			t.Errorf("a second drop freed %d bytes (%v), want 0", again, err)
		}
		for range 2 {
			mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatal(err)
			}
			res, err := mod.ExportedFunction("f").Call(ctx)
			if err != nil || len(res) != 1 || res[0] != 42 {
				t.Fatalf("f() = %v, %v; want [42]", res, err)
			}
			mod.Close(ctx)
		}
		rt.Close(ctx)
	}
}
