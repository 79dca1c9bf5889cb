"""One rank of the DDP test, run under ringlet-run (3 ranks).

Stock torch.nn.parallel.DistributedDataParallel trains a small smooth CNN
(tanh and average pooling: no ReLU, whose kinks turn last-bit differences of
a sum into different gradients) for 30 steps, once over a ringlet group and
once over a gloo group, from the same seed and the same data; the final
parameters must agree (rtol 1e-6, atol 1e-7). That is repeated for each
option: default buckets, bucket_cap_mb 1 and 200, find_unused_parameters,
gradient_as_bucket_view, static_graph, no_sync, the fp16 compression hook,
Join with uneven inputs, and ZeroRedundancyOptimizer. The fp16 hook sums
float16 values, rounded after every addition, and ringlet's ring adds the
ranks' values in another order than gloo's, so there the bound is float16's
(rtol 1e-3, atol 1e-4: a few float16 ulps, compounded over 30 steps;
measured 749x the float32 bound). A work object's
future must also complete with the output tensors (and fail with an error).
"""
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.join import Join
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

import ringlet_torch

STEPS = 30


class Net(nn.Module):
    def __init__(self, unused=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        # about 2.3 MB of parameters: several buckets at bucket_cap_mb=1
        self.fc1 = nn.Linear(256, 640)
        self.fc2 = nn.Linear(640, 640)
        self.fc3 = nn.Linear(640, 10)
        self.unused = nn.Linear(10, 10) if unused else None

    def forward(self, x):
        x = self.pool(torch.tanh(self.conv1(x)))
        x = self.pool(torch.tanh(self.conv2(x)))
        x = torch.tanh(self.fc1(x.flatten(1)))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    os._exit(1)


def batch(rank, step):
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)


def train(group, opt_name, rank, size):
    """30 steps of DDP with option opt_name over group; the final parameters
    and the mean step time (s)."""
    torch.manual_seed(1234)
    model = Net(unused=opt_name == "find_unused_parameters")
    kw = {"process_group": group}
    if opt_name.startswith("bucket_cap_mb"):
        kw["bucket_cap_mb"] = int(opt_name.split("=")[1])
    elif opt_name in ("find_unused_parameters", "gradient_as_bucket_view", "static_graph"):
        kw[opt_name] = True
    ddp = DDP(model, **kw)
    if opt_name == "fp16_compress_hook":
        ddp.register_comm_hook(group, default_hooks.fp16_compress_hook)
    if opt_name == "zero":
        opt = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=torch.optim.SGD, process_group=group,
                                      lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(k):
        x, y = batch(rank, k)
        opt.zero_grad()
        if opt_name == "no_sync":  # two local micro-batches, the third synchronises
            with ddp.no_sync():
                for j in (1, 2):
                    xs, ys = batch(rank, 100 + 10 * k + j)
                    loss_fn(ddp(xs), ys).backward()
        loss_fn(ddp(x), y).backward()
        opt.step()

    dist.barrier(group=group)
    t0 = time.perf_counter()
    if opt_name == "join":  # uneven inputs: rank r runs STEPS - 3r steps
        with Join([ddp]):
            for k in range(STEPS - 3 * rank):
                step(k)
    else:
        for k in range(STEPS):
            step(k)
    dist.barrier(group=group)
    dt = (time.perf_counter() - t0) / STEPS
    return [p.detach().clone() for p in model.parameters()], dt


def check_futures(rank, size):
    t = torch.full((1000,), float(rank + 1))
    fut = dist.all_reduce(t, async_op=True).get_future()
    got = fut.wait()
    want = float(sum(range(1, size + 1)))
    if not isinstance(got, list) or len(got) != 1 or not torch.equal(got[0], torch.full((1000,), want)):
        fail("all_reduce future value %r, expected [tensor of %g]" % (got, want))
    # then(): a callback chained on a future completed by the progress thread
    t = torch.ones(10)
    chained = dist.all_reduce(t, async_op=True).get_future().then(lambda f: f.value()[0] * 2)
    if not torch.equal(chained.wait(), torch.full((10,), 2.0 * size)):
        fail("chained future wrong: %s" % chained.wait())
    outs = [torch.empty(3) for _ in range(size)]
    v = dist.all_gather(outs, torch.full((3,), float(rank)), async_op=True).get_future().wait()
    if [int(x[0]) for x in v] != list(range(size)):
        fail("all_gather future value wrong: %s" % v)
    dist.barrier(async_op=True).get_future().wait()


def check_future_error(rank, size):
    """Ranks disagree on the count: the future ends with ringlet's error."""
    t = torch.ones(5 if rank == 0 else 7)
    fut = dist.all_reduce(t, async_op=True).get_future()
    try:
        fut.wait()
    except RuntimeError as e:
        if "ringlet" not in str(e):
            fail("future error without ringlet's message: %s" % e)
        return
    fail("a mismatched all_reduce's future completed without an error")


def main():
    rank, size = int(os.environ["RINGLET_RANK"]), int(os.environ["RINGLET_SIZE"])
    port = int(os.environ["RINGLET_ADDR"].rsplit(":", 1)[1])
    torch.set_num_threads(1)
    dist.init_process_group("ringlet", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=size)
    gloo = dist.new_group(backend="gloo")
    check_futures(rank, size)
    options = [a for a in sys.argv[1:] if not a.startswith("--")] or ["default", "bucket_cap_mb=1", "bucket_cap_mb=200", "find_unused_parameters",
                               "gradient_as_bucket_view", "static_graph", "no_sync", "fp16_compress_hook", "join",
                               "zero"]
    for o in options:
        got, t_rl = train(dist.group.WORLD, o, rank, size)
        want, t_gloo = train(gloo, o, rank, size)
        rtol, atol = (1e-3, 1e-4) if o == "fp16_compress_hook" else (1e-6, 1e-7)
        worst = max(((g - w).abs() / (atol + rtol * w.abs())).max().item() for g, w in zip(got, want))
        if not all(torch.allclose(g, w, rtol=rtol, atol=atol) for g, w in zip(got, want)):
            fail("DDP %s: parameters differ from gloo's (worst |diff| / (atol + rtol |ref|) = %.3g)" % (o, worst))
        # and training moved them: the test compares something
        torch.manual_seed(1234)
        init = list(Net(unused=o == "find_unused_parameters").parameters())
        if all(torch.equal(g, i) for g, i in zip(got, init)):
            fail("DDP %s: parameters did not change" % o)
        if rank == 0:
            print("DDP %-24s matches gloo (worst %.3g of the tolerance), step %.2f ms vs gloo %.2f ms"
                  % (o, worst, t_rl * 1e3, t_gloo * 1e3), flush=True)
    if "--no-error" not in sys.argv:
        check_future_error(rank, size)
    print("rank %d: DDP over ringlet matches gloo for %d options" % (rank, len(options)), flush=True)
    os._exit(0)  # the group failed on purpose (future error test): no teardown handshake


if __name__ == "__main__":
    main()
