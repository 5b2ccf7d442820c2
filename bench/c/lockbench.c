/*
 * The C floor for the Go library's Create, Read/ReadWrite and CreateAnonymous
 * on Linux: the same syscalls, with nothing around them, so that Go's
 * create_release, attach_release and create_release_anon can be compared
 * with C making the same calls (the project's rule: if the library makes the lock call, so must
 * the C it is compared with).  ../shared/peers/c/bench.c has no such variant
 * and is not ours to change, hence this program.  It is a peer in the sense
 * of ../shared/peers/README.md: same flags, timing loop and JSON lines.
 *
 *   create_release_lock (4096, 1 MiB), one op:
 *     openat(AT_FDCWD, "/dev/shm", O_TMPFILE|O_RDWR|O_CLOEXEC|O_NONBLOCK, 0600)
 *     fcntl(fd, F_OFD_SETLK, {F_RDLCK, SEEK_SET, 0, 0})   the creator's lock
 *     fchmod(fd, 0600)
 *     fallocate(fd, 0, 0, size)
 *     mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)
 *     linkat(fd, "", AT_FDCWD, "/dev/shm/NAME", AT_EMPTY_PATH)
 *   then release: munmap; unlinkat(AT_FDCWD, "/dev/shm/NAME", 0); close(fd).
 *
 *   attach_release_nonblock (4096, 1 MiB), on a segment made once as above:
 *     openat(AT_FDCWD, "/dev/shm/NAME", O_RDWR|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK)
 *     fstat; mmap; close; then munmap.
 *
 *   create_release_anon (4096, 1 MiB): the library's CreateAnonymous and
 *   Close, an anonymous (memfd) segment:
 *     memfd_create("shmmap", MFD_CLOEXEC|MFD_ALLOW_SEALING|MFD_NOEXEC_SEAL)
 *     fchmod(fd, 0600)
 *     fallocate(fd, 0, 0, size)
 *     fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL)
 *     mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)
 *   then release: munmap; close(fd).  (Go's os.NewFile adds an
 *   fcntl(F_GETFL) of its own, which this floor does not make.)
 *
 * fstat is called through syscall(SYS_fstat) because glibc's fstat() is
 * newfstatat(fd, "", AT_EMPTY_PATH), a different call from Go's fstat.
 *
 * Names are /dev/shm/shmpeer-lock-PID-N; whatever is named is unlinked on
 * exit, on error and on SIGINT/SIGTERM/SIGHUP.  An unnamed O_TMPFILE segment
 * goes away with its fd.
 *
 *   lockbench [--quick] [--ops create_release_lock,attach_release_nonblock,create_release_anon]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3; older headers lack it */
#endif

#define IMPL "c-posix"
#define DIR "/dev/shm"
static const size_t SIZES[] = {4096, 1 << 20};

static double target_ns = 1e9; /* one batch of >= 1 s (0.1 s with --quick) */
static int pid;                /* in the names; getpid() once, not per op */

struct seg {
	char path[64];
	int fd;
	void *p;
	size_t size;
};

/* Named segments to unlink if we die: [0] the attach fixture, [1] the
 * segment of the create op in progress.  Set only while the name exists. */
static volatile sig_atomic_t named[2];
static char named_path[2][64];

static void unlink_named(void)
{
	for (int i = 0; i < 2; i++)
		if (named[i])
			unlinkat(AT_FDCWD, named_path[i], 0);
}

static void die(const char *what)
{
	perror(what);
	unlink_named();
	exit(1);
}

static void on_signal(int sig)
{
	unlink_named(); /* async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec;
}

/* --- the operations under test ------------------------------------------ */

static void seg_create(struct seg *s, size_t size, int slot)
{
	static unsigned long counter;
	snprintf(s->path, sizeof s->path, DIR "/shmpeer-lock-%d-%lx", pid, counter++);
	s->size = size;
	s->fd = openat(AT_FDCWD, DIR, O_TMPFILE | O_RDWR | O_CLOEXEC | O_NONBLOCK, 0600);
	if (s->fd < 0)
		die("openat(O_TMPFILE)");
	struct flock lk = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if (fcntl(s->fd, F_OFD_SETLK, &lk) != 0)
		die("fcntl(F_OFD_SETLK)");
	if (fchmod(s->fd, 0600) != 0)
		die("fchmod");
	if (fallocate(s->fd, 0, 0, (off_t)size) != 0)
		die("fallocate");
	s->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->p == MAP_FAILED)
		die("mmap");
	memcpy(named_path[slot], s->path, sizeof s->path);
	named[slot] = 1; /* before the name exists, so that a signal cannot miss it */
	if (linkat(s->fd, "", AT_FDCWD, s->path, AT_EMPTY_PATH) != 0) {
		named[slot] = 0; /* not ours: EEXIST would be someone else's */
		die("linkat");
	}
}

static void seg_release(struct seg *s, int slot)
{
	munmap(s->p, s->size);
	if (unlinkat(AT_FDCWD, s->path, 0) != 0)
		die("unlinkat");
	named[slot] = 0;
	close(s->fd);
}

static void seg_attach(struct seg *s, const char *path, size_t size)
{
	s->size = size;
	s->fd = openat(AT_FDCWD, path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (s->fd < 0)
		die("openat(attach)");
	struct stat st;
	if (syscall(SYS_fstat, s->fd, &st) != 0 || (size_t)st.st_size < size)
		die("fstat");
	s->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->p == MAP_FAILED)
		die("mmap");
	close(s->fd);
}

/* An anonymous segment, as CreateAnonymous makes it; nothing is named. */
static unsigned memfd_flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL;

static void anon_create(struct seg *s, size_t size)
{
	s->size = size;
	s->fd = memfd_create("shmmap", memfd_flags);
	if (s->fd < 0 && errno == EINVAL && (memfd_flags & MFD_NOEXEC_SEAL)) {
		memfd_flags &= ~MFD_NOEXEC_SEAL; /* before Linux 6.3, as the library */
		s->fd = memfd_create("shmmap", memfd_flags);
	}
	if (s->fd < 0)
		die("memfd_create");
	if (fchmod(s->fd, 0600) != 0)
		die("fchmod");
	if (fallocate(s->fd, 0, 0, (off_t)size) != 0)
		die("fallocate");
	if (fcntl(s->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		die("fcntl(F_ADD_SEALS)");
	s->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->p == MAP_FAILED)
		die("mmap");
}

static void op_create_release_anon(long n, void *arg)
{
	size_t size = *(size_t *)arg;
	for (long i = 0; i < n; i++) {
		struct seg s;
		anon_create(&s, size);
		munmap(s.p, s.size);
		close(s.fd);
	}
}

static void op_create_release(long n, void *arg)
{
	size_t size = *(size_t *)arg;
	for (long i = 0; i < n; i++) {
		struct seg s;
		seg_create(&s, size, 1);
		seg_release(&s, 1);
	}
}

static void op_attach_release(long n, void *arg)
{
	struct seg *fixture = arg;
	for (long i = 0; i < n; i++) {
		struct seg s;
		seg_attach(&s, fixture->path, fixture->size);
		munmap(s.p, s.size);
	}
}

/* --- measurement (as ../shared/peers/c/bench.c) --------------------------- */

typedef void (*op_fn)(long n, void *arg);

/* Go-testing.B style: grow n until one batch of n ops takes >= target. */
static double measure(op_fn op, void *arg, long *iters)
{
	for (long n = 1;;) {
		uint64_t t0 = now_ns();
		op(n, arg);
		double t = (double)(now_ns() - t0);
		if (t >= target_ns || n >= 1000000000L) {
			*iters = n;
			return t / n;
		}
		long next = (long)(n * target_ns * 1.2 / (t > 1 ? t : 1));
		if (next > 100 * n)
			next = 100 * n;
		n = next > n + 1 ? next : n + 1;
	}
}

static void emit(const char *op, size_t size, long iters, double ns)
{
	printf("{\"impl\":\"%s\",\"op\":\"%s\",\"size\":%zu,\"iters\":%ld,\"ns_per_op\":%.1f,\"gbps\":null}\n",
	       IMPL, op, size, iters, ns);
	fflush(stdout);
}

static int wanted(const char *ops, const char *op)
{
	if (!ops)
		return 1;
	size_t len = strlen(op);
	for (const char *p = ops; (p = strstr(p, op)) != NULL; p += len)
		if ((p == ops || p[-1] == ',') && (p[len] == ',' || p[len] == 0))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *ops = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			target_ns = 1e8;
		} else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
			ops = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--quick] [--ops op1,op2,...]\n", argv[0]);
			return 2;
		}
	}
	pid = (int)getpid();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	long iters;
	double ns;
	for (int i = 0; i < 2; i++) {
		size_t size = SIZES[i];
		if (wanted(ops, "create_release_lock")) {
			ns = measure(op_create_release, &size, &iters);
			emit("create_release_lock", size, iters, ns);
		}
		if (wanted(ops, "create_release_anon")) {
			ns = measure(op_create_release_anon, &size, &iters);
			emit("create_release_anon", size, iters, ns);
		}
		if (wanted(ops, "attach_release_nonblock")) {
			struct seg fixture;
			seg_create(&fixture, size, 0);
			ns = measure(op_attach_release, &fixture, &iters);
			seg_release(&fixture, 0);
			emit("attach_release_nonblock", size, iters, ns);
		}
	}
	return 0;
}
