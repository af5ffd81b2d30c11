//go:build linux

package runtime

import (
	"encoding/binary"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A fresh instance's linear memory starts as a private copy-on-write
// mapping of the snapshot file. Every page the task writes takes a
// copy-on-write fault; on this VM (a paravirtualised guest) such a fault
// costs about 18 µs against 1 µs for the same copy made by the kernel in
// one call, and a no-op task writes about 290 pages: 5 of its 7 ms.
// So a discarded instance's memory is not unmapped but reset for the next
// instance: the pages it wrote in the snapshot's part (now private copies,
// which /proc/self/pagemap tells apart from the file's pages) are copied
// back from the file, untouched pages are the file's pages already, and
// the part beyond the snapshot is dropped (zero pages again). The next
// task then writes to pages it already owns, without faults, and the
// memory it sees is byte for byte the snapshot's, as after a new mapping.
// A task that wrote more than reuseMaxCopy of the snapshot's part has its
// private copies dropped instead (madvise), which is what a new mapping
// would cost anyway.
const reuseMaxCopy = 16 << 20

type memReuse struct {
	pagemap  *os.File // opened before the walls go up (Landlock refuses it after)
	pristine []byte   // the snapshot's memory, mapped read-only from its file
	entries  []byte   // pagemap read buffer

	mu   sync.Mutex
	free *snapMemory
}

// newMemReuse prepares reuse for s, or returns nil when this kernel does
// not allow it (then memories are unmapped as before).
func newMemReuse(s *snapshot) *memReuse {
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	p, err := unix.Mmap(int(s.file.Fd()), snapHeaderSize, int(s.memBytes), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		pm.Close()
		return nil
	}
	return &memReuse{pagemap: pm, pristine: p}
}

func (r *memReuse) close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.free != nil {
		r.free.unmap()
		r.free = nil
	}
	unix.Munmap(r.pristine)
	r.pagemap.Close()
}

// take returns a reset memory of max bytes, or nil.
func (r *memReuse) take(max uint64) *snapMemory {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.free
	if m == nil || m.max != max {
		return nil
	}
	r.free = nil
	m.buf = unsafe.Slice((*byte)(m.base), m.max)
	return m
}

// put resets m and keeps it for the next instance; false if it could not
// (the caller unmaps it).
func (r *memReuse) put(m *snapMemory) bool {
	if r == nil || !r.reset(m) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.free != nil {
		return false // one spare is enough: one instance runs at a time
	}
	r.free = m
	return true
}

const pageSize = 4096

func (r *memReuse) reset(m *snapMemory) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	snapBytes := uint64(len(r.pristine))
	pages := int(snapBytes / pageSize)
	if cap(r.entries) < 8*pages {
		r.entries = make([]byte, 8*pages)
	}
	e := r.entries[:8*pages]
	if n, err := r.pagemap.ReadAt(e, int64(uintptr(m.base)/pageSize*8)); err != nil || n != len(e) {
		return false
	}
	mem := unsafe.Slice((*byte)(m.base), m.max)
	copied := 0
	for i := 0; i < pages; {
		if !written(e, i) {
			i++
			continue
		}
		j := i + 1
		for j < pages && written(e, j) {
			j++
		}
		copied += (j - i) * pageSize
		if copied > reuseMaxCopy {
			if unix.Madvise(mem[:snapBytes], unix.MADV_DONTNEED) != nil {
				return false
			}
			break
		}
		copy(mem[i*pageSize:j*pageSize], r.pristine[i*pageSize:j*pageSize])
		i = j
	}
	if m.high > snapBytes {
		if unix.Madvise(mem[snapBytes:alignUp(m.high, pageSize)], unix.MADV_DONTNEED) != nil {
			return false
		}
	}
	m.high = 0
	return true
}

// written says page i's pagemap entry is a private copy (present and not
// the file's page) or swapped out: the task wrote it.
func written(e []byte, i int) bool {
	v := binary.LittleEndian.Uint64(e[8*i:])
	const present, swapped, filePage = 1 << 63, 1 << 62, 1 << 61
	return v&swapped != 0 || (v&present != 0 && v&filePage == 0)
}

func alignUp(n, to uint64) uint64 { return (n + to - 1) / to * to }
