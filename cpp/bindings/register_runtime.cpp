// Topic "runtime": the OpenMP thread pool the chains and the likelihood run on.
#include <pthread.h>

#include <stdexcept>

#include "nemm/parallel.hpp"
#include "register.hpp"

namespace nemm::bindings {

namespace py = pybind11;

void register_runtime(py::module_& m) {
  // A forked child runs the core on one thread (nemm/parallel.hpp): libgomp's pool is the
  // parent's. The handler only sets a flag, which is safe in a child of a threaded process.
  pthread_atfork(nullptr, nullptr, [] { g_forked_child.store(true); });

  m.def(
      "openmp_enabled",
      []() {
#ifdef _OPENMP
        return true;
#else
        return false;
#endif
      },
      "Whether the core was built with OpenMP (else every kernel runs on the calling thread).");
  m.def(
      "max_threads",
      []() { return n_threads(); },
      "The number of threads the next parallel kernel may use, on any thread of the process "
      "(OMP_NUM_THREADS or set_num_threads; 1 without OpenMP and in a forked child).");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw std::invalid_argument("number of threads must be at least 1");
        set_n_threads(n);
      },
      py::arg("n"),
      "Set the number of OpenMP threads for the whole process (n >= 1; no effect without OpenMP "
      "or in a forked child). Results do not depend on it: one random stream per chain, sums in "
      "a fixed order.");
}

}  // namespace nemm::bindings
