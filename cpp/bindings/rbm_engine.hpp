// RBMEngine: the Python-facing owner of one equilibrium RBM (nemm/rbm.hpp), bound in
// register_rbm.cpp, as Engine (engine.hpp) is of one machine. It holds an RBMTrainer (model,
// persistent chains, data, optimizer state). Inputs are checked and converted here, then the GIL
// is released around every long kernel; training steps are rolled back on divergence or Ctrl-C.
#pragma once
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "convert.hpp"
#include "engine_base.hpp"
#include "interrupt.hpp"
#include "nemm/rbm.hpp"
#include "nemm/rbm_sampling.hpp"

namespace nemm::bindings {

inline py::dict gradient_dict(const RBMGradient& g) {
  py::dict d;
  d["w"] = g.w;
  d["a"] = g.a;
  d["abar"] = g.abar;
  d["loglik"] = g.loglik;
  return d;
}

// tr: the model, persistent chains, training data and optimizer state (engine_base.hpp).
class RBMEngine : public EngineBase<RBMTrainer> {
 public:
  RBMEngine(int D, int L, const std::string& hidden) : EngineBase(rbm_settings(D, L, parse_hidden(hidden))) {}

  void require_enumerable() const {
    if (rbm_n_states(settings()) > std::ldexp(1.0, 24))
      throw std::invalid_argument("exact enumeration of the hidden layer is limited to 2^24 states");
  }

  void require_chains() const {
    if (tr.chains.size() == 0) throw std::runtime_error("no persistent chains: call reset_chains first");
  }

  void set_params(const Eigen::MatrixXd& w, const Eigen::VectorXd& a, const Eigen::VectorXd& abar,
                  const Eigen::VectorXd& xbar) {
    const int D = settings().D, L = settings().L;
    if (w.rows() != D || w.cols() != L) throw std::invalid_argument("w must have shape (D, L)");
    if (a.size() != D) throw std::invalid_argument("a must have shape (D,)");
    if (abar.size() != L) throw std::invalid_argument("abar must have shape (L,)");
    if (xbar.size() != D) throw std::invalid_argument("xbar must have shape (D,)");
    Params& p = tr.model.p;
    p.w = w;
    p.a = a;
    p.abar = abar;
    p.xbar = xbar;
    tr.model.refresh();  // wbar = w^T (tied)
  }

  // Adam moments (m*) and second moments / RMSprop accumulators (v*), the step count t (Adam's
  // bias correction) and the centering offset lambda (empty until a centered step): with the
  // chains, everything a step reads besides the parameters and the data.
  py::dict optimizer_state() const {
    const RBMOptimizer& o = tr.opt;
    py::dict d;
    d["t"] = o.t;
    d["mw"] = Eigen::MatrixXd(o.mw);
    d["vw"] = Eigen::MatrixXd(o.vw);
    d["ma"] = Eigen::VectorXd(o.ma);
    d["va"] = Eigen::VectorXd(o.va);
    d["mh"] = Eigen::VectorXd(o.mh);
    d["vh"] = Eigen::VectorXd(o.vh);
    d["lambda"] = Eigen::VectorXd(tr.lambda);
    return d;
  }

  void set_optimizer_state(long t, const Eigen::MatrixXd& mw, const Eigen::MatrixXd& vw, const Eigen::VectorXd& ma,
                           const Eigen::VectorXd& va, const Eigen::VectorXd& mh, const Eigen::VectorXd& vh,
                           const Eigen::VectorXd& lambda) {
    const int D = settings().D, L = settings().L;
    if (t < 0) throw std::invalid_argument("optimizer step count t must be non-negative");
    if (mw.rows() != D || mw.cols() != L || vw.rows() != D || vw.cols() != L)
      throw std::invalid_argument("mw and vw must have shape (D, L)");
    if (ma.size() != D || va.size() != D) throw std::invalid_argument("ma and va must have shape (D,)");
    if (mh.size() != L || vh.size() != L) throw std::invalid_argument("mh and vh must have shape (L,)");
    if (lambda.size() != 0 && lambda.size() != L) throw std::invalid_argument("lambda must have shape (L,) or (0,)");
    auto finite = [](const auto& v) { return v.allFinite(); };
    auto nonneg = [](const auto& v) { return v.allFinite() && (v.size() == 0 || v.minCoeff() >= 0.0); };
    if (!finite(mw) || !finite(ma) || !finite(mh) || !finite(lambda))
      throw std::invalid_argument("optimizer moments and lambda must be finite");
    if (!nonneg(vw) || !nonneg(va) || !nonneg(vh))
      throw std::invalid_argument("second moments must be finite and non-negative");
    RBMOptimizer& o = tr.opt;
    o.t = t;
    o.mw = mw;
    o.vw = vw;
    o.ma = ma;
    o.va = va;
    o.mh = mh;
    o.vh = vh;
    tr.lambda = lambda;
  }

  void set_optimizer(const std::string& name, double lr, double b1, double b2, double rho, double eps) {
    if (name != "adam" && name != "rmsprop") throw std::invalid_argument("optimizer must be 'adam' or 'rmsprop'");
    if (!(lr > 0) || !(eps > 0) || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) || !(rho >= 0 && rho < 1))
      throw std::invalid_argument("need lr > 0, eps > 0 and beta1, beta2, rho in [0, 1)");
    RBMOptimizer& o = tr.opt;
    o.adam = name == "adam";
    o.lr = lr;
    o.b1 = b1;
    o.b2 = b2;
    o.rho = rho;
    o.eps = eps;
  }

  void reset_optimizer() {
    tr.opt.reset(settings().D, settings().L);
    tr.lambda.resize(0);
  }

  // len(sizes) training steps in one call, rolled back on divergence or Ctrl-C (steps_call): the
  // parameters, optimizer, centering offset and chains.
  py::array_t<double> train_steps(const I64Array& rows, const I64Array& sizes, const std::string& gradient, int k,
                                  bool centered, double center_rate, long epoch) {
    if (gradient != "exact" && gradient != "pcd") throw std::invalid_argument("gradient must be 'exact' or 'pcd'");
    const bool exact = gradient == "exact";
    if (exact) require_enumerable();
    if (!exact) require_chains();
    if (!exact && k < 1) throw std::invalid_argument("pcd_steps must be at least 1");
    if (!(center_rate > 0 && center_rate <= 1)) throw std::invalid_argument("center_rate must lie in (0, 1]");
    return steps_call(rows, sizes, epoch, [&](const int64_t* r, long n, double* loglik) {
      return tr.step(r, n, exact, k, centered, center_rate, loglik);
    });
  }

  double log_partition() const {
    require_enumerable();
    py::gil_scoped_release release;
    return enumerate_hidden(tr.model, false).log_Z;
  }

  Eigen::VectorXd log_likelihood(const U8Array& X) const {
    require_enumerable();
    const SparseRows xs = rows_of(X, settings().D, "X");
    py::gil_scoped_release release;
    return rbm_log_likelihood(tr.model, xs.spans());
  }

  py::dict exact_gradient(const U8Array& X) const {
    require_enumerable();
    const SparseRows xs = rows_of(X, settings().D, "X");
    if (xs.size() == 0) throw std::invalid_argument("X must have at least one row");
    RBMGradient g;
    {
      py::gil_scoped_release release;
      g = rbm_exact_gradient(tr.model, xs.spans());
    }
    return gradient_dict(g);
  }

  py::dict pcd_gradient(const U8Array& X, int k) {
    require_chains();
    if (k < 1) throw std::invalid_argument("k must be at least 1");
    const SparseRows xs = rows_of(X, settings().D, "X");
    if (xs.size() == 0) throw std::invalid_argument("X must have at least one row");
    RBMGradient g;
    {
      py::gil_scoped_release release;
      g = rbm_pcd_gradient(tr.model, tr.chains, tr.recording, xs.spans(), k, false);
    }
    return gradient_dict(g);
  }
  // Parallel tempering (nemm/rbm_sampling.hpp): per_chain samples of each of n_chains chains from
  // the rung beta = 1, `thin` sweeps apart after burn_in sweeps, with the ladder `betas` (betas[0]
  // = 1) tempered towards the product-Bernoulli reference of log-odds `ref`. Returns X (n, D), the
  // hidden states, and the accepted and attempted swaps per neighbour pair. Ctrl-C raises
  // KeyboardInterrupt.
  py::tuple pt_sample(const std::vector<double>& betas, const Eigen::VectorXd& ref, int n_chains, long per_chain,
                      long burn_in, long thin, uint64_t seed) const {
    if (n_chains < 1 || per_chain < 1 || burn_in < 0 || thin < 1)
      throw std::invalid_argument("need n_chains >= 1, per_chain >= 1, burn_in >= 0, thin >= 1");
    const TemperedModels t(tr.model, betas, ref);
    const py::ssize_t n = py::ssize_t(n_chains) * per_chain;
    py::array_t<uint8_t> X({n, py::ssize_t(settings().D)});
    std::vector<uint64_t> z(std::size_t(n) * std::size_t(state_words(settings())));
    std::vector<long> accepted, attempted;
    bool finished;
    {
      py::gil_scoped_release release;
      SignalPoll poll;
      finished = pt_samples(t, n_chains, per_chain, burn_in, thin, seed, X.mutable_data(), z.data(), accepted,
                            attempted, poll);
    }
    if (!finished) throw py::error_already_set();
    return py::make_tuple(X, states_out(settings(), z), accepted, attempted);
  }

  // ln of the unnormalized p(h) of every hidden state, in state order (nemm/rbm_sampling.hpp).
  Eigen::VectorXd hidden_log_weights() const {
    require_enumerable();
    std::vector<double> lw;
    {
      py::gil_scoped_release release;
      lw = nemm::hidden_log_weights(tr.model);
    }
    return Eigen::Map<const Eigen::VectorXd>(lw.data(), Eigen::Index(lw.size()));
  }

  // n i.i.d. draws: h from its exact p(h), then x | h (nemm/rbm_sampling.hpp). Returns X (n, D) and
  // the hidden states. Ctrl-C raises KeyboardInterrupt.
  py::tuple exact_sample(long n, uint64_t seed) const {
    require_enumerable();
    if (n < 1) throw std::invalid_argument("need n >= 1");
    py::array_t<uint8_t> X({py::ssize_t(n), py::ssize_t(settings().D)});
    std::vector<uint64_t> z(n);
    bool finished;
    {
      py::gil_scoped_release release;
      const std::vector<double> lw = nemm::hidden_log_weights(tr.model);
      SignalPoll poll;
      finished = exact_samples(tr.model, lw, n, seed, X.mutable_data(), z.data(), poll);
    }
    if (!finished) throw py::error_already_set();
    return py::make_tuple(X, states_out(settings(), z));
  }
};

}  // namespace nemm::bindings
