// Guest for TestMemFSWASIGuest (runtime/memfs_test.go): exercises a MemFS
// mounted at /tmp (64 KiB cap) and NewDevFS at /dev through wazero's real
// wasi_snapshot_preview1 layer and wasi-libc.
//
// Prints "ok\n" on success, otherwise "FAIL <step>: errno=<n> (<name>)\n"
// and exits 1. Uses raw POSIX calls (not stdio) to stay a few KB.
//
// Rebuild (from runtime/testdata):
//   clang-16 --target=wasm32-wasi -Os -Wl,--strip-all -o memfs_guest.wasm memfs_guest.c

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h> // rename only
#include <stdlib.h>

#define CAP (64 * 1024)

static void out(const char *s) { write(1, s, strlen(s)); }

static void outnum(long v) {
  char buf[24];
  int i = sizeof buf;
  int neg = v < 0;
  unsigned long u = neg ? -(unsigned long)v : (unsigned long)v;
  do {
    buf[--i] = '0' + u % 10;
    u /= 10;
  } while (u);
  if (neg) buf[--i] = '-';
  write(1, buf + i, sizeof buf - i);
}

static const char *ename(int e) {
  switch (e) {
  case 0: return "0";
  case EBADF: return "EBADF";
  case EEXIST: return "EEXIST";
  case EINVAL: return "EINVAL";
  case EIO: return "EIO";
  case EISDIR: return "EISDIR";
  case ENOENT: return "ENOENT";
  case ENOSPC: return "ENOSPC";
  case ENOTDIR: return "ENOTDIR";
  case ENOTEMPTY: return "ENOTEMPTY";
  case EPERM: return "EPERM";
  case EROFS: return "EROFS";
  case ENOTCAPABLE: return "ENOTCAPABLE";
  default: return "?";
  }
}

static void fail(const char *step) {
  int e = errno;
  out("FAIL ");
  out(step);
  out(": errno=");
  outnum(e);
  out(" (");
  out(ename(e));
  out(")\n");
  _Exit(1);
}

#define CHECK(cond, step) do { errno = 0; if (!(cond)) fail(step); } while (0)
// EXPECT_ERR runs call (which must fail with -1) and checks errno.
#define EXPECT_ERR(call, want, step) \
  do { errno = 0; if ((call) != -1 || errno != (want)) fail(step); } while (0)

static char buf[4096];

int main(void) {
  int fd;
  struct stat st;

  // write, read back, stat
  fd = open("/tmp/x", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0, "open x for write");
  CHECK(write(fd, "hello world", 11) == 11, "write x");
  EXPECT_ERR(read(fd, buf, 1), EBADF, "read on write-only x");
  CHECK(close(fd) == 0, "close x");
  fd = open("/tmp/x", O_RDONLY);
  CHECK(fd >= 0, "open x for read");
  CHECK(read(fd, buf, sizeof buf) == 11 && memcmp(buf, "hello world", 11) == 0, "read x");
  CHECK(read(fd, buf, sizeof buf) == 0, "read x at EOF");
  EXPECT_ERR(write(fd, "z", 1), EBADF, "write on read-only x");
  CHECK(fstat(fd, &st) == 0 && st.st_size == 11 && S_ISREG(st.st_mode) && st.st_nlink == 1, "fstat x");
  CHECK(close(fd) == 0, "close x (2)");
  EXPECT_ERR(open("/tmp/x", O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST, "O_EXCL on existing x");
  EXPECT_ERR(open("/tmp/nope", O_RDONLY), ENOENT, "open missing");

  // *at() relative to a directory fd: for a fd opened on the mount root,
  // wazero hands the FS "/x" (fd name "" + "/" + "x").
  {
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
    CHECK(dfd >= 0, "open /tmp as dir");
    fd = openat(dfd, "x", O_RDONLY);
    CHECK(fd >= 0 && read(fd, buf, 5) == 5 && memcmp(buf, "hello", 5) == 0 && close(fd) == 0, "openat(/tmp fd, x)");
    CHECK(fstatat(dfd, "x", &st, 0) == 0 && st.st_size == 11, "fstatat(/tmp fd, x)");
    CHECK(openat(dfd, "../x", O_RDONLY) == -1, "openat escape");
    CHECK(close(dfd) == 0, "close /tmp dir fd");
  }
  EXPECT_ERR(open("/tmp/x/y", O_RDONLY), ENOTDIR, "open through a file");

  // append mode, and Python's 'r+b' (O_RDWR)
  fd = open("/tmp/x", O_WRONLY | O_APPEND);
  CHECK(fd >= 0 && write(fd, "!", 1) == 1 && close(fd) == 0, "append to x");
  fd = open("/tmp/x", O_RDWR);
  CHECK(fd >= 0 && pread(fd, buf, 64, 0) == 12 && buf[11] == '!', "pread x");
  CHECK(close(fd) == 0, "close x (3)");

  // seek past the end and write: zero-filled hole
  fd = open("/tmp/hole", O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0, "open hole");
  CHECK(lseek(fd, 1000, SEEK_SET) == 1000, "lseek hole");
  CHECK(write(fd, "E", 1) == 1, "write after hole");
  CHECK(fstat(fd, &st) == 0 && st.st_size == 1001, "hole size");
  CHECK(pread(fd, buf, sizeof buf, 0) == 1001 && buf[0] == 0 && buf[999] == 0 && buf[1000] == 'E', "read hole");
  CHECK(ftruncate(fd, 10) == 0 && fstat(fd, &st) == 0 && st.st_size == 10, "ftruncate hole");
  CHECK(close(fd) == 0, "close hole");

  // directories and listing
  CHECK(mkdir("/tmp/d", 0755) == 0, "mkdir d");
  EXPECT_ERR(mkdir("/tmp/d", 0755), EEXIST, "mkdir d again");
  fd = open("/tmp/d/y", O_WRONLY | O_CREAT, 0600);
  CHECK(fd >= 0 && close(fd) == 0, "create d/y");
  EXPECT_ERR(rmdir("/tmp/d"), ENOTEMPTY, "rmdir non-empty d");
  EXPECT_ERR(open("/tmp/d", O_WRONLY), EISDIR, "open dir for write");
  {
    int dfd = open("/tmp/d", O_RDONLY | O_DIRECTORY); // FS sees "d/y" below
    CHECK(dfd >= 0, "open /tmp/d as dir");
    CHECK(fstatat(dfd, "y", &st, 0) == 0 && S_ISREG(st.st_mode), "fstatat(d fd, y)");
    CHECK(close(dfd) == 0, "close d dir fd");
  }
  {
    DIR *dir = opendir("/tmp");
    CHECK(dir != NULL, "opendir /tmp");
    char names[256] = "";
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
      strcat(names, de->d_name);
      strcat(names, ",");
    }
    if (strcmp(names, ".,..,d,hole,x,") != 0) {
      out("FAIL readdir /tmp: got ");
      out(names);
      out("\n");
      _Exit(1);
    }
    rewinddir(dir);
    int count = 0;
    while (readdir(dir) != NULL) count++;
    CHECK(count == 5, "rewinddir");
    CHECK(closedir(dir) == 0, "closedir");
  }

  // rename
  CHECK(rename("/tmp/x", "/tmp/d/z") == 0, "rename x to d/z");
  EXPECT_ERR(stat("/tmp/x", &st), ENOENT, "stat renamed x");
  CHECK(stat("/tmp/d/z", &st) == 0 && st.st_size == 12, "stat d/z");
  CHECK(rename("/tmp/d/z", "/tmp/d/y") == 0, "rename over existing file");
  EXPECT_ERR(rename("/tmp/d", "/tmp/d/sub"), EINVAL, "rename dir into itself");
  EXPECT_ERR(rename("/tmp/hole", "/tmp/d"), EISDIR, "rename file over dir");

  // unlink while open
  fd = open("/tmp/u", O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK(fd >= 0, "open u");
  CHECK(unlink("/tmp/u") == 0, "unlink open u");
  CHECK(write(fd, "abc", 3) == 3, "write unlinked u");
  CHECK(pread(fd, buf, 8, 0) == 3 && memcmp(buf, "abc", 3) == 0, "read unlinked u");
  CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0, "nlink of unlinked u");
  CHECK(close(fd) == 0, "close u");
  EXPECT_ERR(stat("/tmp/u", &st), ENOENT, "stat unlinked u");

  // cleanup, so the fill below starts from 0 bytes used
  CHECK(unlink("/tmp/d/y") == 0 && rmdir("/tmp/d") == 0 && unlink("/tmp/hole") == 0, "cleanup");

  // /dev/null the ways Python opens it
  fd = open("/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0666); // open(..., 'wb')
  CHECK(fd >= 0, "open /dev/null wb");
  CHECK(write(fd, buf, sizeof buf) == sizeof buf, "write /dev/null");
  CHECK(fstat(fd, &st) == 0 && S_ISCHR(st.st_mode), "fstat /dev/null");
  // wasi-libc's isatty() is "character device without seek/tell rights", and
  // wazero grants a character device exactly that, so this reports 1.
  out("devnull isatty=");
  outnum(isatty(fd));
  out("\n");
  CHECK(close(fd) == 0, "close /dev/null");
  fd = open("/dev/null", O_RDWR); // 'r+b'
  CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 0 && write(fd, "x", 1) == 1 && close(fd) == 0, "/dev/null r+b");
  fd = open("/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0666); // 'ab'
  CHECK(fd >= 0 && write(fd, "x", 1) == 1 && close(fd) == 0, "/dev/null ab");
  CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), "stat /dev/null");
  EXPECT_ERR(open("/dev/zero", O_RDONLY), ENOENT, "open /dev/zero");
  EXPECT_ERR(open("/dev/new", O_WRONLY | O_CREAT, 0600), EROFS, "create in /dev");

  // no escape from the mount
  CHECK(open("/tmp/../../etc/passwd", O_RDONLY) == -1, "escape via ..");

  // fill /tmp past the cap: short write at the cap, then an error
  fd = open("/tmp/big", O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0, "open big");
  memset(buf, 'b', sizeof buf);
  long total = 0;
  ssize_t n;
  errno = 0;
  while ((n = write(fd, buf, 3000)) > 0) total += n;
  int fillErr = errno;
  if (n != -1 || total != CAP) {
    out("FAIL fill: total=");
    outnum(total);
    out("\n");
    _Exit(1);
  }
  // wazero v1.12 has no ENOSPC in experimental/sys and maps the filesystem's
  // ENOSPC to WASI EIO; accept either so this keeps passing if that changes.
  if (fillErr != ENOSPC && fillErr != EIO) {
    errno = fillErr;
    fail("fill errno");
  }
  out("fill errno=");
  out(ename(fillErr));
  out("\n");
  CHECK(close(fd) == 0, "close big");
  fd = open("/tmp/small", O_WRONLY | O_CREAT, 0600);
  CHECK(fd >= 0, "open small");
  CHECK(write(fd, "s", 1) == -1, "write when full");
  CHECK(unlink("/tmp/big") == 0, "unlink big");
  CHECK(write(fd, "s", 1) == 1, "write after freeing");
  CHECK(close(fd) == 0, "close small");

  out("ok\n");
  return 0;
}
