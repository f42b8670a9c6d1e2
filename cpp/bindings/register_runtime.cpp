// Topic "runtime": the OpenMP thread pool the chains and the likelihood run on.
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "register.hpp"

namespace nemm::bindings {

namespace py = pybind11;

void register_runtime(py::module_& m) {
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
      []() {
#ifdef _OPENMP
        return omp_get_max_threads();
#else
        return 1;
#endif
      },
      "The number of threads the next parallel kernel may use (OMP_NUM_THREADS or set_num_threads; "
      "1 without OpenMP).");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw std::invalid_argument("number of threads must be at least 1");
#ifdef _OPENMP
        omp_set_num_threads(n);
#endif
      },
      py::arg("n"),
      "Set the number of OpenMP threads (n >= 1; no effect without OpenMP). Results do not depend "
      "on it: one random stream per chain, sums in a fixed order.");
}

}  // namespace nemm::bindings
