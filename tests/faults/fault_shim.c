// An LD_PRELOAD library for ncflab's fault-injection tests: I/O on files whose path holds a
// given string fails as a full disk or a bad sector would make it fail. C, libc and libdl only.
//
// Environment (read once, at the first intercepted call):
//   NCFLAB_FAULT_PATH   a substring of the path given to open/fopen (unset: the shim does nothing)
//   NCFLAB_FAULT_OP     write | read | fsync
//   NCFLAB_FAULT_AFTER  bytes that go through before the fault, counted PER FILE DESCRIPTOR:
//                       each open of a matching path starts again from 0 (default 0)
//   NCFLAB_FAULT_ERRNO  ENOSPC | EIO | EDQUOT, or a number (default ENOSPC; EIO for read)
//   NCFLAB_FAULT_LOG    optional file that gets one line per injected fault, so a test can
//                       tell that the shim fired
// The call that crosses the limit is cut short (it returns the bytes before the limit, as a
// filling disk does) and the next one fails with -1 and the errno; FILE* streams return a
// short count with the stream's error flag set, and fflush/fclose of a faulted stream EOF.
// fsync/fdatasync of a matching descriptor fail at once with op fsync (delayed allocation
// reports ENOSPC only there). Descriptors are tracked from open, open64, openat, openat64,
// creat, creat64, fopen, fopen64 (fileno) and dup/dup2 (each copy with its own count),
// forgotten at close/fclose. glibc's stdio calls its internal write/read, which no preload
// can interpose, hence fwrite/fread/fflush/fclose here; libstdc++'s fstreams call ::read,
// ::write and ::writev through the PLT. Not covered: fprintf/fputs/fgets/getc on streams,
// mmap, descriptors ≥ 4096, paths reached through a directory descriptor's relative name.
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { kMaxFds = 4096, kNone = 0, kWrite = 1, kRead = 2, kFsync = 3 };

static const char *fault_path, *fault_log;
static int fault_op = kNone, fault_errno = ENOSPC;
static long long fault_after;
static _Atomic long long budget[kMaxFds];  // 0: not a matching file; else 1 + bytes still allowed
static _Atomic int faulted[kMaxFds];       // a call on this descriptor has failed
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define REAL(name) static __typeof__(name) *real_##name
REAL(open); REAL(open64); REAL(openat); REAL(openat64); REAL(creat); REAL(creat64);
REAL(fopen); REAL(fopen64); REAL(close); REAL(fclose); REAL(dup); REAL(dup2);
REAL(write); REAL(writev); REAL(pwrite); REAL(pwrite64); REAL(fwrite); REAL(fflush);
REAL(read); REAL(readv); REAL(pread); REAL(pread64); REAL(fread); REAL(fsync); REAL(fdatasync);
#define RESOLVE(name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static void init(void) {
  RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64); RESOLVE(creat);
  RESOLVE(creat64); RESOLVE(fopen); RESOLVE(fopen64); RESOLVE(close); RESOLVE(fclose);
  RESOLVE(dup); RESOLVE(dup2); RESOLVE(write); RESOLVE(writev); RESOLVE(pwrite);
  RESOLVE(pwrite64); RESOLVE(fwrite); RESOLVE(fflush); RESOLVE(read); RESOLVE(readv);
  RESOLVE(pread); RESOLVE(pread64); RESOLVE(fread); RESOLVE(fsync); RESOLVE(fdatasync);
  const char *path = getenv("NCFLAB_FAULT_PATH"), *op = getenv("NCFLAB_FAULT_OP");
  const char *after = getenv("NCFLAB_FAULT_AFTER"), *err = getenv("NCFLAB_FAULT_ERRNO");
  if (!path || !*path || !op) return;
  fault_op = !strcmp(op, "write") ? kWrite : !strcmp(op, "read") ? kRead
           : !strcmp(op, "fsync") ? kFsync : kNone;
  fault_errno = fault_op == kRead ? EIO : ENOSPC;
  if (err && *err) {
    fault_errno = !strcmp(err, "ENOSPC") ? ENOSPC : !strcmp(err, "EIO") ? EIO
                : !strcmp(err, "EDQUOT") ? EDQUOT : atoi(err);
  }
  fault_after = after ? atoll(after) : 0;
  fault_log = getenv("NCFLAB_FAULT_LOG");
  fault_path = path;
}
#define INIT() pthread_once(&once, init)

// Starts (or stops) watching the descriptor that an open of `path` returned.
static int track(const char *path, int fd) {
  if (fd >= 0 && fd < kMaxFds) {
    const int match = fault_path && path && strstr(path, fault_path);
    atomic_store(&faulted[fd], 0);
    atomic_store(&budget[fd], match ? 1 + fault_after : 0);
  }
  return fd;
}

static void forget(int fd) {
  if (fd >= 0 && fd < kMaxFds) atomic_store(&budget[fd], 0);
}

// Bytes of a request for `want` that may go through on fd: −1 for all of them (not a watched
// descriptor, or not the faulted operation), else what is left of its count, at most `want`.
static long long take(int fd, int op, long long want) {
  if (op != fault_op || fd < 0 || fd >= kMaxFds) return -1;
  long long left = atomic_load(&budget[fd]);
  for (;;) {
    if (left == 0) return -1;
    const long long grant = left - 1 < want ? left - 1 : want;
    if (atomic_compare_exchange_weak(&budget[fd], &left, left - grant)) return grant;
  }
}

static void note(int fd, const char *call) {
  atomic_store(&faulted[fd], 1);
  if (fault_log) {
    char line[128];
    const int n = snprintf(line, sizeof line, "fault %s fd=%d errno=%d\n", call, fd, fault_errno);
    const int log = real_open(fault_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log >= 0) {
      if (real_write(log, line, (size_t)n) < 0) {}
      real_close(log);
    }
  }
  errno = fault_errno;
}

static ssize_t fail(int fd, const char *call) { note(fd, call); return -1; }

static int is_faulted(int fd) { return fd >= 0 && fd < kMaxFds && atomic_load(&faulted[fd]); }

// The mode argument exists only with O_CREAT or O_TMPFILE.
#define MODE(flags) mode_t mode = 0; INIT(); \
  if ((flags) & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
int open(const char *p, int flags, ...) { MODE(flags) return track(p, real_open(p, flags, mode)); }
int open64(const char *p, int flags, ...) { MODE(flags) return track(p, real_open64(p, flags, mode)); }
int openat(int dir, const char *p, int flags, ...) {
  MODE(flags) return track(p, real_openat(dir, p, flags, mode));
}
int openat64(int dir, const char *p, int flags, ...) {
  MODE(flags) return track(p, real_openat64(dir, p, flags, mode));
}
int creat(const char *p, mode_t mode) { INIT(); return track(p, real_creat(p, mode)); }
int creat64(const char *p, mode_t mode) { INIT(); return track(p, real_creat64(p, mode)); }
static FILE *track_stream(const char *p, FILE *f) { if (f) track(p, fileno(f)); return f; }
FILE *fopen(const char *p, const char *mode) { INIT(); return track_stream(p, real_fopen(p, mode)); }
FILE *fopen64(const char *p, const char *mode) { INIT(); return track_stream(p, real_fopen64(p, mode)); }
static int copy(int from, int to) {  // dup's result watched when its source was, afresh
  if (to >= 0 && to < kMaxFds && to != from) {
    const int watched = from >= 0 && from < kMaxFds && atomic_load(&budget[from]) != 0;
    atomic_store(&faulted[to], 0);
    atomic_store(&budget[to], watched ? 1 + fault_after : 0);
  }
  return to;
}
int dup(int fd) { INIT(); return copy(fd, real_dup(fd)); }
int dup2(int fd, int to) { INIT(); return copy(fd, real_dup2(fd, to)); }
int close(int fd) { INIT(); forget(fd); return real_close(fd); }
int fclose(FILE *f) {
  INIT(); const int fd = fileno(f), bad = is_faulted(fd);
  forget(fd);
  const int result = real_fclose(f);
  if (bad) { errno = fault_errno; return EOF; }
  return result;
}
int fflush(FILE *f) {
  INIT(); const int result = real_fflush(f);
  if (f && is_faulted(fileno(f))) { errno = fault_errno; return EOF; }
  return result;
}

// A request cut to its first `grant` bytes: iov's first entries, the last one shortened.
static int cut(const struct iovec *iov, int count, long long grant, struct iovec *out) {
  int n = 0;
  for (; n < count && grant > 0; ++n) {
    out[n] = iov[n];
    if ((long long)out[n].iov_len > grant) out[n].iov_len = (size_t)grant;
    grant -= (long long)out[n].iov_len;
  }
  return n;
}
static long long total(const struct iovec *iov, int count) {
  long long sum = 0;
  for (int i = 0; i < count; ++i) sum += (long long)iov[i].iov_len;
  return sum;
}

// Gives back what a call did not use of its grant (an end of file, a short pipe write).
static void refund(int fd, long long grant, ssize_t done) {
  const long long unused = grant - (done > 0 ? done : 0);
  long long left = atomic_load(&budget[fd]);
  while (unused > 0 && left != 0 && !atomic_compare_exchange_weak(&budget[fd], &left, left + unused)) {}
}

// Each data call: the whole request when allowed, a failure when nothing is left, else a cut.
#define GUARD(op, fd, want, call, all, part)                    \
  INIT();                                                       \
  const long long grant = take(fd, op, (long long)(want));      \
  if (grant < 0) return all;                                    \
  if (grant == 0 && (want) > 0) return fail(fd, call);          \
  const ssize_t done = grant == (long long)(want) ? all : part; \
  refund(fd, grant, done);                                      \
  return done;

ssize_t write(int fd, const void *b, size_t n) {
  GUARD(kWrite, fd, n, "write", real_write(fd, b, n), real_write(fd, b, (size_t)grant))
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t at) {
  GUARD(kWrite, fd, n, "pwrite", real_pwrite(fd, b, n, at), real_pwrite(fd, b, (size_t)grant, at))
}
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t at) {
  GUARD(kWrite, fd, n, "pwrite64", real_pwrite64(fd, b, n, at),
        real_pwrite64(fd, b, (size_t)grant, at))
}
ssize_t read(int fd, void *b, size_t n) {
  GUARD(kRead, fd, n, "read", real_read(fd, b, n), real_read(fd, b, (size_t)grant))
}
ssize_t pread(int fd, void *b, size_t n, off_t at) {
  GUARD(kRead, fd, n, "pread", real_pread(fd, b, n, at), real_pread(fd, b, (size_t)grant, at))
}
ssize_t pread64(int fd, void *b, size_t n, off64_t at) {
  GUARD(kRead, fd, n, "pread64", real_pread64(fd, b, n, at),
        real_pread64(fd, b, (size_t)grant, at))
}
ssize_t writev(int fd, const struct iovec *iov, int count) {
  struct iovec part[count > 0 ? count : 1];
  GUARD(kWrite, fd, total(iov, count), "writev", real_writev(fd, iov, count),
        real_writev(fd, part, cut(iov, count, grant, part)))
}
ssize_t readv(int fd, const struct iovec *iov, int count) {
  struct iovec part[count > 0 ? count : 1];
  GUARD(kRead, fd, total(iov, count), "readv", real_readv(fd, iov, count),
        real_readv(fd, part, cut(iov, count, grant, part)))
}

// Streams: bytes are counted as they enter fwrite/leave fread; a cut sets the error flag.
static size_t stream(FILE *f, int op, void *b, size_t size, size_t n, const char *call) {
  INIT();
  const int fd = fileno(f);
  const long long grant = size ? take(fd, op, (long long)(size * n)) : -1;
  if (grant < 0 || grant == (long long)(size * n)) {
    return op == kWrite ? real_fwrite(b, size, n, f) : real_fread(b, size, n, f);
  }
  const size_t done = grant == 0 ? 0
                    : op == kWrite ? real_fwrite(b, 1, (size_t)grant, f)
                                   : real_fread(b, 1, (size_t)grant, f);
  if ((long long)done == grant) {  // else the file ended (or failed) first: no fault yet
    note(fd, call);
    f->_flags |= _IO_ERR_SEEN;  // what ferror reads (glibc)
  } else {
    refund(fd, grant, (ssize_t)done);
  }
  return done / size;
}
size_t fwrite(const void *b, size_t size, size_t n, FILE *f) {
  return stream(f, kWrite, (void *)b, size, n, "fwrite");
}
size_t fread(void *b, size_t size, size_t n, FILE *f) { return stream(f, kRead, b, size, n, "fread"); }

int fsync(int fd) {
  INIT(); return take(fd, kFsync, 0) < 0 ? real_fsync(fd) : (int)fail(fd, "fsync");
}
int fdatasync(int fd) {
  INIT(); return take(fd, kFsync, 0) < 0 ? real_fdatasync(fd) : (int)fail(fd, "fdatasync");
}
