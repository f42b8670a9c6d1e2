// Engine: the Python-facing owner of one machine, bound in register_engine.cpp.
// It holds a Trainer (model, persistent chains, data, RMSprop state). Inputs are checked and
// converted here, then the GIL is released around every long kernel.
#pragma once
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "convert.hpp"
#include "nemm/chain.hpp"
#include "nemm/gradient.hpp"
#include "nemm/kernels.hpp"
#include "nemm/likelihood.hpp"
#include "nemm/model.hpp"
#include "nemm/params.hpp"
#include "nemm/sparse_rows.hpp"
#include "nemm/trainer.hpp"

namespace nemm::bindings {

class Engine {
 public:
  Trainer tr;  // the model, persistent chains, training data and RMSprop state

  Engine(int D, int L, const std::string& hidden, const std::string& normalization, bool centered, bool tied)
      : tr(make_settings(D, L, hidden, normalization, centered, tied)) {}

  static Settings make_settings(int D, int L, const std::string& hidden, const std::string& normalization,
                                bool centered, bool tied) {
    Settings s;
    s.D = D; s.L = L;
    s.hidden = parse_hidden(hidden);
    s.normalization = parse_normalization(normalization);
    s.centered = centered;
    s.tied = tied;
    s.validate();
    return s;
  }
  const Settings& settings() const { return tr.model.s; }

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
    p.w = w; p.a = a; p.wbar = wbar; p.abar = abar; p.xbar = xbar;
    tr.model.refresh();
  }

  void set_data(const U8Array& X) { tr.data = rows_of(X, settings().D, "X"); }

  void reset_chains(int n_chains, uint64_t seed, const py::object& init) {
    if (n_chains < 1) throw std::invalid_argument("n_chains must be at least 1");
    tr.chains.reset(tr.model, n_chains, seed);
    if (!init.is_none()) {
      const U8Array X = U8Array::ensure(init);
      const int D = settings().D;
      if (!X || X.ndim() != 2 || X.shape(0) != n_chains || X.shape(1) != D)
        throw std::invalid_argument("initial chain states must have shape (n_chains, D)");
      for (int c = 0; c < n_chains; ++c) tr.chains.chains[c].set_visible(X.data() + std::size_t(c) * D, D);
    }
  }

  py::array_t<uint8_t> chain_states() const {
    const int D = settings().D;
    std::vector<Span> rows;
    for (const auto& ch : tr.chains.chains) rows.push_back(Span{ch.active.data(), ch.n_active});
    return dense_of(rows, D);
  }

  void require_chains() const {
    if (tr.chains.size() == 0) throw std::runtime_error("no chains: call reset_chains first");
  }

  // Many gradient steps in one call: `rows` holds the minibatches back to back, `sizes` their lengths.
  // The Python loop hands a whole epoch over at once: one GIL release for many steps.
  py::array_t<double> train_steps(const I64Array& rows, const I64Array& sizes, int T, double lr, double rho,
                                  double eps, bool freeze_a) {
    require_chains();
    if (T < 1) throw std::invalid_argument("T must be at least 1");
    const long n_data = tr.data.size();
    if (n_data <= 0) throw std::runtime_error("no training data: call set_data first");
    long total = 0;
    for (py::ssize_t k = 0; k < sizes.size(); ++k) {
      if (sizes.data()[k] < 1) throw std::invalid_argument("minibatch sizes must be positive");
      total += sizes.data()[k];
    }
    if (total != rows.size()) throw std::invalid_argument("rows and sizes disagree");
    for (py::ssize_t k = 0; k < rows.size(); ++k)
      if (rows.data()[k] < 0 || rows.data()[k] >= n_data) throw std::invalid_argument("row index out of range");
    py::array_t<double> ll(sizes.size());
    double* out = ll.mutable_data();
    const int64_t* r = rows.data();
    const int64_t* sz = sizes.data();
    const py::ssize_t n_steps = sizes.size();
    {
      py::gil_scoped_release release;
      long off = 0;
      for (py::ssize_t k = 0; k < n_steps; ++k) {
        out[k] = tr.step(r + off, sz[k], T, lr, rho, eps, freeze_a);
        off += sz[k];
      }
    }
    return ll;
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
    if (long(z.size()) != xps.size()) throw std::invalid_argument("Xp and Z must have the same number of rows");
    Gradient g;
    {
      py::gil_scoped_release release;
      g = nemm::approx_gradient(tr.model, xs.spans(), xps.spans(), z);
    }
    py::dict d;
    d["w"] = g.w; d["a"] = g.a; d["wbar"] = g.wbar; d["abar"] = g.abar; d["loglik"] = g.loglik;
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

  Eigen::VectorXd log_likelihood(const U8Array& X, const py::array& Z, const Eigen::VectorXd& log_weight) const {
    const SparseRows xs = rows_of(X, settings().D, "X");
    const std::vector<uint64_t> z = codes_of(settings(), Z);
    if (log_weight.size() != Eigen::Index(z.size()))
      throw std::invalid_argument("log_weight must have one entry per hidden state");
    py::gil_scoped_release release;
    return log_mixture_likelihood(tr.model, z, log_weight, xs.spans());
  }

  // Fresh chains (not the persistent ones): sampling never disturbs training.
  py::array_t<uint64_t> hidden_trajectory(long T, int n_chains, uint64_t seed, long burn_in) const {
    if (T < 1 || n_chains < 1 || burn_in < 0) throw std::invalid_argument("need T >= 1, n_chains >= 1, burn_in >= 0");
    py::array_t<uint64_t> out({py::ssize_t(n_chains), py::ssize_t(T)});
    uint64_t* o = out.mutable_data();
    {
      py::gil_scoped_release release;
      Chains fresh;
      fresh.reset(tr.model, n_chains, seed);
      fresh.hidden_trajectory(tr.model, burn_in, T, o);
    }
    return out;
  }

  py::tuple sample(int n_chains, long per_chain, long burn_in, long thin, uint64_t seed) const {
    if (n_chains < 1 || per_chain < 1 || burn_in < 0 || thin < 1)
      throw std::invalid_argument("need n_chains >= 1, per_chain >= 1, burn_in >= 0, thin >= 1");
    const int D = settings().D;
    const py::ssize_t n = py::ssize_t(n_chains) * per_chain;
    py::array_t<uint8_t> X({n, py::ssize_t(D)});
    std::vector<uint64_t> z(n);
    {
      py::gil_scoped_release release;
      Chains fresh;
      fresh.reset(tr.model, n_chains, seed);
      fresh.sample(tr.model, burn_in, thin, per_chain, X.mutable_data(), z.data());
    }
    return py::make_tuple(X, states_out(settings(), z));
  }
};

}  // namespace nemm::bindings
