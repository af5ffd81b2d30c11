package bundle

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// Tree is a bundle's files as a read-only fs.FS: what a sandbox mounts on
// sys.path. It is immutable, so one Tree serves every instance that runs a
// function of the bundle (mounting is a pointer, not a copy).
type Tree struct {
	Hash  string
	Size  int64 // bytes of the zip it was read from (a cache's weight)
	Files int
	nodes map[string]*node // by path; "." is the root
}

// Open reads a bundle's zip (as Build wrote it, or any zip Build accepts)
// into a Tree and checks that its content hash is hash.
func Open(data []byte, hash string) (*Tree, error) {
	// A canonical zip passed Build's caps; these bound a forged one.
	files, _, err := readZip(data, MaxOpen)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	if err := checkTree(files); err != nil {
		return nil, err
	}
	if got := contentHash(files); got != hash {
		return nil, fmt.Errorf("bundle: content hash %s, expected %s", got, hash)
	}
	t := newTree()
	t.Hash, t.Size, t.Files = hash, int64(len(data)), len(files)
	for _, f := range files {
		t.add(f)
	}
	for _, n := range t.nodes {
		slices.SortFunc(n.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	}
	return t, nil
}

// Empty is a tree with no files (a function without a bundle).
func Empty() *Tree { return newTree() }

func newTree() *Tree {
	return &Tree{nodes: map[string]*node{".": {name: ".", dir: true}}}
}

func (t *Tree) add(f file) {
	n := &node{name: path.Base(f.name), data: f.data}
	t.nodes[f.name] = n
	child, dir := n, path.Dir(f.name)
	for {
		parent, ok := t.nodes[dir]
		if !ok {
			parent = &node{name: path.Base(dir), dir: true}
			t.nodes[dir] = parent
		}
		parent.children = append(parent.children, child)
		if ok {
			return // the root always exists, so this ends
		}
		child, dir = parent, path.Dir(dir)
	}
}

// modTime is every file's modification time: bundles have none of their
// own (the canonical form drops them), and a fixed one keeps stat stable.
var modTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Open implements fs.FS.
func (t *Tree) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	n, ok := t.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir {
		return &dirHandle{n: n}, nil
	}
	return &fileHandle{n: n, Reader: bytes.NewReader(n.data)}, nil
}

// node is a file or directory; it is its own fs.FileInfo and fs.DirEntry.
type node struct {
	name     string
	data     []byte
	dir      bool
	children []*node
}

func (n *node) Name() string { return n.name }
func (n *node) Size() int64  { return int64(len(n.data)) }
func (n *node) Mode() fs.FileMode {
	if n.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (n *node) ModTime() time.Time         { return modTime }
func (n *node) IsDir() bool                { return n.dir }
func (n *node) Sys() any                   { return nil }
func (n *node) Type() fs.FileMode          { return n.Mode().Type() }
func (n *node) Info() (fs.FileInfo, error) { return n, nil }

type fileHandle struct {
	n *node
	*bytes.Reader
}

func (f *fileHandle) Stat() (fs.FileInfo, error) { return f.n, nil }
func (f *fileHandle) Close() error               { return nil }

type dirHandle struct {
	n   *node
	pos int
}

func (d *dirHandle) Stat() (fs.FileInfo, error) { return d.n, nil }
func (d *dirHandle) Close() error               { return nil }
func (d *dirHandle) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.n.name, Err: fs.ErrInvalid}
}

// ReadDir implements fs.ReadDirFile.
func (d *dirHandle) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := d.n.children[d.pos:]
	if count > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(count, len(rest))]
	}
	out := make([]fs.DirEntry, len(rest))
	for i, c := range rest {
		out[i] = c
	}
	d.pos += len(rest)
	return out, nil
}
