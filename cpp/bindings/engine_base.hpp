// What Engine (engine.hpp) and RBMEngine (rbm_engine.hpp) share: their trainer (model, persistent
// chains, data, optimizer state), the step profile, and the training data and persistent chains
// in and out. Bound on each engine's class through py::method_adaptor (this base is not a
// Python type of its own).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "chain_state.hpp"
#include "convert.hpp"
#include "step_profile.hpp"
#include "nemm/params.hpp"

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

  // The whole state of the persistent chains, for an exact resume (chain_state.hpp).
  py::dict chain_state() const { return chain_state_of(tr.chains, settings().D); }

  // Chains rebuilt for this model with their state overwritten: no reseeding, so they continue
  // exactly where chain_state() left them.
  void set_chain_state(const U8Array& visible, const U64Array& z, const U64Array& rng, const py::array& lanes) {
    set_chain_state_of(tr.chains, tr.model, visible, z, rng, lanes);
  }
};

}  // namespace nemm::bindings
