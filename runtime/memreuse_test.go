//go:build linux

package runtime

import (
	"bytes"
	"testing"
	"unsafe"
)

// A discarded instance's memory, reset for the next instance, is byte for
// byte what a new mapping of the snapshot would be: the snapshot's memory,
// then zeros up to wherever the guest grew it. Also when the instance
// wrote more than the reset copies (then its private pages are dropped).
func TestReusedMemoryIsPristine(t *testing.T) {
	ctx, e := newEngine(t)
	if e.reuse == nil {
		t.Fatal("no memory reuse on Linux: /proc/self/pagemap could not be opened")
	}
	want := append([]byte(nil), e.reuse.pristine...)
	snapBytes := uint64(len(want))
	cases := []struct {
		name  string
		dirty func(mem []byte)
	}{
		{"a few pages", func(mem []byte) {
			for _, off := range []uint64{0, 4095, 4096, snapBytes / 2, snapBytes - 1} {
				mem[off] ^= 0xff
			}
		}},
		{"every page", func(mem []byte) {
			for off := uint64(0); off < snapBytes; off += 512 {
				mem[off] ^= 0x5a
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := e.newInstance(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			base := memBase(t, in)
			// Grow 4 MiB past the snapshot and write there too.
			if _, ok := in.mem.Grow(64); !ok {
				t.Fatal("grow")
			}
			mem, _ := in.mem.Read(0, in.mem.Size())
			c.dirty(mem)
			for off := snapBytes; off < uint64(len(mem)); off += 4096 {
				mem[off] = 7
			}
			in.close(ctx)

			again, err := e.newInstance(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer again.close(ctx)
			if memBase(t, again) != base {
				t.Fatal("the memory was not reused")
			}
			if _, ok := again.mem.Grow(64); !ok {
				t.Fatal("grow")
			}
			got, _ := again.mem.Read(0, again.mem.Size())
			if !bytes.Equal(got[:snapBytes], want) {
				t.Fatal("the reused memory differs from the snapshot")
			}
			if bytes.IndexFunc(got[snapBytes:], func(r rune) bool { return r != 0 }) >= 0 {
				t.Fatal("the reused memory is not zero past the snapshot")
			}
		})
	}
}

func memBase(t *testing.T, in *instance) uintptr {
	t.Helper()
	b, ok := in.mem.Read(0, 1)
	if !ok {
		t.Fatal("read memory")
	}
	return uintptr(unsafe.Pointer(&b[0]))
}
