/*
 * shmmap._native: what Python cannot do correctly by itself on shared
 * memory, for shmmap.ring: 32-bit atomic loads, stores, compare-and-swap
 * and fetch-or on words of a writable buffer (the ring's mmap), the futex
 * wait and wake on them, and each end's per-message work.
 *
 * Every atomic is sequentially consistent (C11 <stdatomic.h>'s default):
 * on x86-64 gcc makes a store an XCHG and a load a plain MOV; on arm64 a
 * store is an STLR and a load an LDAR (LDAPR with LSE2), with a CAS loop
 * or CASAL / LDSETAL for the read-modify-writes. That is what ring's
 * LAYOUT.md asks of every shared word.
 *
 * A Words object holds its buffer (a Py_buffer, so that an mmap cannot be
 * closed under it) from its creation until release(); each entry point
 * checks the offset against the buffer's length and alignment and raises
 * rather than touch memory outside it. A futex wait releases the GIL and
 * counts itself, so that release() while a wait is in flight fails rather
 * than let the mapping go under the sleeping thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	PyObject_HEAD
	Py_buffer view;	 /* valid while has_view */
	int has_view;
	int attached;	 /* once set, never cleared: one buffer per object, ever */
	int waiting;	 /* futex waits in flight, the GIL released */
} Words;

static PyTypeObject WordsType;

/* word returns the word at off, after checking it lies in w's buffer and is
 * 4-aligned; NULL with an exception set otherwise. */
static _Atomic uint32_t *word(Words *w, Py_ssize_t off)
{
	if (!w->has_view) {
		PyErr_SetString(PyExc_ValueError, "Words: released");
		return NULL;
	}
	if (off < 0 || off > w->view.len - 4 || off % 4 != 0) {
		PyErr_Format(PyExc_IndexError, "Words: offset %zd out of a buffer of %zd bytes, or not 4-aligned",
			     off, w->view.len);
		return NULL;
	}
	return (_Atomic uint32_t *)((char *)w->view.buf + off);
}

/* words_attach takes obj's buffer (writable) for w; -1 with an exception set
 * if it cannot. */
static int words_attach(Words *self, PyObject *obj)
{
	if (self->attached) {
		PyErr_SetString(PyExc_ValueError, "Words: already initialised");
		return -1;
	}
	if (PyObject_GetBuffer(obj, &self->view, PyBUF_WRITABLE | PyBUF_SIMPLE) < 0)
		return -1;
	if ((uintptr_t)self->view.buf % 8 != 0) {
		PyBuffer_Release(&self->view);
		PyErr_SetString(PyExc_ValueError, "Words: buffer not 8-aligned");
		return -1;
	}
	self->has_view = 1;
	self->attached = 1;
	return 0;
}

static int Words_init(Words *self, PyObject *args, PyObject *kwds)
{
	PyObject *obj;
	static char *kwlist[] = {"buffer", NULL};
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Words", kwlist, &obj))
		return -1;
	if (Py_TYPE(self) != &WordsType) {
		/* A Producer or Consumer is initialised by End_init alone, which
		 * checks the buffer against the capacity. */
		PyErr_SetString(PyExc_TypeError, "Words.__init__ on a ring end");
		return -1;
	}
	return words_attach(self, obj);
}

static void Words_dealloc(Words *self)
{
	/* A wait in flight holds a reference to self (the method call's), so
	 * none is in flight here. */
	if (self->has_view) {
		PyBuffer_Release(&self->view);
		self->has_view = 0;
	}
	Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(release_doc, "release()\n\n"
	"Gives the buffer back: every later call raises ValueError. A second\n"
	"release does nothing. Raises BufferError while a wait is in flight\n"
	"(in another thread).");

static PyObject *Words_release(Words *self, PyObject *Py_UNUSED(ignored))
{
	if (self->waiting > 0) {
		PyErr_SetString(PyExc_BufferError, "Words: a futex wait is in flight");
		return NULL;
	}
	if (self->has_view) {
		self->has_view = 0;
		PyBuffer_Release(&self->view);
	}
	Py_RETURN_NONE;
}

static int parse_u32(PyObject *o, uint32_t *v)
{
	unsigned long x = PyLong_AsUnsignedLong(o);
	if (x == (unsigned long)-1 && PyErr_Occurred())
		return -1;
	if (x > UINT32_MAX) {
		PyErr_SetString(PyExc_OverflowError, "value does not fit in 32 bits");
		return -1;
	}
	*v = (uint32_t)x;
	return 0;
}

PyDoc_STRVAR(load_doc, "load(off) -> int\n\nAtomic (seq_cst) load of the uint32 at off.");

static PyObject *Words_load(Words *self, PyObject *arg)
{
	Py_ssize_t off = PyLong_AsSsize_t(arg);
	if (off == -1 && PyErr_Occurred())
		return NULL;
	_Atomic uint32_t *p = word(self, off);
	if (p == NULL)
		return NULL;
	return PyLong_FromUnsignedLong(atomic_load(p));
}

PyDoc_STRVAR(store_doc, "store(off, value)\n\nAtomic (seq_cst) store of the uint32 value at off.");

static PyObject *Words_store(Words *self, PyObject *const *args, Py_ssize_t nargs)
{
	uint32_t v;
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "store(off, value)");
		return NULL;
	}
	Py_ssize_t off = PyLong_AsSsize_t(args[0]);
	if ((off == -1 && PyErr_Occurred()) || parse_u32(args[1], &v) < 0)
		return NULL;
	_Atomic uint32_t *p = word(self, off);
	if (p == NULL)
		return NULL;
	atomic_store(p, v);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(stamp_doc, "stamp(off, n, stamp)\n\n"
	"Writes a record's head at off (16 bytes): the length n (a relaxed store),\n"
	"8 zero bytes at off + 8, then the stamp at off + 4 (a seq_cst store, so\n"
	"after every earlier store of this thread).");

static PyObject *Words_stamp(Words *self, PyObject *const *args, Py_ssize_t nargs)
{
	uint32_t n, st;
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "stamp(off, n, stamp)");
		return NULL;
	}
	Py_ssize_t off = PyLong_AsSsize_t(args[0]);
	if ((off == -1 && PyErr_Occurred()) || parse_u32(args[1], &n) < 0 || parse_u32(args[2], &st) < 0)
		return NULL;
	if (off % 16 != 0 || word(self, off) == NULL || word(self, off + 12) == NULL) {
		if (!PyErr_Occurred())
			PyErr_Format(PyExc_IndexError, "Words: record head at %zd not 16-aligned", off);
		return NULL;
	}
	_Atomic uint32_t *h = word(self, off);
	atomic_store_explicit(&h[0], n, memory_order_relaxed);
	atomic_store_explicit(&h[2], 0, memory_order_relaxed);
	atomic_store_explicit(&h[3], 0, memory_order_relaxed);
	atomic_store(&h[1], st);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(cas_doc, "cas(off, old, new) -> bool\n\n"
	"Atomic (seq_cst) compare-and-swap of the uint32 at off: stores new if it\n"
	"holds old, and reports whether it did.");

static PyObject *Words_cas(Words *self, PyObject *const *args, Py_ssize_t nargs)
{
	uint32_t old, new;
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "cas(off, old, new)");
		return NULL;
	}
	Py_ssize_t off = PyLong_AsSsize_t(args[0]);
	if ((off == -1 && PyErr_Occurred()) || parse_u32(args[1], &old) < 0 || parse_u32(args[2], &new) < 0)
		return NULL;
	_Atomic uint32_t *p = word(self, off);
	if (p == NULL)
		return NULL;
	return PyBool_FromLong(atomic_compare_exchange_strong(p, &old, new));
}

PyDoc_STRVAR(fetch_or_doc, "fetch_or(off, bits) -> int\n\n"
	"Atomic (seq_cst) or of bits into the uint32 at off; returns the old value.");

static PyObject *Words_fetch_or(Words *self, PyObject *const *args, Py_ssize_t nargs)
{
	uint32_t bits;
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "fetch_or(off, bits)");
		return NULL;
	}
	Py_ssize_t off = PyLong_AsSsize_t(args[0]);
	if ((off == -1 && PyErr_Occurred()) || parse_u32(args[1], &bits) < 0)
		return NULL;
	_Atomic uint32_t *p = word(self, off);
	if (p == NULL)
		return NULL;
	return PyLong_FromUnsignedLong(atomic_fetch_or(p, bits));
}

PyDoc_STRVAR(wait_doc, "wait(off, value, timeout) -> bool\n\n"
	"FUTEX_WAIT (shared) on the word at off while it holds value, for at most\n"
	"timeout seconds (a float, 0 to 3600), with the GIL released. Returns\n"
	"False if the wait timed out, True otherwise: woken, the word did not\n"
	"hold value, or a signal came and its Python handler returned (a\n"
	"handler that raises, as SIGINT's does, raises here). Callers look at\n"
	"the word again either way.");

static PyObject *Words_wait(Words *self, PyObject *const *args, Py_ssize_t nargs)
{
	uint32_t val;
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "wait(off, value, timeout)");
		return NULL;
	}
	Py_ssize_t off = PyLong_AsSsize_t(args[0]);
	if ((off == -1 && PyErr_Occurred()) || parse_u32(args[1], &val) < 0)
		return NULL;
	double timeout = PyFloat_AsDouble(args[2]);
	if (timeout == -1.0 && PyErr_Occurred())
		return NULL;
	if (!(timeout >= 0 && timeout <= 3600)) {
		PyErr_SetString(PyExc_ValueError, "wait: timeout out of 0 to 3600 seconds");
		return NULL;
	}
	_Atomic uint32_t *p = word(self, off);
	if (p == NULL)
		return NULL;
	struct timespec ts;
	ts.tv_sec = (time_t)timeout;
	ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	if (ts.tv_nsec < 0)
		ts.tv_nsec = 0;
	long r;
	int err;
	self->waiting++;
	Py_BEGIN_ALLOW_THREADS
	r = syscall(SYS_futex, (uint32_t *)p, FUTEX_WAIT, val, &ts, NULL, 0);
	err = errno;
	Py_END_ALLOW_THREADS
	self->waiting--;
	if (r == 0)
		Py_RETURN_TRUE;
	switch (err) {
	case ETIMEDOUT:
		Py_RETURN_FALSE;
	case EAGAIN:
		Py_RETURN_TRUE;
	case EINTR:
		if (PyErr_CheckSignals() < 0)
			return NULL;
		Py_RETURN_TRUE;
	default:
		errno = err;
		return PyErr_SetFromErrno(PyExc_OSError);
	}
}

PyDoc_STRVAR(wake_doc, "wake(off, n) -> int\n\n"
	"FUTEX_WAKE (shared): wakes up to n (1 to INT_MAX) waiters on the word at\n"
	"off, and returns how many it woke.");

static PyObject *Words_wake(Words *self, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "wake(off, n)");
		return NULL;
	}
	Py_ssize_t off = PyLong_AsSsize_t(args[0]);
	if (off == -1 && PyErr_Occurred())
		return NULL;
	long n = PyLong_AsLong(args[1]);
	if (n == -1 && PyErr_Occurred())
		return NULL;
	if (n < 1 || n > INT_MAX) {
		PyErr_SetString(PyExc_ValueError, "wake: n out of 1 to INT_MAX");
		return NULL;
	}
	_Atomic uint32_t *p = word(self, off);
	if (p == NULL)
		return NULL;
	long r = syscall(SYS_futex, (uint32_t *)p, FUTEX_WAKE, (int)n, NULL, NULL, 0);
	if (r < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	return PyLong_FromLong(r);
}

static PyObject *Words_len(Words *self, void *Py_UNUSED(closure))
{
	return PyLong_FromSsize_t(self->has_view ? self->view.len : 0);
}

static PyMethodDef Words_methods[] = {
	{"load", (PyCFunction)Words_load, METH_O, load_doc},
	{"store", (PyCFunction)(void (*)(void))Words_store, METH_FASTCALL, store_doc},
	{"stamp", (PyCFunction)(void (*)(void))Words_stamp, METH_FASTCALL, stamp_doc},
	{"cas", (PyCFunction)(void (*)(void))Words_cas, METH_FASTCALL, cas_doc},
	{"fetch_or", (PyCFunction)(void (*)(void))Words_fetch_or, METH_FASTCALL, fetch_or_doc},
	{"wait", (PyCFunction)(void (*)(void))Words_wait, METH_FASTCALL, wait_doc},
	{"wake", (PyCFunction)(void (*)(void))Words_wake, METH_FASTCALL, wake_doc},
	{"release", (PyCFunction)Words_release, METH_NOARGS, release_doc},
	{NULL, NULL, 0, NULL},
};

static PyObject *Words_waiting(Words *self, void *Py_UNUSED(closure))
{
	return PyLong_FromLong(self->waiting);
}

static PyGetSetDef Words_getset[] = {
	{"waiting", (getter)Words_waiting, NULL, "futex waits in flight (in other threads)", NULL},
	{"nbytes", (getter)Words_len, NULL, "the buffer's length, 0 once released", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Words_doc, "Words(buffer)\n\n"
	"The 32-bit words of a writable buffer (an mmap), for atomic access and\n"
	"futex waits. Holds the buffer until release() or its deallocation.");

static PyTypeObject WordsType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmmap._native.Words",
	.tp_basicsize = sizeof(Words),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = Words_doc,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Words_init,
	.tp_dealloc = (destructor)Words_dealloc,
	.tp_methods = Words_methods,
	.tp_getset = Words_getset,
};

/*
 * The ring's ends: Producer and Consumer, subtypes of Words over the ring's
 * mapping that hold one end's positions and do, in one call each, what
 * shmmap.ring does per message: the fast paths of reserve, commit, send,
 * next and release, and one step of a wait. ring.py keeps the rest (the
 * waits' deadlines and liveness checks, opening, closing). The rules are
 * ring/LAYOUT.md's (version 3), check for check as ring/producer.go and
 * ring/consumer.go make them.
 *
 * Hostile peers. The peer may write any word of the segment at any moment.
 * Every shared word is loaded once (an atomic load, so that the compiler
 * cannot load it again) and checked before it is used; every offset into
 * the mapping is (position & mask) + something checked against the
 * capacity, and the constructor checks that header + capacity lies in the
 * buffer. So nothing a peer writes makes this code touch memory outside the
 * mapping. A record's length is compared with what is left of the buffer
 * before it sizes a view or a copy.
 *
 * Lifetimes. The mapping stays while the Words part holds its buffer (until
 * release(), which ring.py calls at close). Each method checks that first.
 * What may run Python code (an allocation may start the garbage collector,
 * whose finalizers may close this end; a memoryview's release; a buffer
 * export) comes before the accesses to the mapping or after the last, or is
 * followed by a new check. The views handed out are slices of base (a
 * memoryview of the whole mapping that ring.py made: read-only for the
 * consumer, writable for the producer), so each holds the mapping as any
 * memoryview does; the end keeps them (views, view) to release them at
 * release, commit, abort, the next reserve, or drop_views (close).
 *
 * Waits. await_* stores the sleeping word, sleeps on the futex with the GIL
 * released for at most the nap ring.py gives, and returns; counted in
 * Words.waiting, so that release() (close) in another thread meanwhile
 * fails rather than unmap under the sleeper.
 */

#define HEADER_SIZE 512u
#define RECORD_HEAD 16u
#define ALIGN 16u
#define OFF_STATE 28
#define OFF_TAIL 128
#define OFF_CONS_SLEEP 132
#define OFF_HEAD 256
#define OFF_PROD_SLEEP 260
#define STATE_PROD_CLOSED 2u
#define STATE_CONS_CLOSED 4u
#define STAMP_KIND 1u
#define KIND_PADDING 1u
#define STAMPED 4u

typedef struct {
	Words w;	     /* the mapping: header + capacity bytes at least */
	uint32_t cap, mask;  /* the capacity, a power of two (64 to 1<<30), and cap - 1 */
	uint32_t pos;	     /* producer: tail (= the shared word, ours alone); consumer: next */
	uint32_t head;	     /* producer: the consumer's head as last seen; consumer: = the shared head */
	uint32_t old;	     /* consumer: the stamp word at next when take() found no record */
	uint32_t seen;	     /* consumer: tail, as await_tail last loaded it */
	Py_ssize_t n;	     /* producer: the reserved message's length, or -1: none */
	uint32_t pad;	     /* producer: the padding record's size before it, or 0 */
	unsigned long wakes; /* FUTEX_WAKEs made by commits and releases, for the tests */
	PyObject *base;	     /* memoryview of the whole mapping, sliced for views */
	PyObject *corrupt;   /* the exception class for what breaks LAYOUT.md's rules */
	PyObject *views;     /* consumer: list of the views of messages taken, not released */
	PyObject *view;	     /* producer: the reservation's view, or NULL */
} End;

static PyObject *str_release; /* "release", interned */
static PyTypeObject ConsumerType;

static inline uint32_t align16(uint32_t n) { return (n + ALIGN - 1) & ~(ALIGN - 1); }

static inline _Atomic uint32_t *at(End *e, size_t off)
{
	return (_Atomic uint32_t *)((char *)e->w.view.buf + off);
}

/* rec_at returns the record head (4 words) at position pos. */
static inline _Atomic uint32_t *rec_at(End *e, uint32_t pos)
{
	return at(e, HEADER_SIZE + (pos & e->mask));
}

static int end_open(End *e)
{
	if (!e->w.has_view) {
		PyErr_SetString(PyExc_ValueError, "ring end: released");
		return 0;
	}
	return 1;
}

/* wake_word makes FUTEX_WAKE (shared) for one waiter on the word at off, if
 * the sleeping word at sleeping is set (LAYOUT.md, "Committing": the
 * sleeper either sees the new value or is seen). Its error is ignored: it
 * can only be EFAULT on a mapping this end holds, i.e. none. */
static void wake_word(End *e, size_t off, size_t sleeping)
{
	if (atomic_load(at(e, sleeping)) != 0) {
		e->wakes++;
		syscall(SYS_futex, (uint32_t *)at(e, off), FUTEX_WAKE, 1, NULL, NULL, 0);
	}
}

/* release_view calls v.release(): a view's bytes are the ring's no more.
 * A view that is exported (a NumPy array over it) raises BufferError and
 * stays, readable memory that the mapping keeps: ignored, as ring.py's
 * close does. memoryview.release raises nothing else. */
static void release_view(PyObject *v)
{
	PyObject *r = PyObject_CallMethodObjArgs(v, str_release, NULL);
	if (r == NULL)
		PyErr_Clear();
	Py_XDECREF(r);
}

/* slice returns base[start:start + n], a new view that holds the mapping. */
static PyObject *slice(End *e, Py_ssize_t start, Py_ssize_t n)
{
	PyObject *lo = PyLong_FromSsize_t(start);
	PyObject *hi = PyLong_FromSsize_t(start + n);
	PyObject *sl = lo && hi ? PySlice_New(lo, hi, NULL) : NULL;
	Py_XDECREF(lo);
	Py_XDECREF(hi);
	if (sl == NULL)
		return NULL;
	PyObject *v = PyObject_GetItem(e->base, sl);
	Py_DECREF(sl);
	return v;
}

/* futex_nap sleeps (FUTEX_WAIT, shared) on the word at off while it holds
 * old, for at most nap seconds (0 to 3600, checked by the caller), with the
 * GIL released; returns 0 if woken or the word did not hold old (EAGAIN),
 * 1 if the nap ran out, 2 on EINTR, -1 with errno for other errors. */
static int futex_nap(End *e, size_t off, uint32_t old, double nap)
{
	struct timespec ts;
	ts.tv_sec = (time_t)nap;
	ts.tv_nsec = (long)((nap - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	if (ts.tv_nsec < 0)
		ts.tv_nsec = 0;
	long r;
	int err;
	e->w.waiting++;
	Py_BEGIN_ALLOW_THREADS
	r = syscall(SYS_futex, (uint32_t *)at(e, off), FUTEX_WAIT, old, &ts, NULL, 0);
	err = errno;
	Py_END_ALLOW_THREADS
	e->w.waiting--;
	if (r == 0 || err == EAGAIN)
		return 0;
	if (err == ETIMEDOUT)
		return 1;
	if (err == EINTR)
		return 2;
	errno = err;
	return -1;
}

/* cpu_relax hints to the CPU that the caller spins on a word. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static double mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* spin_while watches the word at w while it holds old, for at most secs
 * seconds (0 to 1, checked by the caller), with the GIL released and
 * without a system call, and returns whether it moved (ring.py, set_spin;
 * Go's spinWhile). The clock is read every 16 loads. */
static int spin_while(End *e, _Atomic uint32_t *w, uint32_t old, double secs)
{
	int moved = 0;
	e->w.waiting++;
	Py_BEGIN_ALLOW_THREADS
	double end = 0;
	for (unsigned long i = 1;; i++) {
		if (atomic_load(w) != old) {
			moved = 1;
			break;
		}
		cpu_relax();
		if (i % 16 == 0) {
			if (i == 16)
				end = mono_seconds() + secs;
			else if (mono_seconds() >= end)
				break;
		}
	}
	Py_END_ALLOW_THREADS
	e->w.waiting--;
	return moved;
}

/* parse_seconds reads a float of 0 to max seconds from arg into *secs;
 * out of that (NaN included), ValueError with message. */
static int parse_seconds(PyObject *arg, double max, const char *message, double *secs)
{
	*secs = PyFloat_AsDouble(arg);
	if (*secs == -1.0 && PyErr_Occurred())
		return -1;
	if (!(*secs >= 0 && *secs <= max)) {
		PyErr_SetString(PyExc_ValueError, message);
		return -1;
	}
	return 0;
}

static int parse_spin(PyObject *arg, double *secs)
{
	return parse_seconds(arg, 1, "spin out of 0 to 1 seconds", secs);
}

enum { AW_NAPPED = 0, AW_AGAIN = 1, AW_PEER_CLOSED = 2 };

/* await_word is one step of LAYOUT.md's "Waiting, in full": it stores 1 in
 * the sleeping word, returns AW_AGAIN if the word at off no longer holds
 * old, AW_PEER_CLOSED if the peer's closed bit is set, else sleeps for at
 * most nap seconds (not at all for 0), stores 0, and returns AW_AGAIN
 * (woken, or the word moved) or AW_NAPPED. -1 with an exception set: an
 * OS error, or a signal whose handler raised (SIGINT). */
static int await_word(End *e, size_t off, uint32_t old, size_t sleeping, uint32_t closed, double nap)
{
	atomic_store(at(e, sleeping), 1);
	if (atomic_load(at(e, off)) != old) {
		atomic_store(at(e, sleeping), 0);
		return AW_AGAIN;
	}
	if (atomic_load(at(e, OFF_STATE)) & closed) {
		atomic_store(at(e, sleeping), 0);
		return AW_PEER_CLOSED;
	}
	int r = nap > 0 ? futex_nap(e, off, old, nap) : 1; /* 1: as if the nap ran out */
	/* The buffer is still held: release() fails while waiting > 0. */
	atomic_store(at(e, sleeping), 0);
	if (r == -1) {
		PyErr_SetFromErrno(PyExc_OSError);
		return -1;
	}
	if (r == 2) /* EINTR: a handler that raises (SIGINT's) ends the wait */
		return PyErr_CheckSignals() < 0 ? -1 : AW_AGAIN;
	if (r == 0)
		return AW_AGAIN; /* woken */
	return atomic_load(at(e, off)) != old ? AW_AGAIN : AW_NAPPED;
}

static int parse_nap(PyObject *arg, double *nap)
{
	return parse_seconds(arg, 3600, "nap out of 0 to 3600 seconds", nap);
}

/* End(buffer, view, capacity, tail, head, corrupt): see End_doc. */
static int End_init(End *self, PyObject *args, PyObject *kwds)
{
	PyObject *buf, *base, *corrupt;
	unsigned int cap, tail, head;
	static char *kwlist[] = {"buffer", "view", "capacity", "tail", "head", "corrupt", NULL};
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOIIIO:End", kwlist, &buf, &base, &cap, &tail, &head, &corrupt))
		return -1;
	if (cap < 64 || cap > (1u << 30) || (cap & (cap - 1)) != 0) {
		PyErr_Format(PyExc_ValueError, "End: capacity %u", cap);
		return -1;
	}
	if (tail % ALIGN != 0 || head % ALIGN != 0 || (uint32_t)(tail - head) > cap) {
		PyErr_Format(PyExc_ValueError, "End: tail %u and head %u", tail, head);
		return -1;
	}
	if (!PyMemoryView_Check(base)) {
		PyErr_SetString(PyExc_TypeError, "End: view is not a memoryview");
		return -1;
	}
	if (!PyExceptionClass_Check(corrupt)) {
		PyErr_SetString(PyExc_TypeError, "End: corrupt is not an exception class");
		return -1;
	}
	if (words_attach(&self->w, buf) < 0)
		return -1;
	Py_buffer *b = PyMemoryView_GET_BUFFER(base);
	if ((size_t)self->w.view.len < HEADER_SIZE + (size_t)cap || b->buf != self->w.view.buf ||
	    b->len != self->w.view.len || b->ndim != 1 || b->itemsize != 1) {
		self->w.has_view = 0;
		self->w.attached = 0; /* nothing kept: a later init may try again */
		PyBuffer_Release(&self->w.view);
		PyErr_SetString(PyExc_ValueError, "End: buffer shorter than the ring, or view not of all its bytes");
		return -1;
	}
	self->cap = cap;
	self->mask = cap - 1;
	/* A producer starts at tail, a consumer (next) at head. */
	self->pos = Py_TYPE(self) == &ConsumerType ? head : tail;
	self->head = head;
	self->n = -1;
	Py_INCREF(base);
	self->base = base; /* NULL before: words_attach refuses a second init */
	Py_INCREF(corrupt);
	self->corrupt = corrupt;
	return 0;
}

static void End_dealloc(End *self)
{
	Py_CLEAR(self->base);
	Py_CLEAR(self->corrupt);
	Py_CLEAR(self->views);
	Py_CLEAR(self->view);
	Words_dealloc(&self->w);
}

static PyObject *End_wakes(End *self, void *Py_UNUSED(closure))
{
	return PyLong_FromUnsignedLong(self->wakes);
}

static PyObject *End_pos(End *self, void *Py_UNUSED(closure))
{
	return PyLong_FromUnsignedLong(self->pos);
}

static PyObject *End_head(End *self, void *Py_UNUSED(closure))
{
	return PyLong_FromUnsignedLong(self->head);
}

/* ---- Producer ---- */

/* drop_reservation releases the reservation's view, if any, and forgets
 * the reservation. */
static void drop_reservation(End *p)
{
	PyObject *v = p->view;
	p->n = -1;
	if (v != NULL) {
		p->view = NULL;
		release_view(v);
		Py_DECREF(v);
	}
}

/* room reports whether rec bytes after tail are free (1) or not (0), by the
 * head last seen or, if that is too short, by the shared head, loaded once
 * and checked (LAYOUT.md, "The positions are corrupt": a head past tail, or
 * behind it by more than the capacity, would count bytes the consumer has
 * not released as free); -1 with Corrupt set. At 0, head is what the shared
 * word holds: the value to wait on. */
static int room(End *p, uint32_t rec)
{
	while (p->cap - (uint32_t)(p->pos - p->head) < rec) {
		uint32_t h = atomic_load(at(p, OFF_HEAD));
		if (h == p->head)
			return 0;
		if (p->pos % ALIGN != 0 || h % ALIGN != 0 || (uint32_t)(p->pos - h) > p->cap) {
			PyErr_Format(p->corrupt, "ring: tail %u and head %u", p->pos, h);
			return -1;
		}
		p->head = h;
	}
	return 1;
}

/* plan returns the room a message of n bytes (0 to cap - 16) needs after
 * tail, its padding's included, and sets *pad to the padding's size; or,
 * negated, the size of the padding record that must be published alone
 * first, when the padding and the message do not fit in the ring together
 * (LAYOUT.md, "Header and records"). */
static int64_t plan(End *p, uint32_t n, uint32_t *pad)
{
	uint32_t rec = RECORD_HEAD + align16(n);
	uint32_t left = p->cap - (p->pos & p->mask);
	*pad = 0;
	if (rec > left) {
		if (left + rec > p->cap)
			return -(int64_t)left;
		*pad = left;
	}
	return (int64_t)*pad + rec;
}

/* clear_stamp clears the stamp word at pos, the position after the records
 * about to be committed, if its bytes are free by the head last seen; else
 * they are a record that the consumer has not released. */
static void clear_stamp(End *p, uint32_t pos)
{
	if (p->cap - (uint32_t)(pos - p->head) >= RECORD_HEAD)
		atomic_store_explicit(&rec_at(p, pos)[1], 0, memory_order_relaxed);
}

/* stamp writes the head of the record at pos: the length and 8 zero bytes,
 * then the stamp, whose seq_cst store comes after every earlier store of
 * this thread (the record's bytes, the clearing). */
static void stamp(End *p, uint32_t pos, uint32_t n, uint32_t kind)
{
	_Atomic uint32_t *h = rec_at(p, pos);
	atomic_store_explicit(&h[0], n, memory_order_relaxed);
	atomic_store_explicit(&h[2], 0, memory_order_relaxed);
	atomic_store_explicit(&h[3], 0, memory_order_relaxed);
	atomic_store(&h[1], pos | STAMPED | kind);
}

/* publish_tail stores the new tail and wakes a sleeping consumer. */
static void publish_tail(End *p, uint32_t tail)
{
	p->pos = tail;
	atomic_store(at(p, OFF_TAIL), tail);
	wake_word(p, OFF_TAIL, OFF_CONS_SLEEP);
}

/* commit_records commits a message of n bytes after a padding of pad bytes
 * at tail (LAYOUT.md, "Committing"): the clearing, the message's stamp,
 * the padding's, then tail. */
static void commit_records(End *p, uint32_t n, uint32_t pad)
{
	uint32_t t = p->pos, msg = t + pad;
	uint32_t next = msg + RECORD_HEAD + align16(n);
	clear_stamp(p, next);
	stamp(p, msg, n, 0);
	if (pad)
		stamp(p, t, pad - RECORD_HEAD, KIND_PADDING);
	publish_tail(p, next);
}

/* as_length returns o as a message length of 0 to cap - 16, or -1 (with
 * no exception set) if it is not an int or not one of those. */
static Py_ssize_t as_length(End *p, PyObject *o)
{
	if (!PyLong_Check(o))
		return -1;
	Py_ssize_t n = PyLong_AsSsize_t(o);
	if (n == -1 && PyErr_Occurred()) {
		PyErr_Clear();
		return -1;
	}
	return n <= (Py_ssize_t)(p->cap - RECORD_HEAD) ? n : -1;
}

PyDoc_STRVAR(P_reserve_doc, "reserve(n) -> memoryview or None\n\n"
	"Drops the reservation, if any (its view released); then reserves n bytes\n"
	"for the next message and returns them, a writable view, if n is an int\n"
	"of 0 to max_message and the room is free now (with a padding record\n"
	"before it, committed with it, if it needs one); else None, reserving\n"
	"nothing. Raises Corrupt for a head that is no ring position.");

static PyObject *P_reserve(End *p, PyObject *arg)
{
	drop_reservation(p);
	if (!end_open(p))
		return NULL;
	Py_ssize_t n = as_length(p, arg);
	uint32_t pad;
	int64_t need = n < 0 ? -1 : plan(p, (uint32_t)n, &pad);
	if (need < 0)
		Py_RETURN_NONE;
	int r = room(p, (uint32_t)need);
	if (r <= 0)
		return r < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
	uint32_t off = pad ? 0 : p->pos & p->mask;
	/* Last: the allocation may run code; nothing of the mapping after it. */
	PyObject *v = slice(p, HEADER_SIZE + off + RECORD_HEAD, n);
	if (v == NULL)
		return NULL;
	Py_INCREF(v);
	p->view = v; /* NULL: drop_reservation above, and nothing ran since */
	p->n = n;
	p->pad = pad;
	return v;
}

PyDoc_STRVAR(P_need_doc, "need(n) -> int\n\n"
	"For a message of n bytes (0 to max_message): the bytes of room it needs\n"
	"after tail, its padding's included; or, negated, the size of a padding\n"
	"record that must go alone first (pad()), when the two do not fit together.");

static PyObject *P_need(End *p, PyObject *arg)
{
	if (!end_open(p))
		return NULL;
	Py_ssize_t n = as_length(p, arg);
	if (n < 0) {
		PyErr_SetString(PyExc_ValueError, "need: not a message length");
		return NULL;
	}
	uint32_t pad;
	return PyLong_FromLongLong(plan(p, (uint32_t)n, &pad));
}

PyDoc_STRVAR(P_room_doc, "room(rec) -> bool\n\n"
	"Whether rec bytes after tail are free, by the head last seen or else the\n"
	"shared head, loaded once and checked (Corrupt). False: the shared head is\n"
	"the head last seen, what await_head waits on.");

static PyObject *P_room(End *p, PyObject *arg)
{
	if (!end_open(p))
		return NULL;
	unsigned long rec = PyLong_AsUnsignedLong(arg);
	if (rec == (unsigned long)-1 && PyErr_Occurred())
		return NULL;
	if (rec > p->cap) {
		PyErr_SetString(PyExc_ValueError, "room: more than the capacity");
		return NULL;
	}
	int r = room(p, (uint32_t)rec);
	return r < 0 ? NULL : PyBool_FromLong(r);
}

PyDoc_STRVAR(P_pad_doc, "pad()\n\n"
	"Publishes a padding record from tail to the buffer's end alone, and wakes\n"
	"the consumer if it sleeps; for a message that need() says must wait for\n"
	"it. Raises ValueError unless room() for it is true.");

static PyObject *P_pad(End *p, PyObject *Py_UNUSED(ignored))
{
	if (!end_open(p))
		return NULL;
	uint32_t left = p->cap - (p->pos & p->mask);
	if (p->cap - (uint32_t)(p->pos - p->head) < left) {
		PyErr_SetString(PyExc_ValueError, "pad: no room for the padding");
		return NULL;
	}
	drop_reservation(p);
	if (!end_open(p))
		return NULL;
	uint32_t t = p->pos;
	clear_stamp(p, t + left);
	stamp(p, t, left - RECORD_HEAD, KIND_PADDING);
	publish_tail(p, t + left);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(P_commit_doc, "commit(n)\n\n"
	"Commits the first n bytes of the reservation as the next message (LAYOUT.md,\n"
	"\"Committing\"), its view released, and wakes the consumer if it sleeps.\n"
	"ValueError if there is no reservation or n is out of 0 to its length.");

static PyObject *P_commit(End *p, PyObject *arg)
{
	if (!end_open(p))
		return NULL;
	if (p->n < 0) {
		PyErr_SetString(PyExc_ValueError, "ring: commit without reserve");
		return NULL;
	}
	Py_ssize_t n = -1;
	if (PyLong_Check(arg)) {
		n = PyLong_AsSsize_t(arg);
		if (n == -1 && PyErr_Occurred())
			PyErr_Clear();
	}
	if (n < 0 || n > p->n) {
		PyErr_Format(PyExc_ValueError, "ring: commit(%R) of a reservation of %zd bytes", arg, p->n);
		return NULL;
	}
	uint32_t pad = p->pad;
	drop_reservation(p);
	if (!end_open(p))
		return NULL;
	commit_records(p, (uint32_t)n, pad);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(P_abort_doc, "abort()\n\nDrops the reservation, if any, and releases its view.");

static PyObject *P_abort(End *p, PyObject *Py_UNUSED(ignored))
{
	drop_reservation(p);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(P_send_doc, "send(data) -> bool\n\n"
	"Drops the reservation, if any; then, if data is a contiguous buffer of\n"
	"0 to max_message bytes whose room is free now, copies it into the ring,\n"
	"commits it and returns True; else returns False, having sent nothing\n"
	"(ring.py's send then reserves, waiting, and copies). Raises Corrupt for\n"
	"a head that is no ring position.");

static PyObject *P_send(End *p, PyObject *data)
{
	Py_buffer src;
	/* First: an export may run code, which may even close this end. */
	if (PyObject_GetBuffer(data, &src, PyBUF_SIMPLE) < 0) {
		PyErr_Clear(); /* not a contiguous buffer: ring.py says why */
		Py_RETURN_FALSE;
	}
	drop_reservation(p);
	PyObject *ret = Py_False;
	if (!end_open(p)) {
		ret = NULL;
		goto out;
	}
	if (src.len > (Py_ssize_t)(p->cap - RECORD_HEAD))
		goto out;
	uint32_t n = (uint32_t)src.len, pad;
	int64_t need = plan(p, n, &pad);
	if (need < 0)
		goto out;
	int r = room(p, (uint32_t)need);
	if (r <= 0) {
		if (r < 0)
			ret = NULL;
		goto out;
	}
	uint32_t off = pad ? 0 : p->pos & p->mask;
	/* memmove: data may be a view of this very mapping. */
	memmove((char *)at(p, HEADER_SIZE + off + RECORD_HEAD), src.buf, n);
	commit_records(p, n, pad);
	ret = Py_True;
out:
	/* Last: releasing the export may run code too. */
	PyBuffer_Release(&src);
	Py_XINCREF(ret);
	return ret;
}

PyDoc_STRVAR(P_await_doc, "await_head(nap) -> int\n\n"
	"One step of a wait for room (LAYOUT.md, \"Waiting, in full\"), after room()\n"
	"said no: sets the sleeping word, sleeps on head while it holds the head\n"
	"last seen, for at most nap seconds (0: not at all), clears the word.\n"
	"Returns 1 to look again (woken, or head moved), 2 if the consumer has\n"
	"closed, 0 if the nap ran out with nothing new.");

static PyObject *P_await_head(End *p, PyObject *arg)
{
	double nap;
	if (parse_nap(arg, &nap) < 0 || !end_open(p))
		return NULL;
	int r = await_word(p, OFF_HEAD, p->head, OFF_PROD_SLEEP, STATE_CONS_CLOSED, nap);
	return r < 0 ? NULL : PyLong_FromLong(r);
}

PyDoc_STRVAR(P_spin_doc, "spin(secs) -> bool\n\n"
	"Watches head while it holds the head last seen, for at most secs seconds\n"
	"(0 to 1), with the GIL released and no system call; returns whether it\n"
	"moved. For a wait for room, before await_head.");

static PyObject *P_spin(End *p, PyObject *arg)
{
	double secs;
	if (parse_spin(arg, &secs) < 0 || !end_open(p))
		return NULL;
	return PyBool_FromLong(spin_while(p, at(p, OFF_HEAD), p->head, secs));
}

PyDoc_STRVAR(P_moved_doc, "moved() -> bool\n\nWhether the shared head differs from the head last seen.");

static PyObject *P_moved(End *p, PyObject *Py_UNUSED(ignored))
{
	if (!end_open(p))
		return NULL;
	return PyBool_FromLong(atomic_load(at(p, OFF_HEAD)) != p->head);
}

PyDoc_STRVAR(drop_views_doc, "drop_views()\n\n"
	"Releases every view this end handed out and still holds (for close).");

static PyObject *P_drop_views(End *p, PyObject *Py_UNUSED(ignored))
{
	drop_reservation(p);
	Py_RETURN_NONE;
}

/* ---- Consumer ---- */

/* publish_head stores next as the new head, releasing every record taken,
 * and wakes a sleeping producer. */
static void publish_head(End *c)
{
	c->head = c->pos;
	atomic_store(at(c, OFF_HEAD), c->pos);
	wake_word(c, OFF_HEAD, OFF_PROD_SLEEP);
}

PyDoc_STRVAR(C_take_doc, "take() -> memoryview or None\n\n"
	"Takes the record at next if its stamp says it is committed (LAYOUT.md,\n"
	"\"Consuming\"), after checking it (\"A record is corrupt\": Corrupt), and\n"
	"returns the message, a read-only view kept until give(); passes a padding\n"
	"record (released at once if nothing is taken). None: no record yet;\n"
	"await_tail waits for one.");

static PyObject *C_take(End *c, PyObject *Py_UNUSED(ignored))
{
	if (!end_open(c))
		return NULL;
	for (;;) {
		uint32_t next = c->pos, off = next & c->mask;
		_Atomic uint32_t *h = rec_at(c, next);
		uint32_t st = atomic_load(&h[1]);
		if ((st & ~STAMP_KIND) != (next | STAMPED)) {
			c->old = st;
			Py_RETURN_NONE;
		}
		/* Once: a corrupt peer may change it. */
		uint32_t n = atomic_load_explicit(&h[0], memory_order_relaxed);
		if (n > c->cap - off - RECORD_HEAD)
			return PyErr_Format(c->corrupt, "ring: record of %u bytes at %u", n, off);
		uint32_t rec = RECORD_HEAD + align16(n);
		if ((uint32_t)(next + rec - c->head) > c->cap)
			return PyErr_Format(c->corrupt, "ring: record of %u bytes at %u, more than the capacity past head %u",
					    n, next, c->head);
		if ((st & STAMP_KIND) == KIND_PADDING) {
			/* The producer pads only to the buffer's end, never from
			 * its start: any other padding is a peer's, which could
			 * keep this loop going. */
			if (off == 0 || n != c->cap - off - RECORD_HEAD)
				return PyErr_Format(c->corrupt, "ring: padding of %u bytes at %u", n, off);
			c->pos = next + rec;
			if (next == c->head)
				publish_head(c); /* a producer may wait for us to pass it */
			continue;
		}
		/* Last: the allocations may run code; nothing of the mapping after
		 * them. A next that fails takes nothing. */
		PyObject *v = slice(c, HEADER_SIZE + off + RECORD_HEAD, n);
		if (v == NULL)
			return NULL;
		if (c->views == NULL && (c->views = PyList_New(0)) == NULL) {
			Py_DECREF(v);
			return NULL;
		}
		if (PyList_Append(c->views, v) < 0) {
			Py_DECREF(v);
			return NULL;
		}
		c->pos = next + rec;
		return v;
	}
}

/* drop_taken releases the views of the messages taken. */
static void drop_taken(End *c)
{
	PyObject *views = c->views;
	if (views == NULL || PyList_GET_SIZE(views) == 0)
		return;
	c->views = NULL; /* ours while we release them */
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(views); i++)
		release_view(PyList_GET_ITEM(views, i));
	if (c->views == NULL && PyList_SetSlice(views, 0, PyList_GET_SIZE(views), NULL) == 0) {
		c->views = views; /* reused */
		return;
	}
	PyErr_Clear();
	Py_DECREF(views);
}

PyDoc_STRVAR(C_give_doc, "give(strict) -> bool\n\n"
	"Releases every message taken since the last give (their views\n"
	"released) in one store of head, and wakes the producer if it sleeps.\n"
	"With nothing taken: ValueError if strict, else nothing. Returns whether\n"
	"it released.");

static PyObject *C_give(End *c, PyObject *strict)
{
	if (!end_open(c))
		return NULL;
	if (c->pos == c->head) {
		if (PyObject_IsTrue(strict)) {
			PyErr_SetString(PyExc_ValueError, "ring: release without next");
			return NULL;
		}
		Py_RETURN_FALSE;
	}
	drop_taken(c);
	if (!end_open(c))
		return NULL;
	publish_head(c);
	Py_RETURN_TRUE;
}

PyDoc_STRVAR(C_spin_doc, "spin(secs) -> bool\n\n"
	"Watches the stamp word of the record at next while it holds what take()\n"
	"last found there, for at most secs seconds (0 to 1), with the GIL\n"
	"released and no system call; returns whether it changed. For a wait\n"
	"for a record, before await_tail; take() looks at what came.");

static PyObject *C_spin(End *c, PyObject *arg)
{
	double secs;
	if (parse_spin(arg, &secs) < 0 || !end_open(c))
		return NULL;
	return PyBool_FromLong(spin_while(c, &rec_at(c, c->pos)[1], c->old, secs));
}

PyDoc_STRVAR(C_await_doc, "await_tail(nap) -> int\n\n"
	"One step of the wait for the record at next, after take() found none\n"
	"(LAYOUT.md, \"Consuming\", \"End of stream\", \"Waiting, in full\"): loads\n"
	"state, then tail, checked against next (Corrupt); returns 1 to look again\n"
	"if tail has passed next (and the record is stamped, else Corrupt) or the\n"
	"stamp word changed; raises EOFError if the producer had closed; else\n"
	"sleeps on tail for at most nap seconds (0: not at all) and returns 1 to\n"
	"look again, or 0 if the nap ran out with nothing new.");

static PyObject *C_await_tail(End *c, PyObject *arg)
{
	double nap;
	if (parse_nap(arg, &nap) < 0 || !end_open(c))
		return NULL;
	uint32_t next = c->pos, cap = c->cap;
	_Atomic uint32_t *sw = &rec_at(c, next)[1];
	uint32_t closed = atomic_load(at(c, OFF_STATE)) & STATE_PROD_CLOSED;
	uint32_t t = atomic_load(at(c, OFF_TAIL));
	/* tail may be behind next by the records whose stamps this end has
	 * taken, but by no more than the capacity; nor ahead of it by more. */
	if (t % ALIGN != 0 || (uint32_t)(t - next + cap) > 2 * cap)
		return PyErr_Format(c->corrupt, "ring: tail %u and head %u", t, next);
	c->seen = t;
	if ((int32_t)(t - next) > 0) {
		/* Committed, so stamped: the stamp came before tail. */
		uint32_t st = atomic_load(sw);
		if ((st & ~STAMP_KIND) != (next | STAMPED))
			return PyErr_Format(c->corrupt, "ring: no record at %u, before tail %u (stamp 0x%x)", next, t, st);
		return PyLong_FromLong(AW_AGAIN);
	}
	if (atomic_load(sw) != c->old)
		return PyLong_FromLong(AW_AGAIN);
	if (closed) {
		PyErr_SetString(PyExc_EOFError, "ring: end of stream");
		return NULL;
	}
	int r = await_word(c, OFF_TAIL, t, OFF_CONS_SLEEP, STATE_PROD_CLOSED, nap);
	if (r < 0)
		return NULL;
	/* Closed: look again, for the messages before the end. After a nap:
	 * stamped, perhaps, by a producer that died before it stored tail. */
	if (r == AW_PEER_CLOSED || (r == AW_NAPPED && atomic_load(sw) != c->old))
		r = AW_AGAIN;
	return PyLong_FromLong(r);
}

PyDoc_STRVAR(C_moved_doc, "moved() -> bool\n\n"
	"Whether tail differs from what await_tail last loaded, or the stamp word\n"
	"at next from what take() last found.");

static PyObject *C_moved(End *c, PyObject *Py_UNUSED(ignored))
{
	if (!end_open(c))
		return NULL;
	return PyBool_FromLong(atomic_load(at(c, OFF_TAIL)) != c->seen || atomic_load(&rec_at(c, c->pos)[1]) != c->old);
}

static PyObject *C_drop_views(End *c, PyObject *Py_UNUSED(ignored))
{
	drop_taken(c);
	Py_RETURN_NONE;
}

static PyMethodDef Producer_methods[] = {
	{"reserve", (PyCFunction)P_reserve, METH_O, P_reserve_doc},
	{"need", (PyCFunction)P_need, METH_O, P_need_doc},
	{"room", (PyCFunction)P_room, METH_O, P_room_doc},
	{"pad", (PyCFunction)P_pad, METH_NOARGS, P_pad_doc},
	{"commit", (PyCFunction)P_commit, METH_O, P_commit_doc},
	{"abort", (PyCFunction)P_abort, METH_NOARGS, P_abort_doc},
	{"send", (PyCFunction)P_send, METH_O, P_send_doc},
	{"await_head", (PyCFunction)P_await_head, METH_O, P_await_doc},
	{"spin", (PyCFunction)P_spin, METH_O, P_spin_doc},
	{"moved", (PyCFunction)P_moved, METH_NOARGS, P_moved_doc},
	{"drop_views", (PyCFunction)P_drop_views, METH_NOARGS, drop_views_doc},
	{NULL, NULL, 0, NULL},
};

static PyMethodDef Consumer_methods[] = {
	{"take", (PyCFunction)C_take, METH_NOARGS, C_take_doc},
	{"give", (PyCFunction)C_give, METH_O, C_give_doc},
	{"await_tail", (PyCFunction)C_await_tail, METH_O, C_await_doc},
	{"spin", (PyCFunction)C_spin, METH_O, C_spin_doc},
	{"moved", (PyCFunction)C_moved, METH_NOARGS, C_moved_doc},
	{"drop_views", (PyCFunction)C_drop_views, METH_NOARGS, drop_views_doc},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef Producer_getset[] = {
	{"wakes", (getter)End_wakes, NULL, "FUTEX_WAKEs this end made", NULL},
	{"tail", (getter)End_pos, NULL, "tail, as this end stored it", NULL},
	{"head", (getter)End_head, NULL, "the consumer's head, as last seen", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef Consumer_getset[] = {
	{"wakes", (getter)End_wakes, NULL, "FUTEX_WAKEs this end made", NULL},
	{"next", (getter)End_pos, NULL, "the position after the records taken", NULL},
	{"head", (getter)End_head, NULL, "head, as this end stored it", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(End_doc, "(buffer, view, capacity, tail, head, corrupt)\n\n"
	"One end of a ring over buffer (the ring's mmap, header + capacity bytes\n"
	"at least), a Words: view is a memoryview of all of buffer (read-only for\n"
	"a consumer) that it slices for the views it hands out; capacity a power\n"
	"of two, 64 to 1<<30; tail and head the checked positions it starts from\n"
	"(a producer at tail, a consumer at head);\n"
	"corrupt the exception class it raises for what breaks LAYOUT.md's rules.");

static PyTypeObject ProducerType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmmap._native.Producer",
	.tp_basicsize = sizeof(End),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = End_doc,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)End_init,
	.tp_dealloc = (destructor)End_dealloc,
	.tp_methods = Producer_methods,
	.tp_getset = Producer_getset,
};

static PyTypeObject ConsumerType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmmap._native.Consumer",
	.tp_basicsize = sizeof(End),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = End_doc,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)End_init,
	.tp_dealloc = (destructor)End_dealloc,
	.tp_methods = Consumer_methods,
	.tp_getset = Consumer_getset,
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmmap._native",
	.m_doc = "Atomics, futexes and the ring ends' per-message work, for shmmap.ring.",
	.m_size = -1,
};

PyMODINIT_FUNC PyInit__native(void)
{
	ProducerType.tp_base = &WordsType;
	ConsumerType.tp_base = &WordsType;
	if (PyType_Ready(&WordsType) < 0 || PyType_Ready(&ProducerType) < 0 || PyType_Ready(&ConsumerType) < 0)
		return NULL;
	if (str_release == NULL && (str_release = PyUnicode_InternFromString("release")) == NULL)
		return NULL;
	PyObject *m = PyModule_Create(&module);
	if (m == NULL)
		return NULL;
	PyTypeObject *types[] = {&WordsType, &ProducerType, &ConsumerType};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		Py_INCREF(types[i]);
		if (PyModule_AddObject(m, strrchr(types[i]->tp_name, '.') + 1, (PyObject *)types[i]) < 0) {
			Py_DECREF(types[i]);
			Py_DECREF(m);
			return NULL;
		}
	}
	return m;
}
