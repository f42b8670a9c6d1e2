// Engine: the Python-facing owner of one machine, bound in register_engine.cpp.
// It holds a Trainer (model, persistent chains, data, RMSprop state). Inputs are checked and
// converted here, then the GIL is released around every long kernel.
#pragma once
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "chain_state.hpp"
#include "convert.hpp"
#include "interrupt.hpp"
#include "step_profile.hpp"
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
  StepTimes profile;  // filled while profiling (step_profile.hpp)

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
    p.w = w; p.a = a; p.wbar = wbar; p.abar = abar; p.xbar = xbar;
    tr.model.refresh();
  }

  void set_data(const U8Array& X) { tr.data = rows_of(X, settings().D, "X"); }

  void reset_chains(int n_chains, uint64_t seed, const py::object& init) {
    reset_chains_from(tr.chains, tr.model, n_chains, seed, init);
  }

  py::array_t<uint8_t> chain_states() const { return visible_states_of(tr.chains, settings().D); }

  // The whole state of the persistent chains, for an exact resume (chain_state.hpp).
  py::dict chain_state() const { return chain_state_of(tr.chains, settings().D); }

  // Chains rebuilt for this model with their state overwritten: no reseeding, so they continue
  // exactly where chain_state() left them.
  void set_chain_state(const U8Array& visible, const U64Array& z, const U64Array& rng, const py::array& lanes) {
    set_chain_state_of(tr.chains, tr.model, visible, z, rng, lanes);
  }

  py::dict optimizer_state() const {
    const RMSprop& o = tr.opt;
    py::dict d;
    d["vw"] = Eigen::MatrixXd(o.vw); d["va"] = Eigen::VectorXd(o.va);
    d["vwbar"] = Eigen::MatrixXd(o.vwbar); d["vabar"] = Eigen::VectorXd(o.vabar);
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
    tr.opt.vw = vw; tr.opt.va = va; tr.opt.vwbar = vwbar; tr.opt.vabar = vabar;
  }

  void require_chains() const {
    if (tr.chains.size() == 0) throw std::runtime_error("no chains: call reset_chains first");
  }

  // Many gradient steps in one call: `rows` holds the minibatches back to back, `sizes` their lengths.
  // The Python loop hands a whole epoch over at once: one GIL release for many steps.
  // Divergence or Ctrl-C rolls the whole call back (parameters, optimizer, chains): the engine
  // is left as it was before the call, a state the caller's bookkeeping (epoch, minibatch
  // stream) agrees with.
  py::array_t<double> train_steps(const I64Array& rows, const I64Array& sizes, int T, double lr, double rho,
                                  double eps, bool freeze_a, long epoch) {
    require_chains();
    if (T < 1) throw std::invalid_argument("T must be at least 1");
    check_minibatches(rows, sizes, tr.data.size());
    py::array_t<double> ll(sizes.size());
    double* out = ll.mutable_data();
    const int64_t* r = rows.data();
    const int64_t* sz = sizes.data();
    const py::ssize_t n_steps = sizes.size();
    std::string why;
    py::ssize_t bad = -1;
    bool interrupted = false;
    {
      py::gil_scoped_release release;
      Trainer::Snapshot before = tr.snapshot();
      SignalPoll poll;
      long off = 0;
      for (py::ssize_t k = 0; k < n_steps; ++k) {
        why = tr.step(r + off, sz[k], T, lr, rho, eps, freeze_a, out + k);
        if (!why.empty()) { bad = k; break; }
        off += sz[k];
        if (poll.interrupted(k + 1 == n_steps)) { interrupted = true; break; }
      }
      if (interrupted || bad >= 0) tr.restore(std::move(before));
    }
    if (interrupted) throw py::error_already_set();
    if (bad >= 0) {
      const std::string where = epoch >= 0 ? "epoch " + std::to_string(epoch) + ", step " + std::to_string(bad)
                                           : "step " + std::to_string(bad) + " of this call";
      PyErr_SetString(PyExc_FloatingPointError,
                      ("training diverged at " + where + " (" + why + "); the training state is rolled back to " +
                       (epoch >= 0 ? "the start of that epoch" : "the start of this call") +
                       "; try a smaller learning_rate").c_str());
      throw py::error_already_set();
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

  // Pieces of rows with a signal check between them; each row's value does not depend on them.
  Eigen::VectorXd log_likelihood(const U8Array& X, const py::array& Z, const Eigen::VectorXd& log_weight) const {
    const SparseRows xs = rows_of(X, settings().D, "X");
    const std::vector<uint64_t> z = codes_of(settings(), Z);
    if (log_weight.size() != Eigen::Index(z.size()))
      throw std::invalid_argument("log_weight must have one entry per hidden state");
    const std::vector<Span> all = xs.spans();
    const long N = long(all.size());
    Eigen::VectorXd out(N);
    bool interrupted = false;
    {
      py::gil_scoped_release release;
      const MixtureLikelihood mixture(tr.model, z, log_weight);
      const long piece = std::max(long(1024), long(1 << 22) / std::max(long(1), long(z.size())));
      SignalPoll poll;
      for (long n0 = 0; n0 < N; n0 += piece) {
        const long n1 = std::min(N, n0 + piece);
        const std::vector<Span> rows(all.begin() + n0, all.begin() + n1);
        out.segment(n0, n1 - n0) = mixture(rows);
        if (n1 < N && poll.interrupted()) { interrupted = true; break; }
      }
    }
    if (interrupted) throw py::error_already_set();
    return out;
  }

  // Burn-in steps of fresh chains in pieces, with a signal check between them.
  static bool burn(const Model& m, Chains& fresh, long burn_in, SignalPoll& poll) {
    for (long done = 0; done < burn_in;) {
      const long k = poll.next_piece(burn_in - done);
      fresh.hidden_trajectory(m, k, 0, nullptr);
      done += k;
      if (poll.interrupted()) return false;
    }
    return true;
  }

  // Fresh chains (not the persistent ones): sampling never disturbs training. After `burn_in`
  // double steps, record(fresh, done, k) records k more outputs (each `stride` double steps) at
  // a time, for `total` outputs in all: pieces of a few milliseconds with a signal check between
  // them. The chains carry over, so the output is that of one call. Call without the GIL;
  // false means Ctrl-C (the machine is not changed: only these fresh chains ran).
  template <class Record>
  bool run_fresh(int n_chains, uint64_t seed, long burn_in, long total, long stride, Record record) const {
    Chains fresh;
    fresh.reset(tr.model, n_chains, seed);
    SignalPoll poll;
    if (!burn(tr.model, fresh, burn_in, poll)) return false;
    for (long done = 0; done < total;) {
      const long k = std::max(long(1), poll.next_piece((total - done) * stride) / stride);
      record(fresh, done, k);
      done += k;
      if (done < total && poll.interrupted()) return false;
    }
    return true;
  }

  // Hidden codes of fresh chains, (n_chains, T). Ctrl-C raises KeyboardInterrupt, returns nothing.
  py::array_t<uint64_t> hidden_trajectory(long T, int n_chains, uint64_t seed, long burn_in) const {
    if (T < 1 || n_chains < 1 || burn_in < 0) throw std::invalid_argument("need T >= 1, n_chains >= 1, burn_in >= 0");
    py::array_t<uint64_t> out({py::ssize_t(n_chains), py::ssize_t(T)});
    uint64_t* o = out.mutable_data();
    bool finished;
    {
      py::gil_scoped_release release;
      std::vector<uint64_t> buf;
      finished = run_fresh(n_chains, seed, burn_in, T, 1, [&](Chains& fresh, long t, long k) {
        if (n_chains == 1) {
          fresh.hidden_trajectory(tr.model, 0, k, o + t);
          return;
        }
        buf.resize(std::size_t(n_chains) * k);
        fresh.hidden_trajectory(tr.model, 0, k, buf.data());
        for (int c = 0; c < n_chains; ++c)
          std::memcpy(o + std::size_t(c) * T + t, buf.data() + std::size_t(c) * k, sizeof(uint64_t) * k);
      });
    }
    if (!finished) throw py::error_already_set();
    return out;
  }

  // per_chain samples of each of n_chains fresh chains, `thin` double steps apart: X (n, D) and
  // their hidden states. Ctrl-C raises KeyboardInterrupt, returns nothing.
  py::tuple sample(int n_chains, long per_chain, long burn_in, long thin, uint64_t seed) const {
    if (n_chains < 1 || per_chain < 1 || burn_in < 0 || thin < 1)
      throw std::invalid_argument("need n_chains >= 1, per_chain >= 1, burn_in >= 0, thin >= 1");
    const int D = settings().D;
    const py::ssize_t n = py::ssize_t(n_chains) * per_chain;
    py::array_t<uint8_t> X({n, py::ssize_t(D)});
    std::vector<uint64_t> z(n);
    bool finished;
    {
      py::gil_scoped_release release;
      std::vector<uint8_t> bx;
      std::vector<uint64_t> bz;
      uint8_t* Xo = X.mutable_data();
      finished = run_fresh(n_chains, seed, burn_in, per_chain, thin, [&](Chains& fresh, long k0, long k) {
        bx.resize(std::size_t(n_chains) * k * D);
        bz.resize(std::size_t(n_chains) * k);
        fresh.sample(tr.model, 0, thin, k, bx.data(), bz.data());
        for (int c = 0; c < n_chains; ++c) {
          const std::size_t row = std::size_t(c) * per_chain + k0;
          std::memcpy(Xo + row * D, bx.data() + std::size_t(c) * k * D, std::size_t(k) * D);
          std::memcpy(z.data() + row, bz.data() + std::size_t(c) * k, sizeof(uint64_t) * k);
        }
      });
    }
    if (!finished) throw py::error_already_set();
    return py::make_tuple(X, states_out(settings(), z));
  }
};

}  // namespace nemm::bindings
