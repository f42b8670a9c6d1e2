// Topic "diagnostics": ln p(x) from a log A table the caller already has (appendix A3).
// The per-epoch diagnostics need log A(z, x) for the class KL (eq. 22) and ln p(x) for the same
// occupancy; with this the table is computed once, and ln p is the same arithmetic, bit for bit,
// as the mixture likelihood of the engine (nemm/likelihood.hpp, MixtureLikelihood over the
// states of the table): the row plus the log weights, then nemm::logsumexp.
#include <pybind11/numpy.h>

#include <stdexcept>
#include <vector>

#include "nemm/math.hpp"
#include "register.hpp"

namespace nemm::bindings {

namespace py = pybind11;
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

void register_diagnostics(py::module_& m) {
  m.def(
      "log_mixture_rows",
      [](const F64Array& log_A, const F64Array& log_weight) {
        if (log_A.ndim() != 2) throw std::invalid_argument("log_A must be (N, U)");
        if (log_weight.ndim() != 1 || log_weight.shape(0) != log_A.shape(1))
          throw std::invalid_argument("log_weight must have one entry per column of log_A");
        const long N = long(log_A.shape(0));
        const int U = int(log_A.shape(1));
        py::array_t<double> out(N);
        {
          py::gil_scoped_release release;
          const double* la = log_A.data();
          const double* lw = log_weight.data();
          double* o = out.mutable_data();
          constexpr long kRows = 512;  // in pieces: the scratch stays small for any U
          std::vector<double> rows(std::size_t(kRows) * std::size_t(U)), shift, e;
          for (long n0 = 0; n0 < N; n0 += kRows) {
            const long k = std::min(N - n0, kRows);
            for (long n = 0; n < k; ++n)
              for (int u = 0; u < U; ++u) rows[std::size_t(n) * U + u] = la[std::size_t(n0 + n) * U + u] + lw[u];
            row_logsumexp(rows.data(), k, U, o + n0, shift, e);
          }
        }
        return out;
      },
      py::arg("log_A"), py::arg("log_weight"),
      "ln p(x_n) = logsumexp_u (log_weight[u] + log_A[n, u]) for every row of a float64 (N, U) table,\n"
      "the arithmetic of the engine's mixture likelihood. Returns float64 (N,).");
}

}  // namespace nemm::bindings
