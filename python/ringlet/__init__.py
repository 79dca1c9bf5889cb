"""ringlet for Python: collectives on numpy arrays through ctypes.

    import numpy as np, ringlet
    with ringlet.Comm() as comm:          # rank, size, address from the launcher
        x = np.full(1000, comm.rank, dtype=np.float32)
        comm.all_reduce(x)                # in place; returns x
        ids = comm.all_gather(np.array([comm.rank]))   # shape (size, 1)

Also reduce_scatter, broadcast, reduce, barrier, all_to_all, send and recv.

Every numpy dtype ringlet has works: int8, uint8, int32, uint32, int64,
uint64, float16, float32, float64; bfloat16 is passed as raw uint16 arrays
with dtype="bfloat16". Failures raise ringlet.Error carrying the status name
and ringlet's detailed message (which rank, which peer, what failed).
Start the processes with ringlet-run, mpirun, srun or torchrun like any other
ringlet program. The shared library is found through RINGLET_LIBRARY, else
the path the build recorded, else the loader's search path.
"""
import ctypes
import os

import numpy as np

try:
    from ._libpath import LIBRARY as _BUILT_LIBRARY
except ImportError:  # pragma: no cover - a copy of the sources without the build's record
    _BUILT_LIBRARY = None

__all__ = ["Comm", "Error", "version", "DTYPES", "OPS"]

# Numbering from include/ringlet.h (part of the ABI).
DTYPES = {"int8": 0, "uint8": 1, "int32": 2, "uint32": 3, "int64": 4, "uint64": 5,
          "float16": 6, "bfloat16": 7, "float32": 8, "float64": 9}
OPS = {"sum": 0, "prod": 1, "min": 2, "max": 3, "avg": 4}
_RL_OK = 0


def _load():
    errors = []
    for cand in (os.environ.get("RINGLET_LIBRARY"), _BUILT_LIBRARY, "libringlet.so.0"):
        if not cand:
            continue
        try:
            return ctypes.CDLL(cand)
        except OSError as e:
            errors.append(str(e))
    raise ImportError("ringlet: cannot load libringlet.so.0 (set RINGLET_LIBRARY): " + "; ".join(errors))


_lib = _load()
_c = ctypes
_lib.rl_strerror.restype = _c.c_char_p
_lib.rl_strerror.argtypes = [_c.c_int]
_lib.rl_status_name.restype = _c.c_char_p
_lib.rl_status_name.argtypes = [_c.c_int]
_lib.rl_version.restype = _c.c_char_p
_lib.rl_comm_last_error.restype = _c.c_char_p
_lib.rl_comm_last_error.argtypes = [_c.c_void_p]
_lib.rl_comm_transport.restype = _c.c_char_p
_lib.rl_comm_transport.argtypes = [_c.c_void_p]
_lib.rl_comm_create.argtypes = [_c.c_void_p, _c.POINTER(_c.c_void_p)]
_lib.rl_comm_destroy.argtypes = [_c.c_void_p]
_lib.rl_comm_rank.argtypes = [_c.c_void_p, _c.POINTER(_c.c_int)]
_lib.rl_comm_size.argtypes = [_c.c_void_p, _c.POINTER(_c.c_int)]
_lib.rl_all_reduce.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int]
_lib.rl_all_gather.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int]
_lib.rl_reduce_scatter.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int]
_lib.rl_broadcast.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int]
_lib.rl_reduce.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _c.c_int]
_lib.rl_barrier.argtypes = [_c.c_void_p]
_lib.rl_all_to_all.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int]
_lib.rl_send.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int]
_lib.rl_recv.argtypes = [_c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int]


class _Opts(ctypes.Structure):
    """rl_comm_opts_t."""
    _fields_ = [("struct_size", _c.c_size_t), ("rank", _c.c_int), ("nranks", _c.c_int),
                ("addr", _c.c_char_p), ("ring_order", _c.POINTER(_c.c_int)), ("timeout_ms", _c.c_int)]


class Error(RuntimeError):
    """A ringlet call failed: .status (int), .name ("RL_ERR_..."), .message."""

    def __init__(self, status, message=""):
        self.status = status
        self.name = _lib.rl_status_name(status).decode()
        text = _lib.rl_strerror(status).decode()
        self.message = message or text
        super().__init__("%s (%s): %s" % (self.name, text, self.message) if message else
                         "%s: %s" % (self.name, text))


def version():
    """Library version, e.g. "0.1.0"."""
    return _lib.rl_version().decode()


def _dtype_code(arr, dtype):
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError("unknown dtype %r (one of %s)" % (dtype, ", ".join(DTYPES)))
        if dtype == "bfloat16" and arr.dtype != np.uint16:
            raise TypeError("bfloat16 data is passed as a uint16 array of raw bits")
        if dtype != "bfloat16" and np.dtype(dtype) != arr.dtype:
            raise TypeError("dtype=%r but the array holds %s" % (dtype, arr.dtype))
        return DTYPES[dtype]
    name = arr.dtype.name
    if name not in DTYPES or arr.dtype.byteorder == ">":
        raise TypeError("ringlet has no %s type (supported: %s; bfloat16 as uint16 with "
                        "dtype=\"bfloat16\")" % (arr.dtype, ", ".join(DTYPES)))
    return DTYPES[name]


def _check_buffer(arr, what, writable=False):
    if not isinstance(arr, np.ndarray):
        raise TypeError("%s must be a numpy array, not %s" % (what, type(arr).__name__))
    if not arr.flags.c_contiguous:
        raise ValueError("%s must be C-contiguous (use np.ascontiguousarray)" % what)
    if writable and not arr.flags.writeable:
        raise ValueError("%s is read-only" % what)


class Comm:
    """A ringlet communicator. Collective: every rank creates it.

    With no arguments rank, size and rank 0's address come from the
    environment (ringlet-run, PMIx, Slurm or torchrun). rank/size/addr give
    them explicitly; timeout_ms overrides RINGLET_TIMEOUT_MS.
    """

    def __init__(self, rank=None, size=None, addr=None, timeout_ms=None):
        self._h = _c.c_void_p()
        opts = None
        if size is not None or addr is not None or timeout_ms is not None:
            if (rank is None) != (size is None):
                raise ValueError("give both rank and size, or neither")
            opts = _Opts(struct_size=_c.sizeof(_Opts), rank=rank or 0, nranks=size or 0,
                         addr=addr.encode() if addr else None, timeout_ms=timeout_ms or 0)
        st = _lib.rl_comm_create(_c.byref(opts) if opts is not None else None, _c.byref(self._h))
        if st != _RL_OK:
            self._h = None
            why = _lib.rl_comm_last_error(None).decode(errors="replace")  # this thread's failed create
            raise Error(st, why or "rl_comm_create failed")
        r, n = _c.c_int(), _c.c_int()
        _lib.rl_comm_rank(self._h, _c.byref(r))
        _lib.rl_comm_size(self._h, _c.byref(n))
        self.rank, self.size = r.value, n.value

    @property
    def transport(self):
        """Transport in use, e.g. "ofi:shm/shm" or "verbs:rxe0:1/gid1"."""
        return _lib.rl_comm_transport(self._live()).decode()

    def _live(self):
        if not self._h:
            raise ValueError("communicator is closed")
        return self._h

    def _raise(self, st, call):
        msg = _lib.rl_comm_last_error(self._h).decode(errors="replace")
        raise Error(st, "%s: %s" % (call, msg) if msg else call)

    def all_reduce(self, send, out=None, op="sum", dtype=None):
        """Reduce `send` over all ranks into `out` (default: in place into send).

        op: sum, prod, min, max, avg (avg: floating types). Returns out.
        """
        h = self._live()
        _check_buffer(send, "send")
        if op not in OPS:
            raise ValueError("unknown op %r (one of %s)" % (op, ", ".join(OPS)))
        code = _dtype_code(send, dtype)
        if out is None:
            out = send
        _check_buffer(out, "out", writable=True)
        if out.dtype != send.dtype or out.size != send.size:
            raise ValueError("out must have send's dtype and size (%s[%d]), not %s[%d]"
                             % (send.dtype, send.size, out.dtype, out.size))
        st = _lib.rl_all_reduce(h, send.ctypes.data, out.ctypes.data, send.size, code, OPS[op])
        if st != _RL_OK:
            self._raise(st, "all_reduce")
        return out

    def all_gather(self, send, out=None, dtype=None):
        """Gather every rank's `send` into out, shape (size,) + send.shape. Returns out."""
        h = self._live()
        _check_buffer(send, "send")
        code = _dtype_code(send, dtype)
        if out is None:
            out = np.empty((self.size,) + send.shape, dtype=send.dtype)
        _check_buffer(out, "out", writable=True)
        if out.dtype != send.dtype or out.size != send.size * self.size:
            raise ValueError("out must hold size x send: %s[%d], not %s[%d]"
                             % (send.dtype, send.size * self.size, out.dtype, out.size))
        st = _lib.rl_all_gather(h, send.ctypes.data, out.ctypes.data, send.size, code)
        if st != _RL_OK:
            self._raise(st, "all_gather")
        return out

    def _same(self, a, b, what):
        if b.dtype != a.dtype or b.size != a.size:
            raise ValueError("%s must match %s[%d], not %s[%d]" % (what, a.dtype, a.size, b.dtype, b.size))

    def reduce_scatter(self, send, out=None, op="sum", dtype=None):
        """send holds size blocks; out (send.size // size elements) gets the
        reduction of block `rank` over all ranks. Returns out."""
        h = self._live()
        _check_buffer(send, "send")
        if op not in OPS:
            raise ValueError("unknown op %r (one of %s)" % (op, ", ".join(OPS)))
        if send.size % self.size:
            raise ValueError("send has %d elements, not a multiple of the %d ranks" % (send.size, self.size))
        code = _dtype_code(send, dtype)
        if out is None:
            out = np.empty(send.size // self.size, dtype=send.dtype)
        _check_buffer(out, "out", writable=True)
        self._same(send[:send.size // self.size], out, "out")
        st = _lib.rl_reduce_scatter(h, send.ctypes.data, out.ctypes.data, out.size, code, OPS[op])
        if st != _RL_OK:
            self._raise(st, "reduce_scatter")
        return out

    def broadcast(self, buf, root=0, dtype=None):
        """Overwrite buf on every rank with root's buf (in place). Returns buf."""
        h = self._live()
        _check_buffer(buf, "buf", writable=True)
        code = _dtype_code(buf, dtype)
        st = _lib.rl_broadcast(h, buf.ctypes.data, buf.ctypes.data, buf.size, code, int(root))
        if st != _RL_OK:
            self._raise(st, "broadcast")
        return buf

    def reduce(self, send, root=0, op="sum", dtype=None):
        """Reduction of send over all ranks: a new array on root, None elsewhere."""
        h = self._live()
        _check_buffer(send, "send")
        if op not in OPS:
            raise ValueError("unknown op %r (one of %s)" % (op, ", ".join(OPS)))
        code = _dtype_code(send, dtype)
        out = np.empty_like(send) if self.rank == root else None
        st = _lib.rl_reduce(h, send.ctypes.data, out.ctypes.data if out is not None else None, send.size, code,
                            OPS[op], int(root))
        if st != _RL_OK:
            self._raise(st, "reduce")
        return out

    def barrier(self):
        """Return once every rank has entered the barrier."""
        st = _lib.rl_barrier(self._live())
        if st != _RL_OK:
            self._raise(st, "barrier")

    def all_to_all(self, send, out=None, dtype=None):
        """Block j of send (send.size // size elements) goes to rank j, which
        keeps it as block `rank` of out. Returns out."""
        h = self._live()
        _check_buffer(send, "send")
        if send.size % self.size:
            raise ValueError("send has %d elements, not a multiple of the %d ranks" % (send.size, self.size))
        code = _dtype_code(send, dtype)
        if out is None:
            out = np.empty_like(send)
        _check_buffer(out, "out", writable=True)
        self._same(send, out, "out")
        st = _lib.rl_all_to_all(h, send.ctypes.data, out.ctypes.data, send.size // self.size, code)
        if st != _RL_OK:
            self._raise(st, "all_to_all")
        return out

    def send(self, buf, peer, dtype=None):
        """Send buf to rank peer; returns once it is in peer's buffer."""
        h = self._live()
        _check_buffer(buf, "buf")
        st = _lib.rl_send(h, buf.ctypes.data, buf.size, _dtype_code(buf, dtype), int(peer))
        if st != _RL_OK:
            self._raise(st, "send")

    def recv(self, buf, peer, dtype=None):
        """Receive into buf from rank peer. Returns buf."""
        h = self._live()
        _check_buffer(buf, "buf", writable=True)
        st = _lib.rl_recv(h, buf.ctypes.data, buf.size, _dtype_code(buf, dtype), int(peer))
        if st != _RL_OK:
            self._raise(st, "recv")
        return buf

    def close(self):
        """Destroy the communicator (also on garbage collection / with-exit)."""
        if self._h:
            _lib.rl_comm_destroy(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None):
            self.close()

    def __repr__(self):
        return "<ringlet.Comm rank %d of %d over %s>" % (
            self.rank, self.size, self.transport if self._h else "(closed)")
