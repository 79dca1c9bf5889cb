"""ringlet as a torch.distributed backend.

    import torch.distributed as dist
    import ringlet_torch                      # registers the "ringlet" backend
    dist.init_process_group("ringlet")        # under torchrun, or with init_method=...

CPU tensors of dtype int8, uint8, int32, int64, float16, bfloat16, float32
and float64: all_reduce (SUM, PRODUCT, MIN, MAX, AVG), all_gather,
all_gather_into_tensor, reduce_scatter, reduce_scatter_tensor, broadcast,
reduce, barrier, all_to_all, all_to_all_single (equal splits), send/recv,
blocking or with async_op=True; gather and scatter raise "does not support".
Rank 0 publishes its rendezvous
address through the process group's store, so no RINGLET_* variable is
needed; RINGLET_* tuning variables apply as usual.

Teardown of a ringlet group waits, up to the group's timeout, until every
rank tears down too. A rank that dies of an uncaught exception aborts its
groups instead (the peers fail at once); one that leaves with sys.exit()
(or os._exit()) while others run collectives makes them fail at once too,
naming it.
"""
import os
import socket
import sys

import torch
import torch.distributed as dist

from . import _C

__all__ = ["transport", "version"]


def _my_ip():
    """Address peers can reach this host at: the interface that routes to
    MASTER_ADDR (where the store is), else the host name's address."""
    master = os.environ.get("MASTER_ADDR")
    if master:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((master, 9))  # no packet is sent for a UDP connect
                return s.getsockname()[0]
        except OSError:
            pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _create(store, rank, size, timeout):
    addr = ""
    if size > 1:
        if rank == 0:
            port = _free_port()
            store.set("ringlet/addr", "%s:%d" % (_my_ip(), port))
            addr = "0.0.0.0:%d" % port  # listen on every interface
        else:
            addr = store.get("ringlet/addr").decode()
    ms = int(timeout.total_seconds() * 1000) if timeout else 0
    return _C.create(rank, size, addr, max(ms, 0))


def transport(group=None):
    """Transport of a ringlet process group, e.g. "ofi:shm/shm"."""
    pg = group if group is not None else dist.distributed_c10d._get_default_group()
    return _C.transport(pg)


def version():
    return _C.version()


def _abort_on_uncaught(kind, value, tb, _previous=sys.excepthook):
    # A ringlet communicator's teardown waits (up to the group's timeout) for
    # its peers; a rank dying of an exception aborts instead, so the peers'
    # operations fail at once naming it.
    try:
        _C.abort_all()
    finally:
        _previous(kind, value, tb)


if "RINGLET" not in dist.Backend._plugins:
    dist.Backend.register_backend("ringlet", _create)
    sys.excepthook = _abort_on_uncaught
