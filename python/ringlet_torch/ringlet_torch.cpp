// ringlet as a torch.distributed backend (PyTorch 1.13 ProcessGroup API).
//
// One rl_comm_t per process group, shared (with a mutex, since a ringlet
// communicator is used by one thread at a time) by the group and by every
// Work it hands out, so a Work outliving its group stays valid. Collectives
// are issued non-blocking (rl_i*); a Work's isCompleted() polls rl_test and
// wait() calls rl_wait, so async_op=True gives real asynchronous work. Its
// getFuture() completes with the outputs when the operation does: from
// wait()/isCompleted(), or from the group's one progress thread, which polls
// the Works nobody waits on (DDP's reducer waits on futures only).
// Tensors must be on the CPU; non-contiguous ones go through a contiguous
// copy that is written back when the operation completes.
// Everything ringlet.h offers: all_reduce, all_gather, reduce_scatter,
// broadcast, reduce, barrier, all_to_all (equal splits), send/recv. Others
// (gather, scatter, uneven all_to_all) raise "... does not support ...".
#include <torch/extension.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ringlet.h"

namespace {

class RingletWork;

// A communicator shared by a process group and its Works. mu serialises
// every ringlet call on it and guards `pending`: the Works whose future
// nobody drives through wait()/isCompleted(), which the group's one
// progress thread polls (DDP's reducer only waits on getFuture()).
struct Comm {
    rl_comm_t comm = nullptr;
    int timeout_ms = 0;
    std::mutex mu;
    std::condition_variable cv; // the progress thread sleeps on it while nothing is pending
    std::vector<c10::intrusive_ptr<RingletWork>> pending;
    bool stop = false;
    ~Comm();
    std::string why(rl_status_t st)
    {
        const char *d = comm ? rl_comm_last_error(comm) : "";
        return std::string(rl_status_name(st)) + ": " + (d && *d ? d : rl_strerror(st));
    }
};

rl_dtype_t to_rl(const at::Tensor &t)
{
    switch (t.scalar_type()) {
    case at::kChar: return RL_INT8;
    case at::kByte: return RL_UINT8;
    case at::kInt: return RL_INT32;
    case at::kLong: return RL_INT64;
    case at::kHalf: return RL_FLOAT16;
    case at::kBFloat16: return RL_BFLOAT16;
    case at::kFloat: return RL_FLOAT32;
    case at::kDouble: return RL_FLOAT64;
    default: TORCH_CHECK(false, "ringlet: unsupported tensor dtype ", t.scalar_type());
    }
}

rl_op_t to_rl(const c10d::ReduceOp &op, const at::Tensor &t)
{
    switch (static_cast<c10d::ReduceOp::RedOpType>(op)) {
    case c10d::ReduceOp::SUM: return RL_SUM;
    case c10d::ReduceOp::PRODUCT: return RL_PROD;
    case c10d::ReduceOp::MIN: return RL_MIN;
    case c10d::ReduceOp::MAX: return RL_MAX;
    case c10d::ReduceOp::AVG:
        TORCH_CHECK(at::isFloatingType(t.scalar_type()), "ringlet: AVG needs a floating-point tensor");
        return RL_AVG;
    default: TORCH_CHECK(false, "ringlet: unsupported reduce op (supported: SUM, PRODUCT, MIN, MAX, AVG)");
    }
}

void check_cpu(const at::Tensor &t)
{
    TORCH_CHECK(t.device().is_cpu(), "ringlet: tensors must be on the CPU, got ", t.device());
}

// One operation. Whoever sees it finish first (wait(), isCompleted() or
// the progress thread) completes it under the communicator's mutex; its
// future is then settled outside that mutex, because the future's
// callbacks (DDP comm hooks) may issue further collectives.
class RingletWork : public c10d::Work {
  public:
    RingletWork(std::shared_ptr<Comm> c, rl_request_t req, int rank, c10d::OpType type,
                std::vector<at::Tensor> outputs, std::vector<at::Tensor> keep, std::function<void()> on_done)
        : c10d::Work(rank, type), c_(std::move(c)), req_(req), outputs_(std::move(outputs)),
          keep_(std::move(keep)), on_done_(std::move(on_done)),
          future_(c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()))),
          deadline_(std::chrono::steady_clock::now() + std::chrono::milliseconds(c_->timeout_ms))
    {
    }

    ~RingletWork() override
    {
        std::lock_guard<std::mutex> g(c_->mu);
        if (req_) {
            if (!done_)
                rl_wait(req_, -1); // freeing a running request would fail the communicator
            rl_request_free(req_);
        }
    }

    bool isCompleted() override
    {
        bool d;
        {
            std::lock_guard<std::mutex> g(c_->mu);
            d = poll_locked();
        }
        if (d)
            settle();
        return d;
    }

    bool isSuccess() const override { return done_ && !exception_; }

    bool wait(std::chrono::milliseconds timeout) override
    {
        {
            std::lock_guard<std::mutex> g(c_->mu);
            if (!done_) {
                int ms = timeout == ::kNoTimeout ? -1 : static_cast<int>(timeout.count());
                rl_status_t st = rl_wait(req_, ms);
                TORCH_CHECK(st != RL_ERR_TIMEOUT || ms < 0, "ringlet: operation not complete after ", ms, " ms");
                complete(st, "");
            }
        }
        settle();
        if (exception_)
            std::rethrow_exception(exception_);
        return true;
    }

    std::vector<at::Tensor> result() override { return outputs_; }

    c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }

    // With the communicator's mutex held: one rl_test, or the group's
    // deadline for work nobody waits on; true once complete.
    bool poll_locked()
    {
        if (done_)
            return true;
        rl_status_t st = rl_test(req_);
        if (st != RL_INPROGRESS) {
            complete(st, "");
        } else if (c_->timeout_ms > 0 && std::chrono::steady_clock::now() > deadline_) {
            // a collective cannot be abandoned half-way: the whole group fails
            rl_comm_abort(c_->comm);
            complete(RL_ERR_TIMEOUT, "ringlet: " + std::string(c10d::opTypeToString(retrieveOpType())) +
                                         " not complete within the group's timeout of " +
                                         std::to_string(c_->timeout_ms) + " ms; the group is aborted");
        }
        return done_;
    }

    // Without the mutex: complete the future once (callbacks run here).
    void settle()
    {
        if (settled_.exchange(true))
            return;
        if (exception_)
            future_->setError(exception_);
        else
            future_->markCompleted(c10::IValue(outputs_));
    }

  private:
    // Called with the communicator's mutex held, once.
    void complete(rl_status_t st, const std::string &msg)
    {
        std::exception_ptr e;
        if (!msg.empty()) {
            e = std::make_exception_ptr(std::runtime_error(msg));
        } else if (st == RL_OK) {
            try {
                if (on_done_)
                    on_done_();
            } catch (...) {
                e = std::current_exception();
            }
        } else {
            e = std::make_exception_ptr(std::runtime_error("ringlet: " + c_->why(st)));
        }
        done_ = true;
        finish(e); // sets completed_/exception_ and wakes waiters in the base class
    }

    std::shared_ptr<Comm> c_;
    rl_request_t req_;
    std::vector<at::Tensor> outputs_;
    std::vector<at::Tensor> keep_; // buffers ringlet reads or writes: alive while it may
    std::function<void()> on_done_;
    c10::intrusive_ptr<c10::ivalue::Future> future_;
    std::chrono::steady_clock::time_point deadline_;
    bool done_ = false;
    std::atomic<bool> settled_{false};
};

Comm::~Comm()
{
    if (comm)
        rl_comm_destroy(comm);
}

// The group's progress thread: polls pending work, settles what finished,
// and backs off (yield, then sleeps of up to 200 us) while nothing moves, so
// a rank waiting on a future leaves the CPU to the ranks it waits for.
void progress_loop(std::shared_ptr<Comm> c)
{
    std::vector<c10::intrusive_ptr<RingletWork>> done;
    unsigned idle = 0;
    std::unique_lock<std::mutex> lk(c->mu);
    for (;;) {
        c->cv.wait(lk, [&] { return c->stop || !c->pending.empty(); });
        if (c->pending.empty())
            return; // stopping, and everything issued has completed
        auto &p = c->pending;
        for (size_t i = 0; i < p.size();) {
            if (p[i]->poll_locked()) {
                done.push_back(std::move(p[i]));
                p.erase(p.begin() + (std::ptrdiff_t)i);
            } else {
                i++;
            }
        }
        lk.unlock();
        for (auto &w : done)
            w->settle();
        idle = done.empty() ? idle + 1 : 0;
        done.clear(); // may destroy Works, which take the mutex
        if (idle > 200)
            std::this_thread::sleep_for(std::chrono::microseconds(idle > 2000 ? 200 : 20));
        else if (idle > 0)
            std::this_thread::yield();
        lk.lock();
    }
}

class ProcessGroupRinglet : public c10d::ProcessGroup {
  public:
    ProcessGroupRinglet(int rank, int size, const std::string &addr, int timeout_ms)
        : c10d::ProcessGroup(rank, size), c_(std::make_shared<Comm>())
    {
        rl_comm_opts_t o{};
        o.struct_size = sizeof(o);
        o.rank = rank;
        o.nranks = size;
        o.addr = addr.empty() ? nullptr : addr.c_str();
        o.timeout_ms = timeout_ms;
        rl_status_t st = rl_comm_create(&o, &c_->comm);
        TORCH_CHECK(st == RL_OK, "ringlet: rl_comm_create failed on rank ", rank, ": ", rl_status_name(st), ": ",
                    rl_comm_last_error(nullptr));
        c_->timeout_ms = timeout_ms;
        progress_ = std::thread(progress_loop, c_);
    }

    // Work still pending completes (or fails at its deadline) first.
    ~ProcessGroupRinglet() override
    {
        {
            std::lock_guard<std::mutex> g(c_->mu);
            c_->stop = true;
        }
        c_->cv.notify_one();
        progress_.join();
    }

    const std::string getBackendName() const override { return "ringlet"; }

    std::string transport() const { return rl_comm_transport(c_->comm); }
    std::shared_ptr<Comm> comm() const { return c_; }

    c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor> &tensors,
                                             const c10d::AllreduceOptions &opts) override
    {
        TORCH_CHECK(tensors.size() == 1, "ringlet: one tensor per process");
        at::Tensor t = tensors[0];
        check_cpu(t);
        rl_dtype_t dt = to_rl(t);
        rl_op_t op = to_rl(opts.reduceOp, t);
        at::Tensor buf = dense(t);
        return issue(c10d::OpType::ALLREDUCE, {t}, copy_back(t, buf), [&](rl_request_t *req) {
            return rl_iall_reduce(c_->comm, buf.data_ptr(), buf.data_ptr(), (size_t)buf.numel(), dt, op, req);
        }, {buf});
    }

    c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>> &outputs,
                                             std::vector<at::Tensor> &inputs,
                                             const c10d::AllgatherOptions &) override
    {
        TORCH_CHECK(inputs.size() == 1 && outputs.size() == 1, "ringlet: one tensor per process");
        at::Tensor in = inputs[0].contiguous();
        std::vector<at::Tensor> outs = outputs[0];
        check_cpu(in);
        TORCH_CHECK((int)outs.size() == size_, "ringlet: all_gather needs ", size_, " output tensors");
        for (auto &o : outs) {
            check_cpu(o);
            TORCH_CHECK(o.scalar_type() == in.scalar_type() && o.numel() == in.numel(),
                        "ringlet: all_gather outputs must match the input's dtype and size");
        }
        rl_dtype_t dt = to_rl(in);
        at::Tensor flat = at::empty({(int64_t)size_ * in.numel()}, in.options());
        auto done = [outs, flat, n = in.numel()]() mutable {
            for (size_t r = 0; r < outs.size(); r++)
                outs[r].copy_(flat.narrow(0, (int64_t)r * n, n).view(outs[r].sizes()));
        };
        return issue(c10d::OpType::ALLGATHER, outs, done, [&](rl_request_t *req) {
            return rl_iall_gather(c_->comm, in.data_ptr(), flat.data_ptr(), (size_t)in.numel(), dt, req);
        }, {in, flat});
    }

    c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor &out, at::Tensor &in,
                                                   const c10d::AllgatherOptions &) override
    {
        check_cpu(in);
        check_cpu(out);
        TORCH_CHECK(out.is_contiguous() && out.scalar_type() == in.scalar_type() &&
                        out.numel() == (int64_t)size_ * in.numel(),
                    "ringlet: _allgather_base needs a contiguous output of size x input elements");
        at::Tensor src = in.contiguous();
        rl_dtype_t dt = to_rl(src);
        return issue(c10d::OpType::_ALLGATHER_BASE, {out}, nullptr, [&](rl_request_t *req) {
            return rl_iall_gather(c_->comm, src.data_ptr(), out.data_ptr(), (size_t)src.numel(), dt, req);
        }, {src});
    }

    c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions &) override
    {
        return issue(c10d::OpType::BARRIER, {}, nullptr, [&](rl_request_t *req) { return rl_ibarrier(c_->comm, req); });
    }

    c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor> &tensors,
                                             const c10d::BroadcastOptions &opts) override
    {
        TORCH_CHECK(tensors.size() == 1, "ringlet: one tensor per process");
        at::Tensor t = tensors[0], buf = dense(t);
        rl_dtype_t dt = to_rl(buf);
        int root = root_of(opts.rootRank);
        return issue(c10d::OpType::BROADCAST, {t}, copy_back(t, buf), [&](rl_request_t *req) {
            return rl_ibroadcast(c_->comm, buf.data_ptr(), buf.data_ptr(), (size_t)buf.numel(), dt, root, req);
        }, {buf});
    }

    // Only the root's tensor changes, as with gloo; its input is kept intact
    // until the result is complete.
    c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor> &tensors, const c10d::ReduceOptions &opts) override
    {
        TORCH_CHECK(tensors.size() == 1, "ringlet: one tensor per process");
        at::Tensor t = tensors[0], in = t.contiguous();
        check_cpu(t);
        rl_dtype_t dt = to_rl(in);
        rl_op_t op = to_rl(opts.reduceOp, in);
        int root = root_of(opts.rootRank);
        at::Tensor out = rank_ == root ? at::empty_like(in) : at::Tensor();
        std::function<void()> done;
        if (rank_ == root)
            done = [t, out]() mutable { t.copy_(out); };
        return issue(c10d::OpType::REDUCE, {t}, std::move(done), [&](rl_request_t *req) {
            return rl_ireduce(c_->comm, in.data_ptr(), out.defined() ? out.data_ptr() : nullptr, (size_t)in.numel(),
                              dt, op, root, req);
        }, {in, out.defined() ? out : in});
    }

    c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor> &outputs,
                                                  std::vector<std::vector<at::Tensor>> &inputs,
                                                  const c10d::ReduceScatterOptions &opts) override
    {
        TORCH_CHECK(outputs.size() == 1 && inputs.size() == 1, "ringlet: one tensor per process");
        at::Tensor out = outputs[0];
        check_cpu(out);
        TORCH_CHECK((int)inputs[0].size() == size_, "ringlet: reduce_scatter needs ", size_, " input tensors");
        std::vector<at::Tensor> flat_in;
        for (auto &i : inputs[0]) {
            check_cpu(i);
            TORCH_CHECK(i.scalar_type() == out.scalar_type() && i.numel() == out.numel(),
                        "ringlet: reduce_scatter inputs must match the output's dtype and size");
            flat_in.push_back(i.reshape({-1}));
        }
        at::Tensor in = at::cat(flat_in), buf = dense(out);
        rl_dtype_t dt = to_rl(buf);
        rl_op_t op = to_rl(opts.reduceOp, buf);
        return issue(c10d::OpType::REDUCE_SCATTER, {out}, copy_back(out, buf), [&](rl_request_t *req) {
            return rl_ireduce_scatter(c_->comm, in.data_ptr(), buf.data_ptr(), (size_t)buf.numel(), dt, op, req);
        }, {in, buf});
    }

    c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(at::Tensor &out, at::Tensor &in,
                                                        const c10d::ReduceScatterOptions &opts) override
    {
        check_cpu(in);
        TORCH_CHECK(in.scalar_type() == out.scalar_type() && in.numel() == (int64_t)size_ * out.numel(),
                    "ringlet: reduce_scatter_tensor needs an input of size x output elements");
        at::Tensor src = in.contiguous(), buf = dense(out);
        rl_dtype_t dt = to_rl(buf);
        rl_op_t op = to_rl(opts.reduceOp, buf);
        return issue(c10d::OpType::_REDUCE_SCATTER_BASE, {out}, copy_back(out, buf), [&](rl_request_t *req) {
            return rl_ireduce_scatter(c_->comm, src.data_ptr(), buf.data_ptr(), (size_t)buf.numel(), dt, op, req);
        }, {src, buf});
    }

    // all_to_all_single: equal splits only (ringlet's all-to-all moves
    // blocks of one size).
    c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor &out, at::Tensor &in, std::vector<int64_t> &out_splits,
                                                 std::vector<int64_t> &in_splits,
                                                 const c10d::AllToAllOptions &) override
    {
        check_cpu(in);
        TORCH_CHECK(in.scalar_type() == out.scalar_type() && in.numel() == out.numel() && in.numel() % size_ == 0,
                    "ringlet: all_to_all_single needs input and output of one dtype and size, divisible by ",
                    size_);
        int64_t block = in.numel() / size_, rows = in.dim() ? in.size(0) : 1;
        for (auto *splits : {&out_splits, &in_splits})
            for (int64_t v : *splits)
                TORCH_CHECK(v * (in.numel() / std::max<int64_t>(rows, 1)) == block,
                            "ringlet: all_to_all_single supports equal splits only");
        at::Tensor src = in.contiguous(), buf = dense(out);
        rl_dtype_t dt = to_rl(buf);
        return issue(c10d::OpType::ALLTOALL_BASE, {out}, copy_back(out, buf), [&](rl_request_t *req) {
            return rl_iall_to_all(c_->comm, src.data_ptr(), buf.data_ptr(), (size_t)block, dt, req);
        }, {src, buf});
    }

    c10::intrusive_ptr<c10d::Work> alltoall(std::vector<at::Tensor> &outputs, std::vector<at::Tensor> &inputs,
                                            const c10d::AllToAllOptions &) override
    {
        TORCH_CHECK((int)outputs.size() == size_ && (int)inputs.size() == size_, "ringlet: all_to_all needs ",
                    size_, " input and output tensors");
        std::vector<at::Tensor> flat;
        for (int r = 0; r < size_; r++) {
            check_cpu(inputs[r]);
            check_cpu(outputs[r]);
            TORCH_CHECK(inputs[r].scalar_type() == inputs[0].scalar_type() &&
                            outputs[r].scalar_type() == inputs[0].scalar_type() &&
                            inputs[r].numel() == inputs[0].numel() && outputs[r].numel() == inputs[0].numel(),
                        "ringlet: all_to_all supports tensors of one dtype and size only");
            flat.push_back(inputs[r].reshape({-1}));
        }
        at::Tensor src = at::cat(flat), dst = at::empty_like(src);
        rl_dtype_t dt = to_rl(src);
        int64_t n = inputs[0].numel();
        std::vector<at::Tensor> outs = outputs;
        auto done = [outs, dst, n]() mutable {
            for (size_t r = 0; r < outs.size(); r++)
                outs[r].copy_(dst.narrow(0, (int64_t)r * n, n).view(outs[r].sizes()));
        };
        return issue(c10d::OpType::ALLTOALL, outs, done, [&](rl_request_t *req) {
            return rl_iall_to_all(c_->comm, src.data_ptr(), dst.data_ptr(), (size_t)n, dt, req);
        }, {src, dst});
    }

    // Point-to-point: torch's tag t is ringlet's tag (uint32_t)t, so tag 0
    // (torch's default) is ringlet's tag-less send/recv and negative tags
    // wrap. A send meets the earliest receive of its tag from its sender;
    // messages of one (peer, tag) keep their order.
    c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor> &tensors, int dst, int tag) override
    {
        TORCH_CHECK(tensors.size() == 1, "ringlet: one tensor per send");
        at::Tensor t = tensors[0].contiguous();
        check_cpu(t);
        rl_dtype_t dt = to_rl(t);
        TORCH_CHECK(dst >= 0 && dst < size_ && dst != rank_, "ringlet: send to invalid rank ", dst);
        return issue(c10d::OpType::SEND, {}, nullptr, [&](rl_request_t *req) {
            return rl_isend_tag(c_->comm, t.data_ptr(), (size_t)t.numel(), dt, dst, (uint32_t)tag, req);
        }, {t});
    }

    c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor> &tensors, int src, int tag) override
    {
        TORCH_CHECK(tensors.size() == 1, "ringlet: one tensor per recv");
        at::Tensor t = tensors[0], buf = dense(t);
        rl_dtype_t dt = to_rl(buf);
        TORCH_CHECK(src >= 0 && src < size_ && src != rank_, "ringlet: recv from invalid rank ", src);
        return issue(c10d::OpType::RECV, {t}, copy_back(t, buf), [&](rl_request_t *req) {
            return rl_irecv_tag(c_->comm, buf.data_ptr(), (size_t)buf.numel(), dt, src, (uint32_t)tag, req);
        }, {buf});
    }

    // A receive announces its buffer to one sender (clear-to-send), so there
    // is no receive from any source.
    c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor> &, int) override
    {
        TORCH_CHECK(false, "ringlet: recv from any source (src=None) is not supported: pass src=");
    }

  private:
    int root_of(int64_t r) const
    {
        TORCH_CHECK(r >= 0 && r < size_, "ringlet: root ", r, " is not a rank of this group of ", size_);
        return (int)r;
    }

    // A contiguous tensor ringlet can write, and the copy back into t when
    // that is not t itself.
    static at::Tensor dense(const at::Tensor &t)
    {
        check_cpu(t);
        return t.is_contiguous() ? t : t.contiguous();
    }
    static std::function<void()> copy_back(at::Tensor t, at::Tensor buf)
    {
        if (buf.is_same(t))
            return nullptr;
        return [t, buf]() mutable { t.copy_(buf); };
    }

    template <typename Start>
    c10::intrusive_ptr<c10d::Work> issue(c10d::OpType type, std::vector<at::Tensor> outputs,
                                         std::function<void()> done, Start start,
                                         std::vector<at::Tensor> keep = {})
    {
        rl_request_t req = nullptr;
        rl_status_t st;
        {
            std::lock_guard<std::mutex> g(c_->mu);
            st = start(&req);
        }
        TORCH_CHECK(st == RL_OK, "ringlet: ", c_->why(st));
        auto w = c10::make_intrusive<RingletWork>(c_, req, rank_, type, std::move(outputs), std::move(keep),
                                                  std::move(done));
        {
            std::lock_guard<std::mutex> g(c_->mu);
            c_->pending.push_back(w);
        }
        c_->cv.notify_one();
        return w;
    }

    std::shared_ptr<Comm> c_;
    std::thread progress_;
};

// Every live communicator, so a process dying of an uncaught exception can
// abort them: peers then fail at once instead of waiting for its teardown.
std::mutex live_mu;
std::vector<std::weak_ptr<Comm>> live;

c10::intrusive_ptr<c10d::ProcessGroup> create(int rank, int size, const std::string &addr, int timeout_ms)
{
    auto pg = c10::make_intrusive<ProcessGroupRinglet>(rank, size, addr, timeout_ms);
    std::lock_guard<std::mutex> g(live_mu);
    live.push_back(pg->comm());
    return pg;
}

void abort_all()
{
    std::lock_guard<std::mutex> g(live_mu);
    for (auto &w : live)
        if (auto c = w.lock())
            rl_comm_abort(c->comm); // safe from any thread, without the comm's mutex
    live.clear();
}

std::string transport_of(const c10::intrusive_ptr<c10d::ProcessGroup> &pg)
{
    auto *r = dynamic_cast<ProcessGroupRinglet *>(pg.get());
    TORCH_CHECK(r, "not a ringlet process group");
    return r->transport();
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.doc() = "ringlet process group for torch.distributed (import ringlet_torch registers it)";
    m.def("create", &create, "Create a ringlet ProcessGroup (collective over the group)", py::arg("rank"),
          py::arg("size"), py::arg("addr"), py::arg("timeout_ms"));
    m.def("transport", &transport_of, "Transport a ringlet ProcessGroup uses");
    m.def("version", []() { return std::string(rl_version()); });
    m.def("abort_all", &abort_all, "rl_comm_abort every live ringlet communicator of this process");
}
