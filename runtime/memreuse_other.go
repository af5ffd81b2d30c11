//go:build !linux

package runtime

// Memory reuse needs /proc/self/pagemap (memreuse_linux.go); elsewhere a
// discarded instance's memory is unmapped, and there are no function
// images.
type memReuse struct{}

func newMemReuse(*snapshot) *memReuse                      { return nil }
func (r *memReuse) close()                                 {}
func (r *memReuse) take(uint64, *funcImage) *snapMemory    { return nil }
func (r *memReuse) put(m *snapMemory) bool                 { return false }
func (r *memReuse) resetTo(*snapMemory, *funcImage) bool   { return false }
func (r *memReuse) capture(*snapMemory, uint64) *funcImage { return nil }
