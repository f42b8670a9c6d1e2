// Bindings of the equilibrium RBM (cpp/nemm/rbm.hpp): nemm._core.RBMEngine. Inputs are checked
// and converted here, then the GIL is released around every long kernel.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "chain_state.hpp"
#include "convert.hpp"
#include "nemm/rbm.hpp"
#include "register.hpp"
#include "step_profile.hpp"

namespace py = pybind11;
using namespace nemm;
using namespace nemm::bindings;

namespace {

py::dict gradient_dict(const RBMGradient& g) {
  py::dict d;
  d["w"] = g.w;
  d["a"] = g.a;
  d["abar"] = g.abar;
  d["loglik"] = g.loglik;
  return d;
}

class RBMEngine {
 public:
  RBMTrainer tr;
  StepTimes profile;  // filled while profiling (step_profile.hpp)

  RBMEngine(int D, int L, const std::string& hidden) : tr(rbm_settings(D, L, parse_hidden(hidden))) {}

  const Settings& settings() const { return tr.model.s; }

  void require_enumerable() const {
    if (rbm_n_states(settings()) > std::ldexp(1.0, 24))
      throw std::invalid_argument("exact enumeration of the hidden layer is limited to 2^24 states");
  }

  void set_params(const Eigen::MatrixXd& w, const Eigen::VectorXd& a, const Eigen::VectorXd& abar,
                  const Eigen::VectorXd& xbar) {
    const int D = settings().D, L = settings().L;
    if (w.rows() != D || w.cols() != L) throw std::invalid_argument("w must have shape (D, L)");
    if (a.size() != D) throw std::invalid_argument("a must have shape (D,)");
    if (abar.size() != L) throw std::invalid_argument("abar must have shape (L,)");
    if (xbar.size() != D) throw std::invalid_argument("xbar must have shape (D,)");
    Params& p = tr.model.p;
    p.w = w; p.a = a; p.abar = abar; p.xbar = xbar;
    tr.model.refresh();  // wbar = w^T (tied)
  }

  void reset_chains(int n_chains, uint64_t seed, const py::object& init) {
    reset_chains_from(tr.chains, tr.model, n_chains, seed, init);
  }

  py::array_t<uint8_t> chain_states() const { return visible_states_of(tr.chains, settings().D); }

  // Adam moments (m*) and second moments / RMSprop accumulators (v*), the step count t (Adam's
  // bias correction) and the centering offset lambda (empty until a centered step): with the
  // chains, everything a step reads besides the parameters and the data.
  py::dict optimizer_state() const {
    const RBMOptimizer& o = tr.opt;
    py::dict d;
    d["t"] = o.t;
    d["mw"] = Eigen::MatrixXd(o.mw); d["vw"] = Eigen::MatrixXd(o.vw);
    d["ma"] = Eigen::VectorXd(o.ma); d["va"] = Eigen::VectorXd(o.va);
    d["mh"] = Eigen::VectorXd(o.mh); d["vh"] = Eigen::VectorXd(o.vh);
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
    o.t = t; o.mw = mw; o.vw = vw; o.ma = ma; o.va = va; o.mh = mh; o.vh = vh;
    tr.lambda = lambda;
  }

  void set_optimizer(const std::string& name, double lr, double b1, double b2, double rho, double eps) {
    if (name != "adam" && name != "rmsprop") throw std::invalid_argument("optimizer must be 'adam' or 'rmsprop'");
    if (!(lr > 0) || !(eps > 0) || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) || !(rho >= 0 && rho < 1))
      throw std::invalid_argument("need lr > 0, eps > 0 and beta1, beta2, rho in [0, 1)");
    RBMOptimizer& o = tr.opt;
    o.adam = name == "adam";
    o.lr = lr; o.b1 = b1; o.b2 = b2; o.rho = rho; o.eps = eps;
  }

  py::array_t<double> train_steps(const I64Array& rows, const I64Array& sizes, const std::string& gradient, int k,
                                  bool centered, double center_rate) {
    if (gradient != "exact" && gradient != "pcd") throw std::invalid_argument("gradient must be 'exact' or 'pcd'");
    const bool exact = gradient == "exact";
    if (exact) require_enumerable();
    if (!exact && tr.chains.size() == 0) throw std::runtime_error("no persistent chains: call reset_chains first");
    if (!exact && k < 1) throw std::invalid_argument("pcd_steps must be at least 1");
    if (!(center_rate > 0 && center_rate <= 1)) throw std::invalid_argument("center_rate must lie in (0, 1]");
    check_minibatches(rows, sizes, tr.data.size());
    py::array_t<double> ll(sizes.size());
    double* out = ll.mutable_data();
    const int64_t* r = rows.data();
    const int64_t* sz = sizes.data();
    const py::ssize_t n_steps = sizes.size();
    {
      py::gil_scoped_release release;
      long off = 0;
      for (py::ssize_t j = 0; j < n_steps; ++j) {
        out[j] = tr.step(r + off, sz[j], exact, k, centered, center_rate);
        off += sz[j];
      }
    }
    return ll;
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
    if (tr.chains.size() == 0) throw std::runtime_error("no persistent chains: call reset_chains first");
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
};

}  // namespace

namespace nemm::bindings {

void register_rbm(py::module_& m) {
  py::class_<RBMEngine>(m, "RBMEngine",
                        "Parameters, persistent chains and optimizer state of an equilibrium RBM with energy "
                        "E(x, h) = -x.w h - a.x - abar.h; its Gibbs sampler is the engine's (tied, uncentered).")
      .def(py::init<int, int, const std::string&>(), py::arg("n_visible"), py::arg("n_hidden"),
           py::arg("hidden") = "onehot", "An RBM of D visible bits and L one-hot states or L binary units.")
      .def_property_readonly("n_visible", [](const RBMEngine& e) { return e.settings().D; }, "D.")
      .def_property_readonly("n_hidden", [](const RBMEngine& e) { return e.settings().L; }, "L.")
      .def_property_readonly("w", [](const RBMEngine& e) { return Eigen::MatrixXd(e.tr.model.p.w); }, "w, (D, L).")
      .def_property_readonly("a", [](const RBMEngine& e) { return Eigen::VectorXd(e.tr.model.p.a); }, "a, (D,).")
      .def_property_readonly("abar", [](const RBMEngine& e) { return Eigen::VectorXd(e.tr.model.p.abar); },
                             "abar, (L,).")
      .def_property_readonly("xbar", [](const RBMEngine& e) { return Eigen::VectorXd(e.tr.model.p.xbar); },
                             "Data mean: centering offset of x and the start of fresh chains, (D,).")
      .def_property_readonly("n_chains", [](const RBMEngine& e) { return e.tr.chains.size(); },
                             "Number of persistent chains.")
      .def("set_params", &RBMEngine::set_params, py::arg("w"), py::arg("a"), py::arg("abar"), py::arg("xbar"),
           "Set w (D, L), a (D,), abar (L,) and the data mean xbar (D,).")
      .def("set_data", [](RBMEngine& e, const U8Array& X) { e.tr.data = rows_of(X, e.settings().D, "X"); },
           py::arg("X"), "Training data, an (N, D) 0/1 array; train_steps refers to its rows.")
      .def("reset_chains", &RBMEngine::reset_chains, py::arg("n_chains"), py::arg("seed"),
           py::arg("init") = py::none(),
           "Fresh persistent chains, one random stream per chain keyed by (seed, chain index); visible states "
           "drawn from xbar or given as an (n_chains, D) array.")
      .def("chain_states", &RBMEngine::chain_states, "Visible states of the persistent chains, (n_chains, D).")
      .def("chain_state", [](const RBMEngine& e) { return chain_state_of(e.tr.chains, e.settings().D); },
           "The whole state of the persistent chains for an exact resume: dict visible (n_chains, D) uint8, "
           "z (n_chains,) uint64, rng (n_chains, 4) uint64, lanes (n_chains, 4, 8) uint32.")
      .def("set_chain_state",
           [](RBMEngine& e, const U8Array& visible, const U64Array& z, const U64Array& rng, const py::array& lanes) {
             set_chain_state_of(e.tr.chains, e.tr.model, visible, z, rng, lanes);
           },
           py::arg("visible"), py::arg("z"), py::arg("rng"), py::arg("lanes"),
           "Persistent chains restored from chain_state(): they continue exactly, without reseeding.")
      .def("optimizer_state", &RBMEngine::optimizer_state,
           "Optimizer state for an exact resume: dict t (steps taken), Adam first moments mw (D, L), ma (D,), "
           "mh (L,), second moments (RMSprop accumulators) vw, va, vh, and the centering offset lambda "
           "((L,), or (0,) before the first centered step).")
      .def("set_optimizer_state", &RBMEngine::set_optimizer_state, py::arg("t"), py::arg("mw"), py::arg("vw"),
           py::arg("ma"), py::arg("va"), py::arg("mh"), py::arg("vh"), py::arg("lambda_"),
           "Restore optimizer_state(); shapes and finiteness are checked, second moments must be >= 0.")
      .def("set_optimizer", &RBMEngine::set_optimizer, py::arg("name"), py::arg("lr"), py::arg("beta1"),
           py::arg("beta2"), py::arg("rho"), py::arg("eps"),
           "Choose 'adam' (beta1, beta2, eps) or 'rmsprop' (rho, eps) and the learning rate.")
      .def("reset_optimizer", [](RBMEngine& e) {
             e.tr.opt.reset(e.settings().D, e.settings().L);
             e.tr.lambda.resize(0);
           }, "Zero the optimizer's moments and forget the centering offset.")
      .def(
          "start_profiling", [](RBMEngine& e) { start_profiling(e.tr, e.profile); },
          "From now on, train_steps adds the wall-clock seconds of each step's parts to a profile.")
      .def(
          "stop_profiling",
          [](RBMEngine& e) { return stop_profiling(e.tr, e.profile, {"data term", "model term", "update"}); },
          "Stop profiling and return the seconds spent since start_profiling in the data term, the model\n"
          "term (enumeration or PCD chains) and the update (optimizer and tables), and the steps.")
      .def("train_steps", &RBMEngine::train_steps, py::arg("rows"), py::arg("sizes"), py::arg("gradient"),
           py::arg("k"), py::arg("centered"), py::arg("center_rate"),
           "Ascent steps on the minibatches of data rows `rows` (back to back, lengths `sizes`), with the "
           "'exact' gradient or 'pcd' with k Gibbs steps; returns each step's exact mean ln p of its minibatch "
           "before the step (NaN under PCD with more than 1024 hidden states).")
      .def("log_partition", &RBMEngine::log_partition, "ln Z by exact enumeration of the hidden layer.")
      .def("log_likelihood", &RBMEngine::log_likelihood, py::arg("X"),
           "Exact ln p(x) of every row of X: a.x + logsumexp_h[abar.h + x.w h] - ln Z.")
      .def("exact_gradient", &RBMEngine::exact_gradient, py::arg("X"),
           "Exact gradient of the mean ln p over the rows of X: dict w, a, abar, loglik.")
      .def("pcd_gradient", &RBMEngine::pcd_gradient, py::arg("X"), py::arg("k"),
           "PCD-k gradient: data term on X, model term from the persistent chains after k more Gibbs steps "
           "(they advance). dict w, a, abar, loglik (NaN).");
}

}  // namespace nemm::bindings
