// The one bindings file: nemm._core. Inputs are checked and converted here, then the GIL is
// released around every long kernel.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "nemm/chain.hpp"
#include "nemm/counting.hpp"
#include "nemm/gradient.hpp"
#include "nemm/kernels.hpp"
#include "nemm/likelihood.hpp"
#include "nemm/trainer.hpp"

namespace py = pybind11;
using namespace nemm;

void register_rbm(py::module_& m);  // cpp/bindings/register_rbm.cpp

using U8Array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using I64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using U64Array = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;

namespace {

Hidden parse_hidden(const std::string& h) {
  if (h == "onehot") return Hidden::OneHot;
  if (h == "binary") return Hidden::Binary;
  throw std::invalid_argument("hidden must be 'onehot' or 'binary', got '" + h + "'");
}

Normalization parse_normalization(const std::string& n) {
  if (n == "softmax") return Normalization::Softmax;
  if (n == "sigmoid") return Normalization::Sigmoid;
  throw std::invalid_argument("normalization must be 'softmax' or 'sigmoid', got '" + n + "'");
}

SparseRows rows_of(const U8Array& X, int D, const char* name) {
  if (X.ndim() != 2 || X.shape(1) != D)
    throw std::invalid_argument(std::string(name) + " must have shape (n, " + std::to_string(D) + ")");
  return SparseRows(X.data(), long(X.shape(0)), D);
}

// Hidden states in: one-hot int array (S,), binary 0/1 array (S, L). Out: codes.
std::vector<uint64_t> codes_of(const Settings& s, const py::array& Z) {
  std::vector<uint64_t> out;
  if (s.hidden == Hidden::OneHot) {
    const I64Array z = I64Array::ensure(Z);
    if (!z || z.ndim() != 1) throw std::invalid_argument("one-hot hidden states must be a 1-d integer array");
    out.resize(z.shape(0));
    for (py::ssize_t k = 0; k < z.shape(0); ++k) {
      const int64_t v = z.data()[k];
      if (v < 0 || v >= s.L) throw std::invalid_argument("one-hot hidden state out of range [0, L)");
      out[k] = uint64_t(v);
    }
  } else {
    const U8Array z = U8Array::ensure(Z);
    if (!z || z.ndim() != 2 || z.shape(1) != s.L)
      throw std::invalid_argument("binary hidden states must be an (S, L) array of 0/1 bits");
    out.assign(z.shape(0), 0);
    for (py::ssize_t k = 0; k < z.shape(0); ++k)
      for (int b = 0; b < s.L; ++b) {
        const uint8_t v = z.data()[k * s.L + b];
        if (v > 1) throw std::invalid_argument("binary hidden states must be 0/1");
        if (v) out[k] |= uint64_t(1) << b;
      }
  }
  return out;
}

py::array states_out(const Settings& s, const std::vector<uint64_t>& codes) {
  const py::ssize_t S = py::ssize_t(codes.size());
  if (s.hidden == Hidden::OneHot) {
    py::array_t<int64_t> z(S);
    for (py::ssize_t k = 0; k < S; ++k) z.mutable_data()[k] = int64_t(codes[k]);
    return std::move(z);
  }
  py::array_t<uint8_t> z({S, py::ssize_t(s.L)});
  for (py::ssize_t k = 0; k < S; ++k)
    for (int b = 0; b < s.L; ++b) z.mutable_data()[k * s.L + b] = uint8_t((codes[k] >> b) & 1u);
  return std::move(z);
}

py::array_t<uint8_t> dense_of(const std::vector<Span>& rows, int D) {
  py::array_t<uint8_t> X({py::ssize_t(rows.size()), py::ssize_t(D)});
  uint8_t* x = X.mutable_data();
  std::fill(x, x + rows.size() * std::size_t(D), uint8_t(0));
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (int32_t k = 0; k < rows[r].n; ++k) x[r * D + rows[r].p[k]] = 1;
  return X;
}

class Engine {
 public:
  Trainer tr;

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

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "nemm C++ core: kernels, persistent chains, log-domain likelihood, gradient, counting";
#ifdef NEMM_VERSION
  m.attr("__version__") = NEMM_VERSION;
#endif
  m.def("openmp_enabled", []() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
  });
  m.def("max_threads", []() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  });
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw std::invalid_argument("number of threads must be at least 1");
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
  });

  m.def("count_transitions", [](const U64Array& traj, uint64_t n_states) {
        if (traj.ndim() != 2) throw std::invalid_argument("trajectory must be (n_chains, T)");
        if (n_states == 0 || n_states > 4096) throw std::invalid_argument("dense counts need 1 <= n_states <= 4096");
        for (py::ssize_t k = 0; k < traj.size(); ++k)
          if (traj.data()[k] >= n_states) throw std::invalid_argument("trajectory state out of range");
        py::array_t<int64_t> counts({py::ssize_t(n_states), py::ssize_t(n_states)});
        std::fill(counts.mutable_data(), counts.mutable_data() + counts.size(), int64_t(0));
        {
          py::gil_scoped_release release;
          count_transitions_dense(traj.data(), long(traj.shape(0)), long(traj.shape(1)), n_states, counts.mutable_data());
        }
        return counts;
      }, py::arg("trajectory"), py::arg("n_states"),
      "Dense transition counts n[z, z'] along each row of a (n_chains, T) trajectory of state codes.");
  m.def("count_transitions_sparse", [](const U64Array& traj) {
        if (traj.ndim() != 2) throw std::invalid_argument("trajectory must be (n_chains, T)");
        SparseCounts sc;
        {
          py::gil_scoped_release release;
          sc = count_transitions_sparse(traj.data(), long(traj.shape(0)), long(traj.shape(1)));
        }
        return py::make_tuple(py::array(py::cast(sc.from)), py::array(py::cast(sc.to)), py::array(py::cast(sc.count)));
      }, py::arg("trajectory"), "Sparse transition counts (from, to, count), sorted by (from, to).");

  register_rbm(m);

  py::class_<Engine>(m, "Engine")
      .def(py::init<int, int, const std::string&, const std::string&, bool, bool>(), py::arg("n_visible"),
           py::arg("n_hidden"), py::arg("hidden") = "onehot", py::arg("normalization") = "softmax",
           py::arg("centered") = true, py::arg("tied") = false)
      .def_property_readonly("n_visible", [](const Engine& e) { return e.settings().D; })
      .def_property_readonly("n_hidden", [](const Engine& e) { return e.settings().L; })
      .def_property_readonly("w", [](const Engine& e) { return Eigen::MatrixXd(e.tr.model.p.w); })
      .def_property_readonly("a", [](const Engine& e) { return Eigen::VectorXd(e.tr.model.p.a); })
      .def_property_readonly("wbar", [](const Engine& e) { return Eigen::MatrixXd(e.tr.model.p.wbar); })
      .def_property_readonly("abar", [](const Engine& e) { return Eigen::VectorXd(e.tr.model.p.abar); })
      .def_property_readonly("xbar", [](const Engine& e) { return Eigen::VectorXd(e.tr.model.p.xbar); })
      .def_property_readonly("n_chains", [](const Engine& e) { return e.tr.chains.size(); })
      .def("set_params", &Engine::set_params, py::arg("w"), py::arg("a"), py::arg("wbar"), py::arg("abar"), py::arg("xbar"))
      .def("set_data", &Engine::set_data, py::arg("X"))
      .def("reset_chains", &Engine::reset_chains, py::arg("n_chains"), py::arg("seed"), py::arg("init") = py::none())
      .def("reset_optimizer", [](Engine& e) { e.tr.opt.reset(e.settings()); })
      .def("chain_states", &Engine::chain_states)
      .def("train_steps", &Engine::train_steps, py::arg("rows"), py::arg("sizes"), py::arg("T"), py::arg("lr"),
           py::arg("rho"), py::arg("eps"), py::arg("freeze_a"))
      .def("run_chains", &Engine::run_chains, py::arg("T"))
      .def("recording", &Engine::recording)
      .def("approx_gradient", &Engine::approx_gradient, py::arg("X"), py::arg("Xp"), py::arg("Z"))
      .def("log_A", &Engine::log_A, py::arg("X"), py::arg("Z"))
      .def("log_likelihood", &Engine::log_likelihood, py::arg("X"), py::arg("Z"), py::arg("log_weight"))
      .def("hidden_trajectory", &Engine::hidden_trajectory, py::arg("T"), py::arg("n_chains"), py::arg("seed"),
           py::arg("burn_in"))
      .def("sample", &Engine::sample, py::arg("n_chains"), py::arg("per_chain"), py::arg("burn_in"), py::arg("thin"),
           py::arg("seed"));
}
