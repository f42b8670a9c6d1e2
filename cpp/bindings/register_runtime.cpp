// Topic "runtime": the OpenMP thread pool the chains and the likelihood run on.
#include <pthread.h>

#include <exception>
#include <new>
#include <stdexcept>

#include "nemm/parallel.hpp"
#include "nemm/params.hpp"
#include "register.hpp"

namespace nemm::bindings {

namespace py = pybind11;

void register_runtime(py::module_& m) {
  // A forked child runs the core on one thread (nemm/parallel.hpp): libgomp's pool is the
  // parent's. The handler only sets a flag, which is safe in a child of a threaded process.
  pthread_atfork(nullptr, nullptr, [] { g_forked_child.store(true); });
  // An allocation that fails anywhere in the core (inside parallel regions too: parallel.hpp)
  // reaches Python as MemoryError with a message that says what to do.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError,
                      "out of memory in nemm's C++ core (std::bad_alloc) under this process's memory "
                      "limits (physical memory, cgroup, ulimit -v); ask for less: fewer samples, steps, "
                      "chains or hidden units");
    }
  });
  m.attr("MAX_PARAMETER_SCALE") = kMaxParameterScale;

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
      "max_threads", []() { return n_threads(); },
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
