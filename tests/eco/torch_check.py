"""One rank of the PyTorch backend test, run under ringlet-run (N ranks).

The default group is ringlet (init_process_group("ringlet")); a gloo group
over the same ranks computes the reference. Every supported dtype and op of
all_reduce, all_gather (list and all_gather_into_tensor forms), non-contiguous
tensors, async work objects waited out of order, barrier, and the errors for
unsupported dtypes and collectives; then broadcast, reduce, reduce_scatter,
all_to_all and send/recv. Where gloo has no kernel (AVG, reduce_scatter,
some dtypes), the reference is computed locally from every rank's formula.
"""
import os
import sys

import torch
import torch.distributed as dist

import ringlet_torch

DTYPES = [torch.int8, torch.uint8, torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32,
          torch.float64]
OPS = {"sum": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT, "min": dist.ReduceOp.MIN,
       "max": dist.ReduceOp.MAX}


def inp(r, n, dt, op="sum"):
    i = torch.arange(n, dtype=torch.int64)
    v = ((i + r) % 3 == 0).long() + 1 if op == "prod" else (i * 7 + r * 3) % 11
    return v.to(dt)


def fail(msg):
    # Exit at once: the other ranks see this rank fail and end with an error.
    print(msg, file=sys.stderr, flush=True)
    os._exit(1)


def same(what, got, want):
    if not torch.equal(got, want):
        bad = (got != want).nonzero()
        fail("%s: %d elements differ from the reference, first %s: %s vs %s" % (
            what, bad.shape[0], bad[0].tolist(), got[tuple(bad[0])].item(), want[tuple(bad[0])].item()))


def reference(fn, fallback):
    """gloo's answer, or the formula's where gloo has no kernel; (result, from_gloo)."""
    try:
        return fn(), True
    except RuntimeError:
        return fallback(), False


def other_collectives(rank, size, dt, gloo):
    """broadcast, reduce, reduce_scatter (list and tensor), all_to_all (single
    and list) of one dtype; returns the number of checks."""
    n = 999
    root = size - 1
    # broadcast from the last rank
    a = inp(rank, n, dt)
    dist.broadcast(a, root)
    same("broadcast %s" % dt, a, inp(root, n, dt))
    # reduce to the last rank: only the root's tensor changes
    a = inp(rank, n, dt)
    dist.reduce(a, root, op=dist.ReduceOp.MAX)
    want = torch.stack([inp(q, n, dt) for q in range(size)]).max(0).values if rank == root else inp(rank, n, dt)
    b, _ = reference(lambda: (lambda t: (dist.reduce(t, root, op=dist.ReduceOp.MAX, group=gloo), t)[1])(
        inp(rank, n, dt)), lambda: want)
    if rank == root:  # gloo leaves partial results in the other ranks' tensors
        same("reduce %s" % dt, a, b)
    same("reduce %s (formula)" % dt, a, want)
    # reduce_scatter: block `rank` of the sum
    blocks = [inp(rank * 10 + j, n, dt) for j in range(size)]
    out = torch.empty(n, dtype=dt)
    dist.reduce_scatter(out, blocks)
    want = sum(inp(q * 10 + rank, n, torch.float64) for q in range(size)).to(dt)
    same("reduce_scatter %s" % dt, out, want)
    out2 = torch.empty(n, dtype=dt)
    dist.reduce_scatter_tensor(out2, torch.cat(blocks))
    same("reduce_scatter_tensor %s" % dt, out2, want)
    # all_to_all: block j of rank r goes to rank j as block r
    src = torch.cat([inp(rank * 10 + j, n, dt) for j in range(size)])
    dst = torch.empty_like(src)
    dist.all_to_all_single(dst, src)
    want = torch.cat([inp(q * 10 + rank, n, dt) for q in range(size)])
    ref, _ = reference(lambda: (lambda t: (dist.all_to_all_single(t, src, group=gloo), t)[1])(torch.empty_like(src)),
                       lambda: want)
    same("all_to_all_single %s" % dt, dst, ref)
    same("all_to_all_single %s (formula)" % dt, dst, want)
    outs = [torch.empty(n, dtype=dt) for _ in range(size)]
    dist.all_to_all(outs, [inp(rank * 10 + j, n, dt) for j in range(size)])
    same("all_to_all %s" % dt, torch.cat(outs), want)
    return 6, int(rank == root) + 1


def main():
    if "MASTER_PORT" not in os.environ:  # ringlet-run without --torch
        rank, size = int(os.environ["RINGLET_RANK"]), int(os.environ["RINGLET_SIZE"])
        port = int(os.environ["RINGLET_ADDR"].rsplit(":", 1)[1])  # free port ringlet-run picked
        dist.init_process_group("ringlet", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=size)
    else:  # torchrun's variables (torchrun, or ringlet-run --torch): env://
        dist.init_process_group("ringlet")
        rank, size = dist.get_rank(), dist.get_world_size()
        assert (rank, size) == (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
        assert (os.environ["LOCAL_RANK"], os.environ["LOCAL_WORLD_SIZE"]) == (str(rank), str(size)), \
            (os.environ["LOCAL_RANK"], os.environ["LOCAL_WORLD_SIZE"])
        if "RINGLET_RANK" in os.environ:  # ringlet-run --torch: the same rank, another port
            assert os.environ["RINGLET_RANK"] == os.environ["RANK"]
            assert os.environ["RINGLET_ADDR"].rsplit(":", 1)[1] != os.environ["MASTER_PORT"]
    gloo = dist.new_group(backend="gloo")
    assert dist.get_backend() == "ringlet", dist.get_backend()
    checked = vs_gloo = 0
    for dt in DTYPES:
        for op_name, op in OPS.items():
            for n in (1, 1000, 70001):
                a = inp(rank, n, dt, op_name)
                b = a.clone()
                dist.all_reduce(a, op=op)
                try:
                    dist.all_reduce(b, op=op, group=gloo)
                    vs_gloo += 1
                except RuntimeError:  # no gloo kernel for this dtype: reference from the formulas
                    ref = [inp(q, n, torch.float64, op_name) for q in range(size)]
                    f = {"sum": sum, "prod": lambda xs: torch.stack(xs).prod(0),
                         "min": lambda xs: torch.stack(xs).min(0).values,
                         "max": lambda xs: torch.stack(xs).max(0).values}[op_name]
                    b = f(ref).to(dt)
                same("all_reduce %s %s[%d]" % (op_name, dt, n), a, b)
                checked += 1
        # all_gather, list form
        x = inp(rank, 3000, dt).view(30, 100)
        outs = [torch.empty_like(x) for _ in range(size)]
        refs = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(outs, x)
        try:
            dist.all_gather(refs, x, group=gloo)
            vs_gloo += 2
        except RuntimeError:  # gloo has no all_gather for this dtype
            refs = [inp(q, 3000, dt).view(30, 100) for q in range(size)]
        for q in range(size):
            same("all_gather %s from %d" % (dt, q), outs[q], refs[q])
        # _all_gather_base: one flat output
        flat = torch.empty(size * 3000, dtype=dt)
        dist.all_gather_into_tensor(flat, x.flatten())
        same("all_gather_into_tensor %s" % dt, flat, torch.cat([r.flatten() for r in refs]))
        checked += 2
    for dt in DTYPES:
        c, g = other_collectives(rank, size, dt, gloo)
        checked, vs_gloo = checked + c, vs_gloo + g
    for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        a = inp(rank, 4096, dt) * 2
        dist.all_reduce(a, op=dist.ReduceOp.AVG)
        want = (sum(inp(q, 4096, torch.float64) * 2 for q in range(size)) / size).to(dt)
        if not torch.allclose(a.double(), want.double(), rtol=1e-2):
            fail("all_reduce avg %s wrong" % dt)
    # non-contiguous input: a column of a matrix
    m = inp(rank, 200, torch.float32).view(20, 10) + 0
    col, ref = m[:, 3], m[:, 3].clone()
    dist.all_reduce(col)
    dist.all_reduce(ref, group=gloo)
    same("all_reduce of a non-contiguous view", m[:, 3], ref)
    # async work objects, waited in reverse order
    ts = [inp(rank, 100000, torch.float32) + k for k in range(4)]
    works = [dist.all_reduce(t, async_op=True) for t in ts]
    for w in reversed(works):
        w.wait()
    assert all(w.is_completed() for w in works)
    for k, t in enumerate(ts):
        same("async all_reduce %d" % k, t, sum(inp(q, 100000, torch.float32) + k for q in range(size)))
    w = dist.all_gather([torch.empty(5) for _ in range(size)], torch.full((5,), float(rank)), async_op=True)
    w.wait()
    if [int(t[0]) for t in w.result()] != list(range(size)):
        fail("async all_gather result() wrong: %s" % w.result())
    dist.barrier()
    # point-to-point: a ring exchange, posted non-blocking so nobody waits on a send
    right, left = (rank + 1) % size, (rank - 1) % size
    got = torch.empty(1000, dtype=torch.float64)
    reqs = [dist.isend(inp(rank, 1000, torch.float64), right), dist.irecv(got, left)]
    for q in reqs:
        q.wait()
    same("send/recv from %d" % left, got, inp(left, 1000, torch.float64))
    # tags: isend tags 1 and 2, irecv them in the other order; then three
    # messages of one tag interleaved with another tag's, received tag by
    # tag: the same posting pattern over gloo gives the reference
    for g, name in ((None, "ringlet"), (gloo, "gloo")):
        pay = {t: [inp(rank * 100 + t * 10 + k, 777, torch.float32) for k in range(3)] for t in (1, 2)}
        got = {t: [torch.empty(777) for _ in range(3)] for t in (1, 2)}
        reqs = [dist.irecv(got[2][k], left, group=g, tag=2) for k in range(3)]
        reqs += [dist.irecv(got[1][k], left, group=g, tag=1) for k in range(3)]
        for k in range(3):
            reqs += [dist.isend(pay[1][k], right, group=g, tag=1), dist.isend(pay[2][k], right, group=g, tag=2)]
        for q in reqs:
            q.wait()
        for t in (1, 2):
            for k in range(3):
                same("%s: tag %d message %d from %d" % (name, t, k, left), got[t][k],
                     inp(left * 100 + t * 10 + k, 777, torch.float32))
    try:
        dist.recv(torch.zeros(3))
    except RuntimeError as e:
        if "any source" not in str(e):
            fail("recv(src=None) error without its cause: %s" % e)
    else:
        fail("recv(src=None) did not raise")
    # errors
    for call, text in ((lambda: dist.all_reduce(torch.zeros(4, dtype=torch.bool)), "unsupported tensor dtype"),
                       (lambda: dist.all_to_all_single(torch.zeros(size * 2), torch.zeros(size * 2),
                                                       [1] * (size - 1) + [size + 1], [2] * size),
                        "equal splits"),
                       (lambda: dist.scatter(torch.zeros(4), [torch.zeros(4)] * size if rank == 0 else None, 0),
                        "does not support")):
        try:
            call()
        except RuntimeError as e:
            if text not in str(e):
                fail("unexpected error text: %s" % e)
        else:
            fail("no error where one was due (%s)" % text)
    print("rank %d of %d: torch backend ok, %d checks (%d against gloo, the rest against the formulas where "
          "gloo has no kernel), transport %s, torch %s" % (rank, size, checked, vs_gloo, ringlet_torch.transport(),
                                                          torch.__version__))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
