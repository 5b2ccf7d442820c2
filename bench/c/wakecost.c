/* wakecost: what a wake-up of a process on another CPU costs, by the
 * mechanism that carries it, when the waker works W ns before each send.
 *
 * A parent on the first CPU and a forked child on the second play ping-pong
 * with a 64-byte message through one mechanism at a time: a futex word with
 * a sleeper flag (as the ring and the C peers wake), a Unix stream socket
 * pair, a pair of pipes, and a pair of eventfds. Each side spins W ns on the
 * clock before it sends, as an interpreter's work between messages would.
 * Prints, per mechanism, the median one-way time (round trip / 2) of N round
 * trips in each of R rounds, the mechanisms interleaved within each round.
 *
 *   gcc -O2 -Wall -Wextra -o wakecost bench/c/wakecost.c
 *   ./wakecost [W_ns [rounds]]            (needs two CPUs)
 *
 * BENCHMARKS.md.in, "Python at 64 bytes on two CPUs", has what it showed. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { N = 3000, FUTEX, SOCKET, PIPE, EVENTFD };
static const char *const names[] = {[FUTEX] = "futex", [SOCKET] = "unix socket", [PIPE] = "pipe", [EVENTFD] = "eventfd"};

/* A direction's sequence word and its sleeper flag, on lines of their own. */
struct word {
	_Atomic uint32_t seq;
	_Atomic uint32_t waiting;
	char pad[56];
};

static struct word *words; /* [0]: parent to child, [1]: back */
static int sock[2], to_child[2], to_parent[2], ev_child, ev_parent;
static long work;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static long now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void busy(void)
{
	for (long start = now(); now() - start < work;)
		;
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof s, &s) < 0)
		die("sched_setaffinity");
}

static void wait_for(struct word *w, uint32_t v)
{
	uint32_t x;
	atomic_store(&w->waiting, 1);
	while ((x = atomic_load(&w->seq)) != v) {
		const struct timespec t = {0, 100000000};
		if (syscall(SYS_futex, &w->seq, FUTEX_WAIT, x, &t, NULL, 0) < 0 && errno != EAGAIN &&
		    errno != EINTR && errno != ETIMEDOUT)
			die("futex");
	}
	atomic_store(&w->waiting, 0);
}

static void post(struct word *w, uint32_t v)
{
	atomic_store(&w->seq, v);
	if (atomic_load(&w->waiting))
		syscall(SYS_futex, &w->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void xread(int fd, void *b, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)b + got, n - got);
		if (r <= 0)
			die("read");
		got += (size_t)r;
	}
}

static void xwrite(int fd, const void *b, size_t n)
{
	if (write(fd, b, n) != (ssize_t)n)
		die("write");
}

/* send and receive one message of mechanism k; side 0 is the parent. */
static void send_msg(int k, int side, uint32_t i)
{
	char buf[64] = {0};
	uint64_t one = 1;
	busy();
	switch (k) {
	case FUTEX: post(&words[side], i); break;
	case SOCKET: xwrite(sock[side], buf, sizeof buf); break;
	case PIPE: xwrite(side ? to_parent[1] : to_child[1], buf, sizeof buf); break;
	case EVENTFD: xwrite(side ? ev_parent : ev_child, &one, sizeof one); break;
	}
}

static void recv_msg(int k, int side, uint32_t i)
{
	char buf[64];
	uint64_t n;
	switch (k) {
	case FUTEX: wait_for(&words[!side], i); break;
	case SOCKET: xread(sock[side], buf, sizeof buf); break;
	case PIPE: xread(side ? to_child[0] : to_parent[0], buf, sizeof buf); break;
	case EVENTFD: xread(side ? ev_child : ev_parent, &n, sizeof n); break;
	}
}

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	work = argc > 1 ? atol(argv[1]) : 0;
	int rounds = argc > 2 ? atoi(argv[2]) : 4;
	words = mmap(NULL, 2 * sizeof *words, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (words == MAP_FAILED)
		die("mmap");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sock) < 0 || pipe(to_child) < 0 || pipe(to_parent) < 0)
		die("socketpair or pipe");
	if ((ev_child = eventfd(0, 0)) < 0 || (ev_parent = eventfd(0, 0)) < 0)
		die("eventfd");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	uint32_t seq = 0;
	if (pid == 0) {
		pin(1);
		for (int r = 0; r < rounds; r++)
			for (int k = FUTEX; k <= EVENTFD; k++)
				for (int i = 0; i < N; i++) {
					seq++;
					recv_msg(k, 1, seq);
					send_msg(k, 1, seq);
				}
		_exit(0);
	}
	pin(0);
	static long t[N];
	static double med[EVENTFD + 1][64];
	if (rounds > 64)
		rounds = 64;
	for (int r = 0; r < rounds; r++)
		for (int k = FUTEX; k <= EVENTFD; k++) {
			for (int i = 0; i < N; i++) {
				long start = now();
				seq++;
				send_msg(k, 0, seq);
				recv_msg(k, 0, seq);
				t[i] = now() - start;
			}
			qsort(t, N, sizeof t[0], cmp);
			med[k][r] = t[N / 2] / 2000.0;
		}
	printf("W = %ld ns; one way, µs, per round:\n", work);
	for (int k = FUTEX; k <= EVENTFD; k++) {
		printf("  %-12s", names[k]);
		for (int r = 0; r < rounds; r++)
			printf(" %5.1f", med[k][r]);
		printf("\n");
	}
	int status;
	if (waitpid(pid, &status, 0) < 0 || status != 0)
		die("child");
	return 0;
}
