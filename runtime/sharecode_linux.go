//go:build linux

package runtime

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// wazero loads the guest's compiled code from its compilation cache into
// an anonymous executable mapping of each process: 22 MiB of private
// memory per sandbox process, a third of an idle one's. That code is
// position independent (two processes hold the same bytes at different
// addresses), so shareCode writes it once to a file in the cache
// directory and maps the file over each process's copy, at the same
// address with the same protection (read, execute): the pages are then the
// page cache's, shared by every sandbox process on the host. A file whose
// bytes differ from the process's (another wazero, another image) is
// never mapped; the process then keeps its private copy. The file is
// trusted as the wazero compilation cache beside it is (whoever can write
// the cache directory can change the code sandboxes run); the guest
// reaches neither.
const shareCodeMin = 1 << 20 // smaller executable mappings (trampolines) stay

// shareCode does that for every anonymous executable mapping of at least
// shareCodeMin bytes and returns the bytes it now shares.
func shareCode(cacheDir string) (int, error) {
	regions, err := anonExecRegions()
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(cacheDir, "code")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("runtime: code dir: %w", err)
	}
	shared := 0
	for _, r := range regions {
		if r.size < shareCodeMin {
			continue
		}
		if err := shareRegion(dir, r); err != nil {
			return shared, err
		}
		shared += r.size
	}
	return shared, nil
}

type region struct {
	start uintptr
	size  int
}

// anonExecRegions lists the private anonymous r-x mappings of this process.
func anonExecRegions() ([]region, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []region
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// address perms offset dev inode [path]; anonymous: inode 0, no path
		if len(fields) != 5 || fields[1] != "r-xp" || fields[4] != "0" {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		out = append(out, region{uintptr(a), int(b - a)})
	}
	return out, sc.Err()
}

func shareRegion(dir string, r region) error {
	mem, err := readOwnMemory(r)
	if err != nil {
		return err
	}
	// Named by a digest of its ends and length; the whole is compared
	// before it is mapped.
	h := sha256.New()
	edge := min(r.size, 1<<20)
	h.Write(mem[:edge])
	h.Write(mem[r.size-edge:])
	fmt.Fprintf(h, "%d", r.size)
	path := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:32]+".code")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := writeAtomic(dir, path, mem); err != nil {
			return err
		}
		f, err = os.Open(path)
	}
	if err != nil {
		return fmt.Errorf("runtime: shared code: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != int64(r.size) {
		return fmt.Errorf("runtime: shared code %s: wrong size", path)
	}
	fm, err := unix.Mmap(int(f.Fd()), 0, r.size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("runtime: shared code: map %s: %w", path, err)
	}
	same := bytes.Equal(fm, mem)
	unix.Munmap(fm)
	if !same {
		return fmt.Errorf("runtime: shared code %s differs from this process's", path)
	}
	// A raw mmap: the address comes from /proc/self/maps, not from Go.
	if _, _, errno := unix.Syscall6(unix.SYS_MMAP, r.start, uintptr(r.size), unix.PROT_READ|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_FIXED, f.Fd(), 0); errno != 0 {
		return fmt.Errorf("runtime: shared code: map over the private copy: %w", errno)
	}
	return nil
}

// readOwnMemory copies region r of this process's memory.
func readOwnMemory(r region) ([]byte, error) {
	f, err := os.Open("/proc/self/mem")
	if err != nil {
		return nil, fmt.Errorf("runtime: shared code: %w", err)
	}
	defer f.Close()
	buf := make([]byte, r.size)
	if _, err := f.ReadAt(buf, int64(r.start)); err != nil {
		return nil, fmt.Errorf("runtime: shared code: read own code: %w", err)
	}
	return buf, nil
}

func writeAtomic(dir, path string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".code-*")
	if err != nil {
		return fmt.Errorf("runtime: shared code: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("runtime: shared code: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Linked, not renamed, into place: of sandboxes that start together
	// with no file yet, the first one's stays and the others map it, so
	// that all share one copy (a rename would put a new file under the
	// ones that mapped the old, and each would keep its own).
	err = os.Link(tmp.Name(), path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	return os.Rename(tmp.Name(), path) // a file system without hard links
}
