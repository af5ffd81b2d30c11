package runtime

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// A function image is an interpreter restored from the snapshot that has
// then loaded one function (unpickled it, run its module's top level), as
// the first fresh task of that function left it, before its arguments were
// read: the pages of linear memory that differ from the snapshot, the
// memory's size and the stack pointer. Later fresh tasks of the same
// function start from it (reset in place, or a new instance whose memory
// is reset to it) instead of from the snapshot plus a load: byte for byte
// the state that restoring and loading gave the first (TestFunctionImage),
// except that randomness is drawn again for every task: the host writes a
// new state into the image's copy of random's generator (instance.reseed:
// 624 words from the host's random source, as random.seed() reads them,
// made a valid state the way CPython's init_by_array makes one; about
// 7 µs against 17-19 µs for random.seed() in the guest, which pyshim does
// instead, RESEED, when it could not name the generator); tempfile's name
// generator is not made yet in a kept image (making it seeds a generator)
// and os.urandom reads the host at each call. What the function's loading
// does (module-level code of a source function or of its bundle's
// modules, the prints there) therefore happens once per image, not once
// per task.
//
// pyshim says whether a load may be kept: not when it drew from random or
// seeded a generator (random.seed, random.Random(): a function that seeds
// at load expects every task to start from that seed, one that draws
// expects new numbers, and a fresh interpreter reseeds before its load).
// The host keeps it only when the load left no file open, /tmp empty, and
// the descriptor and function tables as they were (hostState).
type funcImage struct {
	key     string
	pages   []uint32 // sorted page numbers (4 KiB) that differ from the snapshot
	data    []byte   // their contents, len(pages) pages
	memSize uint64   // the linear memory's size in bytes
	sp      uint32   // __stack_pointer
	// rng is the address of random's generator (CPython's RandomObject:
	// after the object header, int index, then uint32 state[624]) in
	// linear memory, or 0: see instance.reseed.
	rng uint32
}

func (img *funcImage) page(k int) []byte { return img.data[k*pageSize : (k+1)*pageSize] }

// bytes is what the image holds in memory.
func (img *funcImage) bytes() int { return len(img.data) + 4*len(img.pages) }

// imageKey names what a fresh task loads: the registered function, its
// pickle, its bundle, its environment and its memory cap; "" when the task
// has no function id (then nothing is kept).
func imageKey(req *faastype.Task) string {
	if req.Function == "" {
		return ""
	}
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(req.Function), req.Fn, []byte(req.Bundle)} {
		binary.LittleEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	for _, kv := range req.Env {
		binary.LittleEndian.PutUint64(n[:], uint64(len(kv)))
		h.Write(n[:])
		h.Write([]byte(kv))
	}
	return hex.EncodeToString(h.Sum(nil)) + "/" + strconv.FormatUint(req.MemoryBytes, 10)
}

// Images kept per sandbox process: a few functions' worth, least recently
// used first out. A no-op function's image is 0.4-0.6 MiB.
const (
	maxImages     = 4
	maxImageBytes = 32 << 20
)

// imageCache holds the images of one sandbox process, and the keys of
// functions whose load may not be kept (value nil), so that they are not
// tried again.
type imageCache struct {
	ll    *list.List // of *imageEntry, most recently used first
	byKey map[string]*list.Element
	bytes int
}

type imageEntry struct {
	key string
	img *funcImage // nil: this function's load is not kept
}

func newImageCache() *imageCache {
	return &imageCache{ll: list.New(), byKey: map[string]*list.Element{}}
}

// get returns key's image; known says key was seen (img nil: not kept).
func (c *imageCache) get(key string) (img *funcImage, known bool) {
	el, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	return el.Value.(*imageEntry).img, true
}

// put records key's image (nil: not kept), evicting the least recently
// used beyond maxImages entries or maxImageBytes.
func (c *imageCache) put(key string, img *funcImage) {
	if el, ok := c.byKey[key]; ok {
		c.remove(el)
	}
	if img != nil && img.bytes() > maxImageBytes {
		img = nil
	}
	c.byKey[key] = c.ll.PushFront(&imageEntry{key: key, img: img})
	if img != nil {
		c.bytes += img.bytes()
	}
	// Negative entries are small; keep a few more of them.
	for c.ll.Len() > 4*maxImages || c.bytes > maxImageBytes || c.images() > maxImages {
		c.remove(c.oldestImage())
	}
}

func (c *imageCache) images() int {
	n := 0
	for el := c.ll.Front(); el != nil; el = el.Next() {
		if el.Value.(*imageEntry).img != nil {
			n++
		}
	}
	return n
}

// oldestImage is the least recently used entry holding an image when
// images are over their bounds, else the least recently used entry.
func (c *imageCache) oldestImage() *list.Element {
	if c.bytes > maxImageBytes || c.images() > maxImages {
		for el := c.ll.Back(); el != nil; el = el.Prev() {
			if el.Value.(*imageEntry).img != nil {
				return el
			}
		}
	}
	return c.ll.Back()
}

func (c *imageCache) remove(el *list.Element) {
	e := el.Value.(*imageEntry)
	if e.img != nil {
		c.bytes -= e.img.bytes()
	}
	delete(c.byKey, e.key)
	c.ll.Remove(el)
}

// Bytes is what the kept images hold.
func (c *imageCache) Bytes() int { return c.bytes }
