// Topic "counting": transition counts n(z -> z') along hidden trajectories (section IV.B).
// The counts give the empirical M of eq. 21.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "convert.hpp"
#include "nemm/counting.hpp"
#include "register.hpp"

namespace nemm::bindings {

void register_counting(py::module_& m) {
  m.def(
      "count_transitions",
      [](const U64Array& traj, uint64_t n_states) {
        if (traj.ndim() != 2) throw std::invalid_argument("trajectory must be (n_chains, T)");
        if (n_states == 0 || n_states > 4096) throw std::invalid_argument("dense counts need 1 <= n_states <= 4096");
        for (py::ssize_t k = 0; k < traj.size(); ++k)
          if (traj.data()[k] >= n_states) throw std::invalid_argument("trajectory state out of range");
        py::array_t<int64_t> counts({py::ssize_t(n_states), py::ssize_t(n_states)});
        std::fill(counts.mutable_data(), counts.mutable_data() + counts.size(), int64_t(0));
        {
          py::gil_scoped_release release;
          count_transitions_dense(traj.data(), long(traj.shape(0)), long(traj.shape(1)), n_states,
                                  counts.mutable_data());
        }
        return counts;
      },
      py::arg("trajectory"), py::arg("n_states"),
      "Dense transition counts n[z, z'] along each row of a (n_chains, T) trajectory of state codes.\n\n"
      "Returns an int64 (n_states, n_states) matrix, row = current state z, column = next state z'\n"
      "(1 <= n_states <= 4096); pairs are counted within each chain only, T - 1 per chain.");
  m.def(
      "count_transitions_sparse",
      [](const U64Array& traj) {
        if (traj.ndim() != 2) throw std::invalid_argument("trajectory must be (n_chains, T)");
        SparseCounts sc;
        {
          py::gil_scoped_release release;
          sc = count_transitions_sparse(traj.data(), long(traj.shape(0)), long(traj.shape(1)));
        }
        return py::make_tuple(py::array(py::cast(sc.from)), py::array(py::cast(sc.to)), py::array(py::cast(sc.count)));
      },
      py::arg("trajectory"),
      "Sparse transition counts along each row of a (n_chains, T) trajectory of state codes.\n\n"
      "Returns (from, to, count): uint64, uint64, int64 arrays of the observed pairs z -> z',\n"
      "sorted by (from, to); for state spaces too large for count_transitions.");
}

}  // namespace nemm::bindings
