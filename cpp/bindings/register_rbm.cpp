// Topic "rbm": the RBMEngine class (rbm_engine.hpp) with a docstring on every member.
// One equilibrium RBM's parameters, data, chains, optimizer, training steps, exact and PCD gradients.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "rbm_engine.hpp"
#include "register.hpp"

namespace nemm::bindings {

void register_rbm(py::module_& m) {
  py::class_<RBMEngine>(m, "RBMEngine",
                        "Parameters, persistent chains and optimizer state of an equilibrium RBM with energy "
                        "E(x, h) = -x.w h - a.x - abar.h; its Gibbs sampler is the engine's (tied, uncentered).")
      .def(py::init<int, int, const std::string&>(), py::arg("n_visible"), py::arg("n_hidden"),
           py::arg("hidden") = "onehot", "An RBM of D visible bits and L one-hot states or L binary units.")
      .def_property_readonly(
          "n_visible", [](const RBMEngine& e) { return e.settings().D; }, "D.")
      .def_property_readonly(
          "n_hidden", [](const RBMEngine& e) { return e.settings().L; }, "L.")
      .def_property_readonly(
          "w", [](const RBMEngine& e) { return Eigen::MatrixXd(e.tr.model.p.w); }, "w, (D, L).")
      .def_property_readonly(
          "a", [](const RBMEngine& e) { return Eigen::VectorXd(e.tr.model.p.a); }, "a, (D,).")
      .def_property_readonly(
          "abar", [](const RBMEngine& e) { return Eigen::VectorXd(e.tr.model.p.abar); }, "abar, (L,).")
      .def_property_readonly(
          "xbar", [](const RBMEngine& e) { return Eigen::VectorXd(e.tr.model.p.xbar); },
          "Data mean: centering offset of x and the start of fresh chains, (D,).")
      .def_property_readonly(
          "n_chains", [](const RBMEngine& e) { return e.tr.chains.size(); }, "Number of persistent chains.")
      .def("set_params", &RBMEngine::set_params, py::arg("w"), py::arg("a"), py::arg("abar"), py::arg("xbar"),
           "Set w (D, L), a (D,), abar (L,) and the data mean xbar (D,).")
      .def("set_data", py::method_adaptor<RBMEngine>(&RBMEngine::set_data), py::arg("X"),
           "Training data, an (N, D) 0/1 array; train_steps refers to its rows.")
      .def("reset_chains", py::method_adaptor<RBMEngine>(&RBMEngine::reset_chains), py::arg("n_chains"),
           py::arg("seed"), py::arg("init") = py::none(),
           "Fresh persistent chains, one random stream per chain keyed by (seed, chain index); visible states "
           "drawn from xbar or given as an (n_chains, D) array.")
      .def("chain_states", py::method_adaptor<RBMEngine>(&RBMEngine::chain_states),
           "Visible states of the persistent chains, (n_chains, D).")
      .def("unresolvable_params", py::method_adaptor<RBMEngine>(&RBMEngine::unresolvable_params),
           "'' or why the parameters are beyond what ln Z can resolve (then training stops).")
      .def("chain_state", py::method_adaptor<RBMEngine>(&RBMEngine::chain_state),
           "The whole state of the persistent chains for an exact resume: dict visible (n_chains, D) uint8, "
           "z (n_chains,) uint64, rng (n_chains, 4) uint64, lanes (n_chains, 4, 8) uint32.")
      .def("set_chain_state", py::method_adaptor<RBMEngine>(&RBMEngine::set_chain_state), py::arg("visible"),
           py::arg("z"), py::arg("rng"), py::arg("lanes"),
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
      .def("reset_optimizer", &RBMEngine::reset_optimizer,
           "Zero the optimizer's moments and forget the centering offset.")
      .def(
          "start_profiling", [](RBMEngine& e) { start_profiling(e.tr, e.profile); },
          "From now on, train_steps adds the wall-clock seconds of each step's parts to a profile.")
      .def(
          "stop_profiling",
          [](RBMEngine& e) { return stop_profiling(e.tr, e.profile, {"data term", "model term", "update"}); },
          "Stop profiling and return the seconds spent since start_profiling in the data term, the model\n"
          "term (enumeration or PCD chains) and the update (optimizer and tables), and the steps.")
      .def("train_steps", &RBMEngine::train_steps, py::arg("rows"), py::arg("sizes"), py::arg("gradient"), py::arg("k"),
           py::arg("centered"), py::arg("center_rate"), py::arg("epoch") = -1,
           "Ascent steps on the minibatches of data rows `rows` (back to back, lengths `sizes`), with the "
           "'exact' gradient or 'pcd' with k Gibbs steps; returns each step's exact mean ln p of its minibatch "
           "before the step (NaN under PCD with more than 1024 hidden states).\n\n"
           "A step after which a parameter is not finite raises FloatingPointError naming `epoch` (used only "
           "in the message; -1: none) and the step. Ctrl-C is checked between steps and raises "
           "KeyboardInterrupt. Either way the call is rolled back: parameters, optimizer, centering offset "
           "and chains are left as they were before it.")
      .def("log_partition", &RBMEngine::log_partition, "ln Z by exact enumeration of the hidden layer.")
      .def("log_likelihood", &RBMEngine::log_likelihood, py::arg("X"),
           "Exact ln p(x) of every row of X: a.x + logsumexp_h[abar.h + x.w h] - ln Z.")
      .def("exact_gradient", &RBMEngine::exact_gradient, py::arg("X"),
           "Exact gradient of the mean ln p over the rows of X: dict w, a, abar, loglik.")
      .def("pcd_gradient", &RBMEngine::pcd_gradient, py::arg("X"), py::arg("k"),
           "PCD-k gradient: data term on X, model term from the persistent chains after k more Gibbs steps "
           "(they advance). dict w, a, abar, loglik (NaN).")
      .def("pt_sample", &RBMEngine::pt_sample, py::arg("betas"), py::arg("ref"), py::arg("n_chains"),
           py::arg("per_chain"), py::arg("burn_in"), py::arg("thin"), py::arg("seed"),
           "Parallel tempering: per_chain samples of each of n_chains fresh chains from the rung beta = 1, thin "
           "sweeps apart after burn_in sweeps. betas: the ladder (betas[0] = 1, all in (0, 1]); rung k samples "
           "exp(-beta_k E) q^(1 - beta_k), q the product-Bernoulli model of log-odds ref (D,). A sweep is one Gibbs "
           "double step at every rung, then swaps of the neighbour pairs of the sweep's parity. Returns (X (n, D) "
           "uint8, hidden states, accepted swaps per pair, attempted swaps per pair).")
      .def("hidden_log_weights", &RBMEngine::hidden_log_weights,
           "ln of the unnormalized p(h), abar.h + sum_i softplus(a_i + (w h)_i), of every hidden state in state "
           "order (one-hot: alpha; binary: the code sum_b h_b 2^b).")
      .def("exact_sample", &RBMEngine::exact_sample, py::arg("n"), py::arg("seed"),
           "n i.i.d. draws: h from its exact p(h), then x | h. Returns (X (n, D) uint8, hidden states).");
}

}  // namespace nemm::bindings
