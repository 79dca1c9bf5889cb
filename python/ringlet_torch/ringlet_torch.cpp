// ringlet as a torch.distributed backend (PyTorch 1.13 ProcessGroup API).
//
// One rl_comm_t per process group, shared (with a mutex, since a ringlet
// communicator is used by one thread at a time) by the group and by every
// Work it hands out, so a Work outliving its group stays valid. Collectives
// are issued non-blocking (rl_i*); a Work's isCompleted() polls rl_test and
// wait() calls rl_wait, so async_op=True gives real asynchronous work.
// Tensors must be on the CPU; non-contiguous ones go through a contiguous
// copy that is written back when the operation completes.
// Collectives ringlet.h does not offer yet fall back to ProcessGroup's
// defaults, which raise "ProcessGroup ringlet does not support ...".
#include <torch/extension.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "ringlet.h"

namespace {

struct Comm {
    rl_comm_t comm = nullptr;
    std::mutex mu;
    ~Comm()
    {
        if (comm)
            rl_comm_destroy(comm);
    }
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

class RingletWork : public c10d::Work {
  public:
    RingletWork(std::shared_ptr<Comm> c, rl_request_t req, int rank, c10d::OpType type,
                std::vector<at::Tensor> outputs, std::vector<at::Tensor> keep, std::function<void()> on_done)
        : c10d::Work(rank, type), c_(std::move(c)), req_(req), outputs_(std::move(outputs)),
          keep_(std::move(keep)), on_done_(std::move(on_done))
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
        std::lock_guard<std::mutex> g(c_->mu);
        if (!done_) {
            rl_status_t st = rl_test(req_);
            if (st != RL_INPROGRESS)
                complete(st);
        }
        return done_;
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
                complete(st);
            }
        }
        if (exception_)
            std::rethrow_exception(exception_);
        return true;
    }

    std::vector<at::Tensor> result() override { return outputs_; }

  private:
    // Called with the communicator's mutex held, once.
    void complete(rl_status_t st)
    {
        std::exception_ptr e;
        if (st == RL_OK) {
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
    bool done_ = false;
};

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
        TORCH_CHECK(st == RL_OK, "ringlet: rl_comm_create failed on rank ", rank, ": ", rl_status_name(st),
                    " (", rl_strerror(st), "; RINGLET_LOG_LEVEL=info shows why)");
    }

    const std::string getBackendName() const override { return "ringlet"; }

    std::string transport() const { return rl_comm_transport(c_->comm); }

    c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor> &tensors,
                                             const c10d::AllreduceOptions &opts) override
    {
        TORCH_CHECK(tensors.size() == 1, "ringlet: one tensor per process");
        at::Tensor t = tensors[0];
        check_cpu(t);
        rl_dtype_t dt = to_rl(t);
        rl_op_t op = to_rl(opts.reduceOp, t);
        at::Tensor buf = t.is_contiguous() ? t : t.contiguous();
        std::function<void()> done;
        if (!buf.is_same(t))
            done = [t, buf]() mutable { t.copy_(buf); };
        return issue(c10d::OpType::ALLREDUCE, {t}, std::move(done), [&](rl_request_t *req) {
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

    // A one-element all-reduce: returns when every rank has entered.
    c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions &) override
    {
        at::Tensor t = at::zeros({1}, at::kInt);
        return issue(c10d::OpType::BARRIER, {}, nullptr, [&](rl_request_t *req) {
            return rl_iall_reduce(c_->comm, t.data_ptr(), t.data_ptr(), 1, RL_INT32, RL_SUM, req);
        }, {t});
    }

  private:
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
        return c10::make_intrusive<RingletWork>(c_, req, rank_, type, std::move(outputs), std::move(keep),
                                                std::move(done));
    }

    std::shared_ptr<Comm> c_;
};

c10::intrusive_ptr<c10d::ProcessGroup> create(int rank, int size, const std::string &addr, int timeout_ms)
{
    return c10::make_intrusive<ProcessGroupRinglet>(rank, size, addr, timeout_ms);
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
}
