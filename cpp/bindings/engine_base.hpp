// What Engine (engine.hpp) and RBMEngine (rbm_engine.hpp) share: their trainer (model, persistent
// chains, data, optimizer state), the step profile, the training data and persistent chains in
// and out, and the call of many training steps with its rollback. Bound on each engine's class
// through py::method_adaptor (this base is not a Python type of its own).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "chain_state.hpp"
#include "convert.hpp"
#include "interrupt.hpp"
#include "step_profile.hpp"
#include "nemm/params.hpp"
#include "nemm/pieces.hpp"

namespace nemm::bindings {

template <class TrainerT>
class EngineBase {
 public:
  TrainerT tr;
  StepTimes profile;  // filled while profiling (step_profile.hpp)

  explicit EngineBase(const Settings& s) : tr(s) {}

  const Settings& settings() const { return tr.model.s; }

  void set_data(const U8Array& X) { tr.data = rows_of(X, settings().D, "X"); }

  void reset_chains(int n_chains, uint64_t seed, const py::object& init) {
    reset_chains_from(tr.chains, tr.model, n_chains, seed, init);
  }

  py::array_t<uint8_t> chain_states() const { return visible_states_of(tr.chains, settings().D); }

  // "" or why the parameters are beyond what ln Z can resolve (the check of every training step).
  std::string unresolvable_params() const { return unresolvable(tr.model.p); }

  // The whole state of the persistent chains, for an exact resume (chain_state.hpp).
  py::dict chain_state() const { return chain_state_of(tr.chains, settings().D); }

  // Chains rebuilt for this model with their state overwritten: no reseeding, so they continue
  // exactly where chain_state() left them.
  void set_chain_state(const U8Array& visible, const U64Array& z, const U64Array& rng, const py::array& lanes) {
    set_chain_state_of(tr.chains, tr.model, visible, z, rng, lanes);
  }

 protected:
  // Many training steps in one call, without the GIL: `rows` holds the minibatches back to back,
  // `sizes` their lengths, and step(rows, n, loglik) takes one step (returning "" or what went
  // non-finite, nemm/pieces.hpp). The Python loop hands a whole epoch over at once: one GIL
  // release for many steps. Divergence or Ctrl-C rolls the whole call back (the trainer's
  // snapshot): the engine is left as it was before the call, a state the caller's bookkeeping
  // (epoch, minibatch stream) agrees with. Returns each step's log-likelihood.
  template <class Step>
  py::array_t<double> steps_call(const I64Array& rows, const I64Array& sizes, long epoch, Step step) {
    check_minibatches(rows, sizes, tr.data.size());
    py::array_t<double> ll(sizes.size());
    double* out = ll.mutable_data();
    const int64_t* r = rows.data();
    const int64_t* sz = sizes.data();
    StepsOutcome outcome;
    {
      py::gil_scoped_release release;
      SignalPoll poll;
      long off = 0;
      const long n_steps = long(sizes.size());
      outcome = run_steps(
          tr, n_steps,
          [&](long k) {
            std::string why = step(r + off, long(sz[k]), out + k);
            off += sz[k];
            // Parameters beyond what ln Z resolves: judged once per call (one pass over them),
            // which is what a rollback undoes anyway.
            if (why.empty() && k + 1 == n_steps) why = unresolvable(tr.model.p);
            return why;
          },
          poll);
    }
    raise_if_stopped(outcome, epoch);
    return ll;
  }
};

}  // namespace nemm::bindings
