"""One rank of the Python binding test (run under ringlet-run with N ranks).

Every rank computes every rank's input from a formula, so it can check its
results against numpy alone: all_reduce of every dtype (sum in place and out
of place, min/max/prod/avg), bfloat16 as raw uint16, all_gather of every
dtype, reduce_scatter, broadcast, reduce, all_to_all, barrier, send/recv,
Python-side argument errors, then a count mismatch between ranks,
which ringlet must report as ringlet.Error carrying its detailed message.
"""
import sys

import numpy as np

import ringlet

INTS = ["int8", "uint8", "int32", "uint32", "int64", "uint64"]
FLOATS = ["float16", "float32", "float64"]


def inp(r, n, dt, op="sum"):
    i = np.arange(n)
    if op == "prod":
        return ((i + r) % 3 == 0).astype(dt) + 1  # 1s and 2s: exact products
    return ((i * 7 + r * 3) % 11).astype(dt)  # small values: exact in every type


def expect_equal(what, got, want):
    if not np.array_equal(got, want):
        bad = np.flatnonzero(got.ravel() != want.ravel())
        sys.exit("%s: %d wrong, first at %d: %r != %r" % (what, bad.size, bad[0], got.ravel()[bad[0]],
                                                          want.ravel()[bad[0]]))


def bf16_bits(x):
    """float32 -> bfloat16 bits (values here are exact in bfloat16)."""
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def main():
    # A bad setting fails creation with ringlet's explanation, before any network use.
    try:
        ringlet.Comm(rank=0, size=2, addr="no-port-here", timeout_ms=2000)
    except ringlet.Error as e:
        if "no-port-here" not in str(e):
            sys.exit("rl_comm_create error does not say why: %s" % e)
    else:
        sys.exit("a malformed address was accepted")
    comm = ringlet.Comm()
    r, n = comm.rank, comm.size
    ranks = range(n)
    for dt in INTS + FLOATS:
        for count in (1, 1000, 300001):
            x = inp(r, count, dt)
            want = sum(inp(q, count, dt).astype(np.float64) for q in ranks).astype(dt)
            y = comm.all_reduce(x.copy())  # in place
            expect_equal("all_reduce sum %s[%d] in place" % (dt, count), y, want)
            out = np.empty_like(x)
            assert comm.all_reduce(x, out) is out
            expect_equal("all_reduce sum %s[%d]" % (dt, count), out, want)
        for op, f in (("min", np.minimum.reduce), ("max", np.maximum.reduce), ("prod", np.multiply.reduce)):
            x = inp(r, 5000, dt, op)
            want = f([inp(q, 5000, dt, op).astype(np.float64) for q in ranks]).astype(dt)
            expect_equal("all_reduce %s %s" % (op, dt), comm.all_reduce(x.copy(), op=op), want)
        g = comm.all_gather(inp(r, 777, dt).reshape(7, 111))
        assert g.shape == (n, 7, 111), g.shape
        expect_equal("all_gather %s" % dt, g, np.stack([inp(q, 777, dt).reshape(7, 111) for q in ranks]))
    for dt in FLOATS:
        x = inp(r, 4096, dt) * 2
        want = (sum(inp(q, 4096, "float64") * 2 for q in ranks) / n).astype(dt)
        got = comm.all_reduce(x.copy(), op="avg")
        if not np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-3):
            sys.exit("all_reduce avg %s wrong" % dt)
    # bfloat16 as raw bits
    x = bf16_bits(inp(r, 2048, np.float32))
    want = bf16_bits(sum(inp(q, 2048, np.float32) for q in ranks))
    expect_equal("all_reduce sum bfloat16", comm.all_reduce(x.copy(), dtype="bfloat16"), want)
    expect_equal("all_gather bfloat16", comm.all_gather(x, dtype="bfloat16"),
                 np.stack([bf16_bits(inp(q, 2048, np.float32)) for q in ranks]))

    # The rest of the collective set, every dtype, against numpy.
    for dt in INTS + FLOATS:
        blocks = [inp(r * 10 + j, 513, dt) for j in range(n)]
        want = sum(inp(q * 10 + r, 513, dt).astype(np.float64) for q in ranks).astype(dt)
        expect_equal("reduce_scatter %s" % dt, comm.reduce_scatter(np.concatenate(blocks)), want)
        b = inp(r, 700, dt) if r == n - 1 else np.zeros(700, dt)
        expect_equal("broadcast %s" % dt, comm.broadcast(b, root=n - 1), inp(n - 1, 700, dt))
        red = comm.reduce(inp(r, 700, dt), root=0, op="max")
        if r == 0:
            expect_equal("reduce %s" % dt, red, np.maximum.reduce([inp(q, 700, dt) for q in ranks]))
        elif red is not None:
            sys.exit("reduce returned data on a non-root rank")
        got = comm.all_to_all(np.concatenate([inp(r * 10 + j, 300, dt) for j in range(n)]))
        expect_equal("all_to_all %s" % dt, got, np.concatenate([inp(q * 10 + r, 300, dt) for q in ranks]))
    comm.barrier()
    # send/recv round a ring: even ranks send first, odd ranks receive first
    right, left = (r + 1) % n, (r - 1) % n
    got = np.empty(1000, np.float64)
    if r % 2 == 0:
        comm.send(inp(r, 1000, np.float64), right)
        comm.recv(got, left)
    else:
        comm.recv(got, left)
        comm.send(inp(r, 1000, np.float64), right)
    expect_equal("recv from %d" % left, got, inp(left, 1000, np.float64))
    # everyone past its send before the mismatch below fails the group: with
    # the one-step in-host all-reduce two ranks can tell it before a third
    # has seen its send complete, and that send then fails with the group
    comm.barrier()

    # Bad arguments stop in Python, before any rank is involved.
    for call, exc in ((lambda: comm.all_reduce(np.zeros(4, np.complex64)), TypeError),
                      (lambda: comm.all_reduce(np.zeros(4, np.float32), op="xor"), ValueError),
                      (lambda: comm.all_reduce(np.zeros((4, 4), np.float32)[:, 1]), ValueError),
                      (lambda: comm.all_reduce(np.zeros(4, np.float32), np.zeros(5, np.float32)), ValueError),
                      (lambda: comm.all_gather(np.zeros(4, np.int32), np.zeros(4, np.int32)), ValueError),
                      (lambda: comm.all_reduce(np.zeros(4, np.float32), dtype="bfloat16"), TypeError)):
        try:
            call()
        except exc:
            pass
        else:
            sys.exit("no %s for a bad argument" % exc.__name__)

    # Ranks disagree on the count: ringlet refuses, the exception carries why.
    try:
        comm.all_reduce(np.ones(1000 + (r == n - 1), np.float32))
    except ringlet.Error as e:
        print("rank %d: expected error: %s" % (r, e))
        if e.name not in ("RL_ERR_MISMATCH", "RL_ERR_PEER_FAILED") or "rank" not in e.message:
            sys.exit("unexpected error %s: %s" % (e.name, e.message))
    else:
        sys.exit("a count mismatch between ranks was not reported")
    tp = comm.transport
    comm.close()
    print("rank %d of %d: python binding ok over %s (ringlet %s)" % (r, n, tp, ringlet.version()))


if __name__ == "__main__":
    main()
