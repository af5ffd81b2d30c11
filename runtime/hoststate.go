package runtime

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
)

// hostState is what of a wazero module instance, besides its linear memory
// and its one mutable global, a task could change and a fresh instance
// would not show: its function tables and its WASI descriptor table. It is
// recorded right after instantiation; an instance whose tables still match
// (see matches) can be reset in place, its memory and stack pointer put
// back, instead of being closed and instantiated again, which costs
// 0.4-0.7 ms here (most of it wazero filling the function table from the
// element segments). wazero exports neither table, so this reaches them by
// reflection, as dropFunctionBodies does; a wazero whose layout differs
// gets an error and instances are instantiated every time, as before
// (TestFunctionImage fails on such an upgrade).
type hostState struct {
	// tables are the module's function tables, live, and their
	// references at instantiation.
	tables []tableState
	// masks and items are the live descriptor table (wazero's
	// descriptor.Table: a bitmap of the numbers in use and the entries).
	masks *[]uint64
	items *[]unsafe.Pointer
	// savedMasks, savedItems and savedEntries are the descriptor table at
	// instantiation: stdin, stdout, stderr and the preopens, each entry's
	// bytes (name, file system, file, directory cache) as they were.
	savedMasks   []uint64
	savedItems   []unsafe.Pointer
	savedEntries [][]byte
	entrySize    uintptr
	// files are the entries' open files and savedFlags their append and
	// non-blocking flags at instantiation: the flags live in the file
	// objects, which the entries' bytes only point to, and a task may set
	// them (fd_fdstat_set_flags).
	files      []any
	savedFlags []uint8
	// memory is the live linear memory (wazero's MemoryInstance.Buffer)
	// and memoryResized tells the compiled code its new size (what wazero
	// calls after memory.grow: MemoryGrown), so that it can be made
	// smaller again.
	memory        *[]byte
	memoryResized func()
}

type tableState struct {
	refs  *[]uintptr
	saved []uintptr
}

// recordHostState reads mod's tables; an error says this wazero is laid
// out differently.
func recordHostState(mod api.Module) (*hostState, error) {
	v := reflect.ValueOf(mod)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, errors.New("runtime: wazero's module is not a struct pointer")
	}
	mi := v.Elem()
	hs := &hostState{}
	tables := mi.FieldByName("Tables")
	if tables.Kind() != reflect.Slice || tables.Type().Elem().Kind() != reflect.Pointer {
		return nil, errors.New("runtime: wazero's module has no Tables")
	}
	for i := range tables.Len() {
		t := tables.Index(i)
		if t.IsNil() {
			continue
		}
		refs := t.Elem().FieldByName("References")
		if refs.Kind() != reflect.Slice || refs.Type().Elem().Kind() != reflect.Uintptr {
			return nil, errors.New("runtime: wazero's table has no References")
		}
		p := (*[]uintptr)(unsafe.Pointer(refs.UnsafeAddr()))
		hs.tables = append(hs.tables, tableState{refs: p, saved: append([]uintptr(nil), *p...)})
	}
	mem := mi.FieldByName("MemoryInstance")
	if mem.Kind() != reflect.Pointer || mem.IsNil() || mem.Elem().Kind() != reflect.Struct {
		return nil, errors.New("runtime: wazero's module has no MemoryInstance")
	}
	buf, owner := mem.Elem().FieldByName("Buffer"), mem.Elem().FieldByName("ownerModuleEngine")
	if buf.Kind() != reflect.Slice || buf.Type().Elem().Kind() != reflect.Uint8 || owner.Kind() != reflect.Interface {
		return nil, errors.New("runtime: wazero's memory has no Buffer and ownerModuleEngine")
	}
	hs.memory = (*[]byte)(unsafe.Pointer(buf.UnsafeAddr()))
	grown, ok := reflect.NewAt(owner.Type(), unsafe.Pointer(owner.UnsafeAddr())).Elem().Interface().(interface{ MemoryGrown() })
	if !ok {
		return nil, errors.New("runtime: wazero's module engine has no MemoryGrown")
	}
	hs.memoryResized = grown.MemoryGrown
	sys := mi.FieldByName("Sys")
	if sys.Kind() != reflect.Pointer || sys.IsNil() || sys.Elem().Kind() != reflect.Struct {
		return nil, errors.New("runtime: wazero's module has no Sys context")
	}
	fsc := sys.Elem().FieldByName("fsc")
	if fsc.Kind() != reflect.Struct {
		return nil, errors.New("runtime: wazero's Sys context has no fsc")
	}
	files := fsc.FieldByName("openedFiles")
	if files.Kind() != reflect.Struct {
		return nil, errors.New("runtime: wazero's FSContext has no openedFiles")
	}
	masks, items := files.FieldByName("masks"), files.FieldByName("items")
	if masks.Kind() != reflect.Slice || masks.Type().Elem().Kind() != reflect.Uint64 ||
		items.Kind() != reflect.Slice || items.Type().Elem().Kind() != reflect.Pointer ||
		items.Type().Elem().Elem().Kind() != reflect.Struct {
		return nil, errors.New("runtime: wazero's descriptor table is not masks and items")
	}
	hs.masks = (*[]uint64)(unsafe.Pointer(masks.UnsafeAddr()))
	hs.items = (*[]unsafe.Pointer)(unsafe.Pointer(items.UnsafeAddr()))
	hs.entrySize = items.Type().Elem().Elem().Size()
	hs.savedMasks = append([]uint64(nil), *hs.masks...)
	hs.savedItems = append([]unsafe.Pointer(nil), *hs.items...)
	hs.savedEntries = make([][]byte, len(hs.savedItems))
	hs.files = make([]any, len(hs.savedItems))
	hs.savedFlags = make([]uint8, len(hs.savedItems))
	entry := items.Type().Elem().Elem()
	if f, ok := entry.FieldByName("File"); !ok || f.Type.Kind() != reflect.Interface {
		return nil, errors.New("runtime: wazero's descriptor entries have no File")
	}
	for i, p := range hs.savedItems {
		if p != nil {
			hs.savedEntries[i] = append([]byte(nil), unsafe.Slice((*byte)(p), hs.entrySize)...)
			f := reflect.NewAt(entry, p).Elem().FieldByName("File")
			hs.files[i] = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
			hs.savedFlags[i] = fileFlags(hs.files[i])
		}
	}
	return hs, nil
}

// fileFlags are a file's append (1) and non-blocking (2) flags, as far
// as it has them.
func fileFlags(f any) uint8 {
	var flags uint8
	if a, ok := f.(interface{ IsAppend() bool }); ok && a.IsAppend() {
		flags |= 1
	}
	if n, ok := f.(interface{ IsNonblock() bool }); ok && n.IsNonblock() {
		flags |= 2
	}
	return flags
}

// filesPristine says the descriptor table is as at instantiation: the
// same numbers open, each the same entry, unchanged (no file left open, no
// preopen closed, renumbered, renamed or listed), with the same flags.
func (hs *hostState) filesPristine() bool {
	masks, items := *hs.masks, *hs.items
	for i := range max(len(masks), len(hs.savedMasks)) {
		var a, b uint64
		if i < len(masks) {
			a = masks[i]
		}
		if i < len(hs.savedMasks) {
			b = hs.savedMasks[i]
		}
		if a != b {
			return false
		}
	}
	for i, p := range hs.savedItems {
		if p == nil {
			continue
		}
		if i >= len(items) || items[i] != p || !bytes.Equal(unsafe.Slice((*byte)(p), hs.entrySize), hs.savedEntries[i]) {
			return false
		}
		if fileFlags(hs.files[i]) != hs.savedFlags[i] {
			return false // a task set append or non-blocking on it
		}
	}
	return true
}

// restoreTables puts the function tables back as at instantiation; false
// if one changed size (then the instance cannot be reset in place).
func (hs *hostState) restoreTables() bool {
	for _, t := range hs.tables {
		if len(*t.refs) != len(t.saved) {
			return false
		}
	}
	for _, t := range hs.tables {
		copy(*t.refs, t.saved)
	}
	return true
}

// tablesPristine says the function tables are as at instantiation.
func (hs *hostState) tablesPristine() bool {
	for _, t := range hs.tables {
		if !slices.Equal(*t.refs, t.saved) {
			return false
		}
	}
	return true
}

// shrinkMemory makes the guest's memory size bytes again (no more than it
// has); what was past it must be dropped already (memReuse.resetTo).
func (hs *hostState) shrinkMemory(size uint64) bool {
	if uint64(len(*hs.memory)) < size {
		return false
	}
	if uint64(len(*hs.memory)) > size {
		*hs.memory = (*hs.memory)[:size]
		hs.memoryResized()
	}
	return true
}
