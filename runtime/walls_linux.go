//go:build linux

package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// lockDown puts up the second wall, each step checked, in this order:
//
//  1. no_new_privs (nothing it could ever exec gains privileges);
//  2. Landlock (while still able to open the image): no filesystem access
//     but reading the image's standard library, no TCP bind or connect,
//     no signals or abstract sockets out of the domain;
//  3. as root: the capability bounding set emptied, every group dropped,
//     then gid and uid nogroup/nobody; then, root or not, every thread's
//     ambient, effective, permitted and inheritable capabilities cleared;
//  4. rlimits: no core files, no file growth, a few descriptors beyond
//     those it holds, an address space a margin above what it has mapped
//     plus the memory of two interpreters;
//  5. seccomp-bpf: an allow-list of the system calls the Go runtime and
//     wazero make to run tasks; anything else kills the process (the pool
//     replaces it).
//
// It returns what is up; with WallsStrict, an error when any is missing.
func lockDown(cfg lockConfig) (*wallReport, error) {
	r := &wallReport{}
	if cfg.mode == WallsOff {
		r.missing = append(r.missing, "all (--sandbox-walls off)")
		return r, nil
	}
	// Every step below acts on all the process's threads; keep this
	// goroutine on one thread while they run.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// Read while /proc/self is still ours (a uid switch makes it root's).
	limits, limitsErr := rlimits(cfg)
	lastCap, capErr := lastCapability()
	r.add("no_new_privs", unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
	r.add(landlockWall(cfg.libDir))
	if capErr == nil {
		capErr = dropBoundingSet(lastCap) // needs CAP_SETPCAP: before giving up root
	}
	r.add(dropUser())
	if capErr == nil {
		capErr = dropCapabilities()
	}
	r.add("capabilities", capErr)
	if limitsErr == nil {
		limitsErr = setLimits(limits)
	}
	r.add("rlimits", limitsErr)
	r.add("seccomp", loadSeccomp(cfg.trap))
	if cfg.mode == WallsStrict && len(r.missing) > 0 {
		return r, fmt.Errorf("sandbox walls are strict and some are missing: %s", r)
	}
	return r, nil
}

func landlockWall(libDir string) (string, error) {
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 || abi < 1 {
		return "landlock", fmt.Errorf("the kernel has no Landlock: %v", errno)
	}
	name := "landlock (ABI " + strconv.Itoa(int(abi)) + ")"
	return name, landlock.V7.BestEffort().Restrict(landlock.RODirs(libDir))
}

func lastCapability() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(string(b), &n)
	return n, err
}

// dropBoundingSet removes every capability from every thread's bounding
// set (what an exec could ever regain), when the process may.
func dropBoundingSet(last int) error {
	var caps capData
	if err := capget(&caps); err != nil {
		return err
	}
	if caps.eff[0]&(1<<unix.CAP_SETPCAP) == 0 {
		return nil // an unprivileged process: its bounding set cannot matter to it
	}
	for c := 0; c <= last; c++ {
		if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0, 0); errno != 0 {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, errno)
		}
	}
	return nil
}

// capData is the kernel's _LINUX_CAPABILITY_VERSION_3 header and data.
type capData struct {
	hdr unix.CapUserHeader
	eff [2]uint32
	d   [2]unix.CapUserData
}

func capget(c *capData) error {
	c.hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capget(&c.hdr, &c.d[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	c.eff = [2]uint32{c.d[0].Effective, c.d[1].Effective}
	return nil
}

// dropCapabilities clears the ambient, effective, permitted and
// inheritable sets of every thread, and checks this one's.
func dropCapabilities() error {
	if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); errno != 0 {
		return fmt.Errorf("clear ambient capabilities: %w", errno)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, errno := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return fmt.Errorf("capset: %w", errno)
	}
	var c capData
	if err := capget(&c); err != nil {
		return err
	}
	if c.d[0] != (unix.CapUserData{}) || c.d[1] != (unix.CapUserData{}) {
		return fmt.Errorf("capabilities left: %+v", c.d)
	}
	return nil
}

// dropUser switches a process running as root to nobody/nogroup.
func dropUser() (string, error) {
	if os.Geteuid() != 0 {
		return "user " + strconv.Itoa(os.Geteuid()) + " (not root: nothing to drop)", nil
	}
	uid, gid := 65534, 65534
	if u, err := user.Lookup("nobody"); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	if g, err := user.LookupGroup("nogroup"); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	name := fmt.Sprintf("user %d:%d", uid, gid)
	if err := unix.Setgroups(nil); err != nil {
		return name, fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setgid(gid); err != nil {
		return name, fmt.Errorf("setgid: %w", err)
	}
	if err := unix.Setuid(uid); err != nil {
		return name, fmt.Errorf("setuid: %w", err)
	}
	if unix.Setuid(0) == nil {
		return name, errors.New("could switch back to root")
	}
	return name, nil
}

type rlimit struct {
	res int
	max uint64
}

// rlimits are the limits to set: no core files, no file growth (unless a
// profile is to be written), a few descriptors beyond those held, and an
// address space a margin above what is mapped plus two interpreters.
func rlimits(cfg lockConfig) ([]rlimit, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("count descriptors: %w", err)
	}
	var as unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &as); err != nil {
		return nil, err
	}
	mapped, err := mappedBytes()
	if err != nil {
		return nil, err
	}
	limits := []rlimit{
		{unix.RLIMIT_CORE, 0},
		{unix.RLIMIT_NOFILE, uint64(len(fds) + 64)},
		{unix.RLIMIT_AS, min(as.Max, mapped+2*cfg.memoryBytes+(512<<20))},
	}
	if !cfg.keepFiles {
		limits = append(limits, rlimit{unix.RLIMIT_FSIZE, 0})
	}
	return limits, nil
}

func setLimits(limits []rlimit) error {
	for _, l := range limits {
		if err := unix.Setrlimit(l.res, &unix.Rlimit{Cur: l.max, Max: l.max}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", l.res, err)
		}
	}
	return nil
}

// mappedBytes is the process's address space now (VmSize).
func mappedBytes() (uint64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	var pages uint64
	if _, err := fmt.Sscan(string(b), &pages); err != nil {
		return 0, err
	}
	return pages * uint64(os.Getpagesize()), nil
}

// allowedSyscalls are those a sandbox process makes once locked down,
// found by running the test suites with envSeccompTrap set: the Go
// runtime (threads, signals, timers, memory, the poller of the pipes),
// wazero (memory of instances: mmap of the snapshot file), reads of the
// standard library (openat, under Landlock) and the pipes to the pool;
// getrusage is the memory reset's page fault count (memreuse_linux.go).
var allowedSyscalls = []string{
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "lseek",
	"fstat", "newfstatat", "statx", "getdents64", "openat", "openat2", "fcntl", "readlinkat", "faccessat", "faccessat2",
	"mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
	"futex", "sched_yield", "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "gettid", "getpid", "getppid",
	"exit", "exit_group", "getrandom", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_ctl",
	"sched_getaffinity", "set_robust_list", "rseq", "restart_syscall", "uname",
	"setitimer", "timer_create", "timer_settime", "timer_delete", "getrlimit", "prlimit64",
	"getrusage",
}

func loadSeccomp(trap bool) error {
	pid := uint64(os.Getpid())
	deny := seccomp.ActionKillProcess
	if trap {
		deny = seccomp.ActionTrap
	}
	policy := seccomp.Policy{
		DefaultAction: deny,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionAllow, Names: allowedSyscalls},
			{Action: seccomp.ActionAllow, NamesWithCondtions: []seccomp.NameWithConditions{
				// New threads of this process, never a new process.
				{Name: "clone", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_THREAD}}},
				// Signals to its own threads (preemption) and itself.
				{Name: "tgkill", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.Equal, Value: pid}}},
				{Name: "kill", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.Equal, Value: pid}}},
			}},
			// clone3 cannot be filtered by its flags (they are in memory):
			// refused with ENOSYS, which makes callers fall back to clone.
			{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: []string{"clone3"}},
		},
	}
	return seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: true, Flag: seccomp.FilterFlagTSync, Policy: policy})
}
