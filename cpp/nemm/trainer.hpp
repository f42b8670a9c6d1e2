// Training (section III): the RMSprop state and the Trainer's step (chains, gradient, ascent).
// One step runs the persistent chains, takes the gradient of eqs. 16-17 and an RMSprop ascent
// step. The epoch loop and the minibatch schedule live in Python.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "chain.hpp"
#include "gradient.hpp"
#include "model.hpp"
#include "optimizer.hpp"
#include "sparse_rows.hpp"
#include "step_timing.hpp"

namespace nemm {

struct RMSprop {
  Eigen::MatrixXd vw, vwbar;
  Eigen::VectorXd va, vabar;

  void reset(const Settings& s) {
    vw = Eigen::MatrixXd::Zero(s.D, s.L);
    vwbar = Eigen::MatrixXd::Zero(s.L, s.D);
    va = Eigen::VectorXd::Zero(s.D);
    vabar = Eigen::VectorXd::Zero(s.L);
  }

  template <class P, class G, class V>
  static bool ascend(P& p, const G& g, V& v, double lr, double rho, double eps) {
    return rmsprop_update(p.data(), g.data(), v.data(), std::size_t(p.size()), lr, rho, eps);
  }

  // Returns whether the updated parameters are all finite (see rmsprop_update).
  bool step(Model& m, const Gradient& g, double lr, double rho, double eps, bool freeze_a) {
    if (vw.rows() != m.s.D || vw.cols() != m.s.L) reset(m.s);
    bool finite = ascend(m.p.w, g.w, vw, lr, rho, eps);
    if (!freeze_a) finite &= ascend(m.p.a, g.a, va, lr, rho, eps);
    if (!m.s.tied) finite &= ascend(m.p.wbar, g.wbar, vwbar, lr, rho, eps);
    finite &= ascend(m.p.abar, g.abar, vabar, lr, rho, eps);
    m.refresh(false);  // tied: wbar = w^T again; xbar unchanged
    return finite;
  }
};

// Which part of a step went non-finite, or nullptr: only asked once a step has failed. Sums
// propagate any inf/NaN; a finite sum overflowing to inf means parameters near 1e308, diverged
// all the same.
inline const char* nonfinite_part(const Eigen::MatrixXd& w, const Eigen::VectorXd& a, const Eigen::MatrixXd& wbar,
                                  const Eigen::VectorXd& abar) {
  if (!std::isfinite(w.sum())) return "w";
  if (!std::isfinite(a.sum())) return "a";
  if (!std::isfinite(wbar.sum())) return "wbar";
  if (!std::isfinite(abar.sum())) return "abar";
  return nullptr;
}

class Trainer {
 public:
  Model model;
  Chains chains;
  Recording recording;
  SparseRows data;
  RMSprop opt;
  GradientWorkspace work;
  StepTimes* times = nullptr;  // when set, step() adds the seconds of its parts here

  explicit Trainer(const Settings& s) : model(s) { opt.reset(s); }

  // Continue every persistent chain T double steps, then one ascent step on the minibatch rows.
  // Divergence is caught at the step where it happens, from the estimate and from the updated
  // parameters (a non-finite gradient leaves them non-finite). Returns "" or what went
  // non-finite, the gradient before the update; *loglik gets the step's estimate. After a
  // failure the caller restores its snapshot: a failed step is never kept.
  std::string step(const int64_t* rows, long n_rows, int T, double lr, double rho, double eps, bool freeze_a,
                   double* loglik) {
    const double t0 = times ? StepTimes::now() : 0.0;
    chains.run(model, T, recording);
    const double t1 = times ? StepTimes::now() : 0.0;
    const Gradient g = approx_gradient(model, data.spans(rows, n_rows), recording.spans(), recording.z, &work);
    const double t2 = times ? StepTimes::now() : 0.0;
    *loglik = g.loglik;
    if (std::isnan(g.loglik)) return "the log-likelihood estimate is NaN";
    const bool finite = opt.step(model, g, lr, rho, eps, freeze_a);
    if (times) times->add(t0, t1, t2, StepTimes::now());
    if (finite) return std::string();
    if (const char* part = nonfinite_part(g.w, g.a, g.wbar, g.abar))
      return std::string("the gradient of ") + part + " is not finite";
    const char* part = nonfinite_part(model.p.w, model.p.a, model.p.wbar, model.p.abar);
    return std::string(part ? part : "a parameter") + " became non-finite in the update";
  }

  // What training changes, for rolling back an interrupted or diverged call: the parameters,
  // the optimizer and the chains (their states and random streams). Scratch is not kept.
  struct Snapshot {
    Params p;
    RMSprop opt;
    Chains chains;
  };
  Snapshot snapshot() const { return Snapshot{model.p, opt, chains}; }
  void restore(Snapshot&& s) {
    model.p = std::move(s.p);
    model.refresh(false);  // xbar unchanged during training: its thresholds stay
    opt = std::move(s.opt);
    chains = std::move(s.chains);
  }
};

}  // namespace nemm
