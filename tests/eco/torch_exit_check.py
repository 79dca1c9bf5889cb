"""Exits that must not hang a ringlet torch group (3 ranks, one process each).

A rank leaves in the middle of a loop of all_reduces while the others go on:
  sys.exit  a caught exception, then sys.exit(1) (the group's teardown runs
            from the interpreter's exit, as under torch.multiprocessing.spawn)
  _exit     os._exit(1): no teardown at all, the socket just closes
The leaving process must be gone within 5 s, and every other rank's next
all_reduce must raise within 5 s naming the rank that left (the group's
timeout is 20 s, so a test that waited for it would fail).

    python3 torch_exit_check.py [--rank R --port P --how H --t0-file F]
"""
import os
import subprocess
import sys
import time

N, LEAVER, TIMEOUT_S, BOUND_S = 3, 1, 20, 5.0


def worker(rank, port, how, stamp):
    import datetime
    import torch
    import torch.distributed as dist
    import ringlet_torch  # noqa: F401  registers the backend
    dist.init_process_group("ringlet", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=N,
                            timeout=datetime.timedelta(seconds=TIMEOUT_S))
    t = torch.ones(1000)
    for i in range(100000):
        if rank == LEAVER and i == 50:
            with open(stamp, "w") as f:
                f.write(repr(time.time()))
            if how == "_exit":
                os._exit(1)
            try:
                raise ValueError("a bug in the training step")
            except ValueError:
                sys.exit(1)
        try:
            dist.all_reduce(t)
        except RuntimeError as e:
            print("RAISED %r %s" % (time.time(), str(e).replace("\n", " ")), flush=True)
            os._exit(0)
    print("NO ERROR", flush=True)
    os._exit(2)


def trial(how):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stamp = "/tmp/torch-exit-%d-%s" % (os.getpid(), how)
    procs = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), "--port", str(port), "--how", how,
                               "--t0-file", stamp], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(N)]
    ok = True
    outs = {}
    for r, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=TIMEOUT_S + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            print("%s: rank %d hung" % (how, r))
            ok = False
        outs[r] = (p.returncode, out, err, time.time())
    t0 = float(open(stamp).read())
    os.unlink(stamp)
    gone = outs[LEAVER][3] - t0
    print("%s: the leaving rank %d was gone %.2f s after it left (exit %s)" % (how, LEAVER, gone, outs[LEAVER][0]))
    ok &= gone <= BOUND_S + 1 and outs[LEAVER][0] == 1
    for r in range(N):
        code, out, err, _ = outs[r]
        if r == LEAVER:
            continue
        line = [ln for ln in out.splitlines() if ln.startswith("RAISED ")]
        if not line:
            print("%s: rank %d did not raise (exit %s): %s %s" % (how, r, code, out[-300:], err[-600:]))
            ok = False
            continue
        t, msg = float(line[0].split()[1]), line[0].split(" ", 2)[2]
        good = t - t0 <= BOUND_S and "rank %d" % LEAVER in msg
        print("%s: rank %d raised %.2f s after rank %d left: %s%s" % (
            how, r, t - t0, LEAVER, msg[:300], "" if good else "  <-- WRONG"))
        ok &= good
    return ok


def main():
    if "--rank" in sys.argv:
        a = sys.argv
        worker(int(a[a.index("--rank") + 1]), int(a[a.index("--port") + 1]), a[a.index("--how") + 1],
               a[a.index("--t0-file") + 1])
        return
    if "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__)
        return
    ok = True
    for how in ("sys.exit", "_exit"):
        ok &= trial(how)
    print("torch_exit_check:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
