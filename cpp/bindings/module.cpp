// The extension module nemm._core: the docstring, the version, and one call per topic.
#include <pybind11/pybind11.h>

#include "register.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "nemm C++ core: kernels, persistent chains, log-domain likelihood, gradient, counting";
#ifdef NEMM_VERSION
  m.attr("__version__") = NEMM_VERSION;
#endif
  nemm::bindings::register_runtime(m);
  nemm::bindings::register_counting(m);
  nemm::bindings::register_engine(m);
  nemm::bindings::register_rbm(m);
  nemm::bindings::register_diagnostics(m);
}
