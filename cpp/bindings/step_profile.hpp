// The in-run profile of training steps (nemm::StepTimes, nemm/step_timing.hpp) for Python: where
// the time of a step goes, read by bench/suite.py. Shared by Engine (engine.hpp) and RBMEngine
// (rbm_engine.hpp): start_profiling points the trainer at the engine's StepTimes, and
// stop_profiling detaches it and returns the seconds of each part and the number of steps.
#pragma once
#include <pybind11/pybind11.h>

#include <array>

#include "nemm/step_timing.hpp"

namespace nemm::bindings {

namespace py = pybind11;

template <class TrainerT>
void start_profiling(TrainerT& tr, StepTimes& times) {
  times = StepTimes();
  tr.times = &times;
}

template <class TrainerT>
py::dict stop_profiling(TrainerT& tr, const StepTimes& times, const std::array<const char*, 3>& parts) {
  tr.times = nullptr;
  py::dict d;
  for (std::size_t k = 0; k < parts.size(); ++k) d[parts[k]] = times.seconds[k];
  d["steps"] = times.steps;
  return d;
}

}  // namespace nemm::bindings
