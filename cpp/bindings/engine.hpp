// Engine: the Python-facing owner of one machine, bound in register_engine.cpp.
// It holds a Trainer (model, persistent chains, data, RMSprop state). Inputs are checked and
// converted here, then the GIL is released around every long kernel.
#pragma once
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "convert.hpp"
#include "engine_base.hpp"
#include "interrupt.hpp"
#include "nemm/chain.hpp"
#include "nemm/gradient.hpp"
#include "nemm/kernels.hpp"
#include "nemm/likelihood.hpp"
#include "nemm/model.hpp"
#include "nemm/params.hpp"
#include "nemm/sampling.hpp"
#include "nemm/sparse_rows.hpp"
#include "nemm/trainer.hpp"

namespace nemm::bindings {

// tr: the model, persistent chains, training data and RMSprop state (engine_base.hpp).
class Engine : public EngineBase<Trainer> {
 public:
  Engine(int D, int L, const std::string& hidden, const std::string& normalization, bool centered, bool tied)
      : EngineBase(make_settings(D, L, hidden, normalization, centered, tied)) {}

  static Settings make_settings(int D, int L, const std::string& hidden, const std::string& normalization,
                                bool centered, bool tied) {
    Settings s;
    s.D = D;
    s.L = L;
    s.hidden = parse_hidden(hidden);
    s.normalization = parse_normalization(normalization);
    s.centered = centered;
    s.tied = tied;
    s.validate();
    return s;
  }
  // The gradient estimator of training and approx_gradient: "sampled" (eqs. 16-17 on the sampled
  // hidden states) or "rao_blackwell" (one-hot: every state weighted by Abar(z | x')).
  std::string gradient() const { return settings().rao_blackwell ? "rao_blackwell" : "sampled"; }
  void set_gradient(const std::string& name) {
    if (name != "sampled" && name != "rao_blackwell")
      throw std::invalid_argument("gradient must be 'sampled' or 'rao_blackwell', got '" + name + "'");
    if (name == "rao_blackwell" && settings().hidden != Hidden::OneHot)
      throw std::invalid_argument("the Rao-Blackwellized gradient needs one-hot hidden states");
    tr.model.s.rao_blackwell = name == "rao_blackwell";
  }

  // Shapes checked here; the core assumes them. refresh() rebuilds the float tables.
  void set_params(const Eigen::MatrixXd& w, const Eigen::VectorXd& a, const Eigen::MatrixXd& wbar,
                  const Eigen::VectorXd& abar, const Eigen::VectorXd& xbar) {
    const int D = settings().D, L = settings().L;
    if (w.rows() != D || w.cols() != L) throw std::invalid_argument("w must have shape (D, L)");
    if (a.size() != D) throw std::invalid_argument("a must have shape (D,)");
    if (wbar.rows() != L || wbar.cols() != D) throw std::invalid_argument("wbar must have shape (L, D)");
    if (abar.size() != L) throw std::invalid_argument("abar must have shape (L,)");
    if (xbar.size() != D) throw std::invalid_argument("xbar must have shape (D,)");
    Params& p = tr.model.p;
    p.w = w;
    p.a = a;
    p.wbar = wbar;
    p.abar = abar;
    p.xbar = xbar;
    tr.model.refresh();
  }

  py::dict optimizer_state() const {
    const RMSprop& o = tr.opt;
    py::dict d;
    d["vw"] = Eigen::MatrixXd(o.vw);
    d["va"] = Eigen::VectorXd(o.va);
    d["vwbar"] = Eigen::MatrixXd(o.vwbar);
    d["vabar"] = Eigen::VectorXd(o.vabar);
    return d;
  }

  void set_optimizer_state(const Eigen::MatrixXd& vw, const Eigen::VectorXd& va, const Eigen::MatrixXd& vwbar,
                           const Eigen::VectorXd& vabar) {
    const int D = settings().D, L = settings().L;
    if (vw.rows() != D || vw.cols() != L) throw std::invalid_argument("vw must have shape (D, L)");
    if (va.size() != D) throw std::invalid_argument("va must have shape (D,)");
    if (vwbar.rows() != L || vwbar.cols() != D) throw std::invalid_argument("vwbar must have shape (L, D)");
    if (vabar.size() != L) throw std::invalid_argument("vabar must have shape (L,)");
    auto ok = [](const auto& v) { return v.allFinite() && (v.size() == 0 || v.minCoeff() >= 0.0); };
    if (!ok(vw) || !ok(va) || !ok(vwbar) || !ok(vabar))
      throw std::invalid_argument("RMSprop accumulators must be finite and non-negative");
    tr.opt.vw = vw;
    tr.opt.va = va;
    tr.opt.vwbar = vwbar;
    tr.opt.vabar = vabar;
  }

  void require_chains() const {
    if (tr.chains.size() == 0) throw std::runtime_error("no chains: call reset_chains first");
  }

  // len(sizes) training steps in one call, rolled back on divergence or Ctrl-C (steps_call).
  py::array_t<double> train_steps(const I64Array& rows, const I64Array& sizes, int T, double lr, double rho, double eps,
                                  bool freeze_a, long epoch) {
    require_chains();
    if (T < 1) throw std::invalid_argument("T must be at least 1");
    return steps_call(rows, sizes, epoch, [&](const int64_t* r, long n, double* loglik) {
      return tr.step(r, n, T, lr, rho, eps, freeze_a, loglik);
    });
  }

  py::tuple run_chains(int T) {
    require_chains();
    if (T < 1) throw std::invalid_argument("T must be at least 1");
    {
      py::gil_scoped_release release;
      tr.chains.run(tr.model, T, tr.recording);
    }
    return recording();
  }

  py::tuple recording() const {
    return py::make_tuple(dense_of(tr.recording.spans(), settings().D), states_out(settings(), tr.recording.z));
  }

  py::dict approx_gradient(const U8Array& X, const U8Array& Xp, const py::array& Z) const {
    const int D = settings().D;
    const SparseRows xs = rows_of(X, D, "X"), xps = rows_of(Xp, D, "Xp");
    const std::vector<uint64_t> z = codes_of(settings(), Z);
    if (long(z.size() / std::size_t(state_words(settings()))) != xps.size())
      throw std::invalid_argument("Xp and Z must have the same number of rows");
    Gradient g;
    {
      py::gil_scoped_release release;
      g = nemm::approx_gradient(tr.model, xs.spans(), xps.spans(), z);
    }
    py::dict d;
    d["w"] = g.w;
    d["a"] = g.a;
    d["wbar"] = g.wbar;
    d["abar"] = g.abar;
    d["loglik"] = g.loglik;
    return d;
  }

  RowMatrixXd log_A(const U8Array& X, const py::array& Z) const {
    const SparseRows xs = rows_of(X, settings().D, "X");
    const std::vector<uint64_t> z = codes_of(settings(), Z);
    RowMatrixXd out;
    {
      py::gil_scoped_release release;
      log_forward_kernel(compute_forward_fields(settings(), tr.model.p, z), xs.spans(), out);
    }
    return out;
  }

  // Pieces of rows with a signal check between them; each row's value does not depend on them.
  Eigen::VectorXd log_likelihood(const U8Array& X, const py::array& Z, const Eigen::VectorXd& log_weight) const {
    const SparseRows xs = rows_of(X, settings().D, "X");
    const std::vector<uint64_t> z = codes_of(settings(), Z);
    const long U = long(z.size() / std::size_t(state_words(settings())));
    if (log_weight.size() != Eigen::Index(U))
      throw std::invalid_argument("log_weight must have one entry per hidden state");
    const std::vector<Span> all = xs.spans();
    const long N = long(all.size());
    Eigen::VectorXd out(N);
    bool interrupted = false;
    {
      py::gil_scoped_release release;
      const MixtureLikelihood mixture(tr.model, z, log_weight);
      const long piece = std::max(long(1024), long(1 << 22) / std::max(long(1), U));
      SignalPoll poll;
      for (long n0 = 0; n0 < N; n0 += piece) {
        const long n1 = std::min(N, n0 + piece);
        const std::vector<Span> rows(all.begin() + n0, all.begin() + n1);
        out.segment(n0, n1 - n0) = mixture(rows);
        if (n1 < N && poll.interrupted()) {
          interrupted = true;
          break;
        }
      }
    }
    if (interrupted) throw py::error_already_set();
    return out;
  }

  // Hidden states of fresh chains (nemm/sampling.hpp): codes (n_chains, T), or words
  // (n_chains, T, W) for binary layers of more than 64 units. Ctrl-C raises KeyboardInterrupt,
  // returns nothing.
  py::array_t<uint64_t> hidden_trajectory(long T, int n_chains, uint64_t seed, long burn_in) const {
    if (T < 1 || n_chains < 1 || burn_in < 0) throw std::invalid_argument("need T >= 1, n_chains >= 1, burn_in >= 0");
    const int W = state_words(settings());
    py::array_t<uint64_t> out = W == 1 ? py::array_t<uint64_t>({py::ssize_t(n_chains), py::ssize_t(T)})
                                       : py::array_t<uint64_t>({py::ssize_t(n_chains), py::ssize_t(T), py::ssize_t(W)});
    uint64_t* o = out.mutable_data();
    bool finished;
    {
      py::gil_scoped_release release;
      SignalPoll poll;
      finished = fresh_hidden_trajectory(tr.model, T, n_chains, seed, burn_in, o, poll);
    }
    if (!finished) throw py::error_already_set();
    return out;
  }

  // per_chain samples of each of n_chains fresh chains, `thin` double steps apart: X (n, D) and
  // their hidden states (nemm/sampling.hpp). Ctrl-C raises KeyboardInterrupt, returns nothing.
  py::tuple sample(int n_chains, long per_chain, long burn_in, long thin, uint64_t seed) const {
    if (n_chains < 1 || per_chain < 1 || burn_in < 0 || thin < 1)
      throw std::invalid_argument("need n_chains >= 1, per_chain >= 1, burn_in >= 0, thin >= 1");
    const py::ssize_t n = py::ssize_t(n_chains) * per_chain;
    py::array_t<uint8_t> X({n, py::ssize_t(settings().D)});
    std::vector<uint64_t> z(std::size_t(n) * std::size_t(state_words(settings())));
    bool finished;
    {
      py::gil_scoped_release release;
      SignalPoll poll;
      finished = fresh_samples(tr.model, n_chains, per_chain, burn_in, thin, seed, X.mutable_data(), z.data(), poll);
    }
    if (!finished) throw py::error_already_set();
    return py::make_tuple(X, states_out(settings(), z));
  }
};

}  // namespace nemm::bindings
