//go:build !linux

package runtime

// Memory reuse needs /proc/self/pagemap (memreuse_linux.go); elsewhere a
// discarded instance's memory is unmapped.
type memReuse struct{}

func newMemReuse(*snapshot) *memReuse       { return nil }
func (r *memReuse) close()                  {}
func (r *memReuse) take(uint64) *snapMemory { return nil }
func (r *memReuse) put(m *snapMemory) bool  { return false }
