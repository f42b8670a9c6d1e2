// The topics of nemm._core: one register_<topic>.cpp each, called in order by module.cpp.
// Adding a topic: its file, its declaration here, its call in module.cpp, its entry in
// CMakeLists.txt (NEMM_BINDINGS).
#pragma once
#include <pybind11/pybind11.h>

namespace nemm::bindings {

void register_runtime(pybind11::module_& m);      // OpenMP threads: openmp_enabled, max_threads, set_num_threads
void register_counting(pybind11::module_& m);     // transition counts along trajectories (section IV.B)
void register_engine(pybind11::module_& m);       // Engine: parameters, chains, training, likelihood, sampling
void register_rbm(pybind11::module_& m);          // RBMEngine: the equilibrium RBM trained by its own gradient
void register_diagnostics(pybind11::module_& m);  // ln p from a log A table (per-epoch diagnostics)

}  // namespace nemm::bindings
