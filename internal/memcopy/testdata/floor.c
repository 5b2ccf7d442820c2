/*
 * The C floor of BenchmarkCopy: the same hand-over as the Go benchmark's
 * (bench_linux_test.go), with glibc's memcpy. The calling thread, pinned to
 * CPU A, copies SIZE bytes into one of 8 slots and hands the slot to a
 * reader thread pinned to CPU B, which reads it and hands it back; one op is
 * a copy and its read.
 *
 *   floor SIZE N CPU_A CPU_B   prints the ns per op of N ops
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 8

#define WARM 200 /* ops before the clock starts */

static size_t size;
static long n;
static unsigned char *src, *dst;
static _Atomic long turn; /* 2i+1: op i copied; 2i+2: op i read */
static volatile uint64_t sink;

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (pthread_setaffinity_np(pthread_self(), sizeof s, &s) != 0) {
		perror("pthread_setaffinity_np");
		exit(1);
	}
}

/* The reader loads a word of every cache line: what it costs is the
 * lines' transfer, the same in Go and C. */
static uint64_t touch(const unsigned char *p, size_t len)
{
	uint64_t s = 0, w;
	for (size_t i = 0; i + 8 <= len; i += 64)
		memcpy(&w, p + i, 8), s += w;
	return s;
}

static void *reader(void *arg)
{
	pin(*(int *)arg);
	for (long i = 0; i < WARM + n; i++) {
		while (atomic_load(&turn) != 2 * i + 1)
			;
		sink += touch(dst + (i % SLOTS) * size, size);
		atomic_store(&turn, 2 * i + 2);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: floor SIZE N CPU_A CPU_B\n");
		return 2;
	}
	size = strtoul(argv[1], NULL, 10), n = strtol(argv[2], NULL, 10);
	int a = atoi(argv[3]), b = atoi(argv[4]);
	src = aligned_alloc(4096, size);
	dst = aligned_alloc(4096, SLOTS * size);
	for (size_t i = 0; i < size; i++)
		src[i] = (unsigned char)(i * 7 + 1);
	memset(dst, 1, SLOTS * size);
	pin(a);
	pthread_t t;
	pthread_create(&t, NULL, reader, &b);
	struct timespec t0, t1;
	for (long i = 0; i < WARM + n; i++) {
		if (i == WARM)
			clock_gettime(CLOCK_MONOTONIC, &t0);
		/* The Go benchmark copies to 8 bytes past a slot's start, where a
		 * ring's record puts a message. */
		memcpy(dst + (i % SLOTS) * size + 8, src, size - 8);
		atomic_store(&turn, 2 * i + 1);
		while (atomic_load(&turn) != 2 * i + 2)
			;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(t, NULL);
	printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
	return 0;
}
