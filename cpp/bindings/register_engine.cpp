// Topic "engine": the Engine class (engine.hpp) with a docstring on every member.
// One machine's parameters, persistent chains, training steps, likelihood and sampling.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "engine.hpp"
#include "register.hpp"

namespace nemm::bindings {

void register_engine(py::module_& m) {
  py::class_<Engine>(m, "Engine",
                     "Parameters, persistent chains and RMSprop state of one machine.\n\n"
                     "D = n_visible bits x, L = n_hidden units z. Every returned array is a copy.")
      .def(py::init<int, int, const std::string&, const std::string&, bool, bool>(), py::arg("n_visible"),
           py::arg("n_hidden"), py::arg("hidden") = "onehot", py::arg("normalization") = "softmax",
           py::arg("centered") = true, py::arg("tied") = false,
           "A machine with D = n_visible visible bits and L = n_hidden hidden units.\n\n"
           "hidden: 'onehot' (L states) or 'binary' (2^L states, any L). normalization of the x -> z\n"
           "kernel: 'softmax' (eq. 11) or 'sigmoid' (the ratio of sigmoids of eq. 19, one-hot only).\n"
           "centered: u = wbar (x - xbar) + abar (eq. 17). tied: wbar = w^T, the RBM Gibbs sampler.\n"
           "Parameters start at zero and xbar at 0.5; no chains until reset_chains.")
      .def_property_readonly(
          "n_visible", [](const Engine& e) { return e.settings().D; }, "D, the number of visible bits.")
      .def_property_readonly(
          "n_hidden", [](const Engine& e) { return e.settings().L; }, "L, the number of hidden units.")
      .def_property_readonly(
          "w", [](const Engine& e) { return Eigen::MatrixXd(e.tr.model.p.w); },
          "Forward weights w, float64 (D, L) (eq. 10).")
      .def_property_readonly(
          "a", [](const Engine& e) { return Eigen::VectorXd(e.tr.model.p.a); }, "Visible bias a, float64 (D,).")
      .def_property_readonly(
          "wbar", [](const Engine& e) { return Eigen::MatrixXd(e.tr.model.p.wbar); },
          "Backward weights wbar, float64 (L, D) (eq. 11); w^T in tied mode.")
      .def_property_readonly(
          "abar", [](const Engine& e) { return Eigen::VectorXd(e.tr.model.p.abar); }, "Hidden bias abar, float64 (L,).")
      .def_property_readonly(
          "xbar", [](const Engine& e) { return Eigen::VectorXd(e.tr.model.p.xbar); },
          "Data mean xbar, float64 (D,): the centering of eq. 17 and the start of fresh chains.")
      .def_property_readonly(
          "n_chains", [](const Engine& e) { return e.tr.chains.size(); },
          "The number of persistent chains (0 before reset_chains).")
      .def("set_params", &Engine::set_params, py::arg("w"), py::arg("a"), py::arg("wbar"), py::arg("abar"),
           py::arg("xbar"),
           "Set every parameter: w (D, L), a (D,), wbar (L, D), abar (L,), xbar (D,), then rebuild the\n"
           "chain's tables. In tied mode wbar is replaced by w^T.")
      .def("set_data", py::method_adaptor<Engine>(&Engine::set_data), py::arg("X"),
           "Keep the training set X, an (N, D) 0/1 matrix, as active-pixel lists: train_steps draws\n"
           "its minibatches from its rows.")
      .def("reset_chains", py::method_adaptor<Engine>(&Engine::reset_chains), py::arg("n_chains"), py::arg("seed"),
           py::arg("init") = py::none(),
           "Start n_chains persistent chains, each with its random streams keyed by (seed, chain index),\n"
           "from x'(0) ~ Bernoulli(xbar), or from the rows of init, an (n_chains, D) 0/1 matrix.")
      .def(
          "reset_optimizer", [](Engine& e) { e.tr.opt.reset(e.settings()); },
          "Zero the RMSprop accumulators (mean squared gradients) of w, a, wbar, abar.")
      .def("chain_states", py::method_adaptor<Engine>(&Engine::chain_states),
           "The current visible states x' of the persistent chains, uint8 (n_chains, D).")
      .def("unresolvable_params", py::method_adaptor<Engine>(&Engine::unresolvable_params),
           "'' or why the parameters are beyond what ln Z can resolve (then training stops).")
      .def("chain_state", py::method_adaptor<Engine>(&Engine::chain_state),
           "The whole state of the persistent chains, for an exact resume: a dict with visible uint8\n"
           "(n_chains, D) (x'), z uint64 (n_chains,) (the last hidden state, as a code), rng uint64\n"
           "(n_chains, 4) (the xoshiro256** stream of hidden draws) and lanes uint32 (n_chains, 4, 8)\n"
           "(the eight xoshiro128** streams of visible bits, state word r of lane k at [c, r, k]).")
      .def("set_chain_state", py::method_adaptor<Engine>(&Engine::set_chain_state), py::arg("visible"), py::arg("z"),
           py::arg("rng"), py::arg("lanes"),
           "Replace the persistent chains by the state chain_state() returned (shapes as there; visible\n"
           "0/1, z a valid state code, no all-zero random state). Nothing is reseeded: the chains\n"
           "continue bit for bit where that state was taken.")
      .def("optimizer_state", &Engine::optimizer_state,
           "The RMSprop accumulators (mean squared gradients), float64: a dict with vw (D, L), va (D,),\n"
           "vwbar (L, D), vabar (L,).")
      .def("set_optimizer_state", &Engine::set_optimizer_state, py::arg("vw"), py::arg("va"), py::arg("vwbar"),
           py::arg("vabar"), "Set the RMSprop accumulators (shapes as optimizer_state(); finite and non-negative).")
      .def(
          "start_profiling", [](Engine& e) { start_profiling(e.tr, e.profile); },
          "From now on, train_steps adds the wall-clock seconds of each step's parts to a profile.")
      .def(
          "stop_profiling", [](Engine& e) { return stop_profiling(e.tr, e.profile, {"chain", "gradient", "update"}); },
          "Stop profiling and return the seconds spent since start_profiling in the chains (T double\n"
          "steps), the gradient (eqs. 16-17) and the update (RMSprop and the tables), and the steps.")
      .def("train_steps", &Engine::train_steps, py::arg("rows"), py::arg("sizes"), py::arg("T"), py::arg("lr"),
           py::arg("rho"), py::arg("eps"), py::arg("freeze_a"), py::arg("epoch") = -1,
           "len(sizes) training steps (section III) in one call, without the GIL.\n\n"
           "Step k uses the minibatch of data rows rows[o_k : o_k + sizes[k]] (o_k = sum of the earlier\n"
           "sizes): every persistent chain runs T double steps (eq. 18), then the gradient of eqs.\n"
           "16a-16d with 17 over the recorded pairs, then an RMSprop ascent step v = rho v + (1 - rho) g^2,\n"
           "p += lr g / (sqrt(v) + eps); a is left unchanged when freeze_a. Returns float64 (len(sizes),):\n"
           "each step's on-the-fly estimate of the mean ln p of its minibatch.\n\n"
           "A step whose gradient is not finite, or after which a parameter is not finite, raises\n"
           "FloatingPointError naming `epoch` (used only in the message; -1: none) and the step. Ctrl-C\n"
           "is checked between steps and raises KeyboardInterrupt. Either way the call is rolled back:\n"
           "parameters, optimizer and chains are left as they were before it.")
      .def("run_chains", &Engine::run_chains, py::arg("T"),
           "Continue every persistent chain T double steps x'(t) -> z(t) -> x'(t+1) (eq. 18), recording\n"
           "them; returns recording().")
      .def("recording", &Engine::recording,
           "The pairs recorded by the last run, chain-major (sample s = c T + t): (Xp, Z) with Xp uint8\n"
           "(C T, D) the states x'(t) and Z the hidden states z(t) drawn from them: int64 (C T,) one-hot,\n"
           "uint8 (C T, L) bits binary.")
      .def_property("gradient", &Engine::gradient, &Engine::set_gradient,
                    "The gradient estimator: 'sampled' (eqs. 16a-16d with 17 on the sampled hidden states) or\n"
                    "'rao_blackwell' (one-hot only: each recorded x' weights every state by Abar(z | x'), and the\n"
                    "state counts of the mixture weights are sum_s Abar(z | x'(s)) instead of the draws).")
      .def("approx_gradient", &Engine::approx_gradient, py::arg("X"), py::arg("Xp"), py::arg("Z"),
           "The approximate log-likelihood gradient of eqs. 16a-16d with 17.\n\n"
           "X: the minibatch, (N, D) 0/1. Xp, Z: S recorded pairs (x'(s), z(s)), Xp (S, D) 0/1 and Z\n"
           "int (S,) one-hot or 0/1 (S, L) binary. Returns a dict: w (D, L), a (D,), wbar (L, D),\n"
           "abar (L,) averaged over the minibatch, and loglik = mean_n ln[(1/S) sum_s A(z(s), x_n)].")
      .def("log_A", &Engine::log_A, py::arg("X"), py::arg("Z"),
           "log A(z_u, x_n) = sum_i [x_in h_i - softplus(h_i)] with h = w z_u + a (eqs. 8, 10).\n\n"
           "X: (N, D) 0/1; Z: U hidden states, int (U,) one-hot or 0/1 (U, L) binary. Returns float64 (N, U).")
      .def("log_likelihood", &Engine::log_likelihood, py::arg("X"), py::arg("Z"), py::arg("log_weight"),
           "ln p(x_n) = logsumexp_u [log_weight[u] + log A(z_u, x_n)]: the mixture over U hidden states.\n\n"
           "Computed in pieces of rows with a Ctrl-C check between them (KeyboardInterrupt).\n"
           "With Z all states and log_weight = ln pbar this is the exact likelihood (appendix A3).\n"
           "X: (N, D) 0/1; Z as in log_A; log_weight: float64 (U,). Returns float64 (N,).")
      .def("hidden_trajectory", &Engine::hidden_trajectory, py::arg("T"), py::arg("n_chains"), py::arg("seed"),
           py::arg("burn_in"),
           "Hidden trajectories z(0..T-1) of n_chains fresh chains (streams keyed by (seed, chain index),\n"
           "x'(0) ~ Bernoulli(xbar)) after burn_in unrecorded double steps: uint64 codes (n_chains, T)\n"
           "(one-hot: the state index; binary: bit b is z_b); binary layers of L > 64 units: (n_chains, T, W)\n"
           "words, W = ceil(L / 64), z_b bit b % 64 of word b / 64. The persistent chains are not touched.\n"
           "Ctrl-C is checked every few milliseconds and raises KeyboardInterrupt (nothing is returned).")
      .def("sample", &Engine::sample, py::arg("n_chains"), py::arg("per_chain"), py::arg("burn_in"), py::arg("thin"),
           py::arg("seed"),
           "Visible samples from n_chains fresh chains (streams keyed by (seed, chain index)): after\n"
           "burn_in double steps, one x every thin steps, per_chain per chain. Returns (X, Z): X uint8\n"
           "(n_chains per_chain, D), chain-major, and the hidden state z that produced each x: int64 (n,)\n"
           "one-hot, uint8 (n, L) bits binary. The persistent chains are not touched. Ctrl-C is checked\n"
           "every few milliseconds and raises KeyboardInterrupt.");
}

}  // namespace nemm::bindings
