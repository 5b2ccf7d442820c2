/*
 * shmmap._native: what Python cannot do correctly by itself on shared
 * memory, for shmmap.ring: 32-bit atomic loads, stores, compare-and-swap
 * and fetch-or on words of a writable buffer (the ring's mmap), the futex
 * wait and wake on them, and the creator's lock (an open file description
 * lock, as Go's shmmap.CreateNamed takes it).
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
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#define F_OFD_SETLKW 38
#endif

typedef struct {
	PyObject_HEAD
	Py_buffer view;	 /* valid while has_view */
	int has_view;
	int waiting;	 /* futex waits in flight, the GIL released */
} Words;

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

static int Words_init(Words *self, PyObject *args, PyObject *kwds)
{
	PyObject *obj;
	static char *kwlist[] = {"buffer", NULL};
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Words", kwlist, &obj))
		return -1;
	if (self->has_view) {
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
	return 0;
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

/* as_fd returns arg as a file descriptor, or -1 with an exception set. */
static int as_fd(PyObject *arg)
{
	long fd = PyLong_AsLong(arg);
	if (fd == -1 && PyErr_Occurred())
		return -1;
	if (fd < 0 || fd > INT_MAX) {
		PyErr_SetString(PyExc_ValueError, "not a file descriptor");
		return -1;
	}
	return (int)fd;
}

/* ofd_lock(fd, type, cmd): fcntl(fd, cmd, {type, whole file}); EINTR is
 * retried. Returns the lock as the kernel filled it in, for F_OFD_GETLK. */
static int ofd(int fd, short type, int cmd, struct flock *lk)
{
	memset(lk, 0, sizeof *lk);
	lk->l_type = type;
	lk->l_whence = SEEK_SET;
	int r;
	do {
		r = fcntl(fd, cmd, lk);
	} while (r < 0 && errno == EINTR);
	return r;
}

PyDoc_STRVAR(lock_creator_doc, "lock_creator(fd)\n\n"
	"Takes the creator's lock on fd as Go's shmmap.CreateNamed does: an open\n"
	"file description read lock on the whole file (F_OFD_SETLK, F_RDLCK),\n"
	"waited for if a sweeper holds it for a moment. Raises OSError.");

static PyObject *lock_creator(PyObject *Py_UNUSED(m), PyObject *arg)
{
	int fd = as_fd(arg);
	if (fd < 0)
		return NULL;
	struct flock lk;
	int r = ofd(fd, F_RDLCK, F_OFD_SETLK, &lk);
	if (r < 0 && (errno == EAGAIN || errno == EACCES)) {
		Py_BEGIN_ALLOW_THREADS
		r = ofd(fd, F_RDLCK, F_OFD_SETLKW, &lk);
		Py_END_ALLOW_THREADS
	}
	if (r < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(creator_holds_doc, "creator_holds(fd) -> bool or None\n\n"
	"Whether some process holds the creator's lock on fd's file\n"
	"(F_OFD_GETLK for a write lock); None where the kernel does not say.");

static PyObject *creator_holds(PyObject *Py_UNUSED(m), PyObject *arg)
{
	int fd = as_fd(arg);
	if (fd < 0)
		return NULL;
	struct flock lk;
	if (ofd(fd, F_WRLCK, F_OFD_GETLK, &lk) < 0)
		Py_RETURN_NONE;
	return PyBool_FromLong(lk.l_type != F_UNLCK);
}

static PyMethodDef module_methods[] = {
	{"lock_creator", lock_creator, METH_O, lock_creator_doc},
	{"creator_holds", creator_holds, METH_O, creator_holds_doc},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmmap._native",
	.m_doc = "Atomics, futexes and the creator's lock, for shmmap.ring.",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
	if (PyType_Ready(&WordsType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&module);
	if (m == NULL)
		return NULL;
	Py_INCREF(&WordsType);
	if (PyModule_AddObject(m, "Words", (PyObject *)&WordsType) < 0) {
		Py_DECREF(&WordsType);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
