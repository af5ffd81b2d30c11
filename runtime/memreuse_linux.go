//go:build linux

package runtime

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
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
	entries  []byte   // pagemap entries of the memory last scanned

	mu   sync.Mutex
	free *snapMemory

	// The written pages of a memory can only become more (pages it wrote
	// stay private copies) through a page fault in this process, and
	// resetting writes only pages already written: so when the process has
	// taken no fault since the last scan, entries still says which pages
	// are written and /proc/self/pagemap is not read again (a scan of the
	// 20 MB snapshot part costs 30-60 µs here). scanned is the memory
	// entries belong to (nil: none), scanFaults the process's fault count
	// when entries was last right.
	scanned    *snapMemory
	scanFaults int64
	// Stats, for tests and benchmarks.
	scans, skips, resets, copied int
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
	r.scanned = nil
	unix.Munmap(r.pristine)
	r.pagemap.Close()
}

// take returns a memory of max bytes reset to img (nil: the snapshot), or
// nil.
func (r *memReuse) take(max uint64, img *funcImage) *snapMemory {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	m := r.free
	if m == nil || m.max != max {
		r.mu.Unlock()
		return nil
	}
	r.free = nil
	r.mu.Unlock()
	m.buf = unsafe.Slice((*byte)(m.base), m.max)
	if !r.resetTo(m, img) {
		m.buf = nil
		m.unmap()
		return nil
	}
	return m
}

// put keeps m for the next instance, which resets it (take); false if it
// could not (the caller unmaps it).
func (r *memReuse) put(m *snapMemory) bool {
	if r == nil {
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

// faults is this process's page fault count so far.
func faults() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Minflt + ru.Majflt
}

// scan fills r.entries with the pagemap entries of m's first pages pages,
// unless they are still right (see memReuse).
func (r *memReuse) scan(m *snapMemory, pages int) bool {
	f := faults()
	if r.scanned == m && f >= 0 && f == r.scanFaults && len(r.entries) >= 8*pages {
		r.skips++
		return true
	}
	if cap(r.entries) < 8*pages {
		r.entries = make([]byte, 8*pages)
	}
	r.entries = r.entries[:8*pages]
	r.scanned = nil
	if n, err := r.pagemap.ReadAt(r.entries, int64(uintptr(m.base)/pageSize*8)); err != nil || n != len(r.entries) {
		return false
	}
	r.scans++
	r.scanned, r.scanFaults = m, f
	return true
}

// resetTo makes m's memory what a new mapping of the snapshot with img's
// pages written over it would be (img nil: the snapshot alone): the
// snapshot's bytes, then zeros up to where the guest grew it, the image's
// pages over them, and nothing mapped past the larger of the snapshot and
// the image. Only pages the last instances wrote, and the image's, are
// copied.
func (r *memReuse) resetTo(m *snapMemory, img *funcImage) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	snapBytes := uint64(len(r.pristine))
	size := snapBytes
	if img != nil {
		size = max(size, img.memSize)
	}
	high := alignUp(max(m.high, size), pageSize)
	pages := int(high / pageSize)
	snapPages := int(snapBytes / pageSize)
	if !r.scan(m, pages) {
		return false
	}
	e := r.entries
	mem := unsafe.Slice((*byte)(m.base), m.max)
	var imgPages []uint32
	if img != nil {
		imgPages = img.pages
	}
	copied, k := 0, 0
	newPages := false // written a page not written before: a fault
	for i := 0; i < pages; {
		if k < len(imgPages) && int(imgPages[k]) == i {
			copy(mem[i*pageSize:(i+1)*pageSize], img.page(k))
			newPages = newPages || !written(e, i)
			setWritten(e, i)
			copied += pageSize
			k++
			i++
			continue
		}
		if !written(e, i) {
			i++
			continue
		}
		if i >= snapPages {
			// Past the snapshot the pristine page is zero; past size the
			// page is dropped below.
			if uint64(i)*pageSize < size {
				p := mem[i*pageSize : (i+1)*pageSize]
				if !isZero(p) {
					clear(p)
				}
			}
			i++
			continue
		}
		j := i + 1
		next := pages
		if k < len(imgPages) {
			next = int(imgPages[k])
		}
		for j < snapPages && j < next && written(e, j) {
			j++
		}
		copied += (j - i) * pageSize
		if copied > reuseMaxCopy {
			return r.dropAll(m, img, high)
		}
		copy(mem[i*pageSize:j*pageSize], r.pristine[i*pageSize:j*pageSize])
		i = j
	}
	if high > size {
		if unix.Madvise(mem[size:high], unix.MADV_DONTNEED) != nil {
			r.scanned = nil
			return false
		}
		for i := int(size / pageSize); i < pages; i++ {
			setNotPresent(e, i)
		}
	}
	m.high = size
	if r.scanned == m && newPages {
		// The copies took faults of their own (entries says where); any
		// other fault since the scan happened elsewhere (one goroutine
		// writes guest memory) and changed nothing here.
		r.scanFaults = faults()
	}
	r.resets++
	r.copied += copied / pageSize
	return true
}

// dropAll resets m the slow way, for an instance that wrote more than
// reuseMaxCopy: its private pages go back to the file's (madvise), and
// img's pages are written again.
func (r *memReuse) dropAll(m *snapMemory, img *funcImage, high uint64) bool {
	r.scanned = nil
	mem := unsafe.Slice((*byte)(m.base), m.max)
	if unix.Madvise(mem[:high], unix.MADV_DONTNEED) != nil {
		return false
	}
	if img != nil {
		for k, p := range img.pages {
			copy(mem[int(p)*pageSize:(int(p)+1)*pageSize], img.page(k))
		}
	}
	m.high = uint64(len(r.pristine))
	if img != nil {
		m.high = max(m.high, img.memSize)
	}
	return true
}

// capture makes an image of m's first size bytes: every page that differs
// from the snapshot (zero past it). Only written pages can.
func (r *memReuse) capture(m *snapMemory, size uint64) *funcImage {
	r.mu.Lock()
	defer r.mu.Unlock()
	pages := int(alignUp(max(size, m.high), pageSize) / pageSize)
	if !r.scan(m, pages) {
		return nil
	}
	snapPages := len(r.pristine) / pageSize
	mem := unsafe.Slice((*byte)(m.base), m.max)
	img := &funcImage{memSize: size}
	for i := 0; i < int(size/pageSize); i++ {
		if !written(r.entries, i) {
			continue
		}
		p := mem[i*pageSize : (i+1)*pageSize]
		if i < snapPages && bytes.Equal(p, r.pristine[i*pageSize:(i+1)*pageSize]) || i >= snapPages && isZero(p) {
			continue
		}
		img.pages = append(img.pages, uint32(i))
		img.data = append(img.data, p...)
	}
	img.data = slices.Clip(img.data)
	return img
}

// written says page i's pagemap entry is a private copy (present and not
// the file's page) or swapped out: the task wrote it.
func written(e []byte, i int) bool {
	v := binary.LittleEndian.Uint64(e[8*i:])
	return v&pmSwapped != 0 || (v&pmPresent != 0 && v&pmFilePage == 0)
}

const pmPresent, pmSwapped, pmFilePage = 1 << 63, 1 << 62, 1 << 61

func setWritten(e []byte, i int) {
	binary.LittleEndian.PutUint64(e[8*i:], pmPresent)
}

func setNotPresent(e []byte, i int) {
	binary.LittleEndian.PutUint64(e[8*i:], 0)
}

func isZero(p []byte) bool {
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p) != 0 {
			return false
		}
		p = p[8:]
	}
	return true
}

func alignUp(n, to uint64) uint64 { return (n + to - 1) / to * to }
