// Ctrl-C inside long core calls. The kernels run without the GIL; between pieces of work
// (nemm/pieces.hpp) the calling thread takes the GIL briefly and asks Python whether a signal
// arrived (PyErr_CheckSignals runs the handler, which sets KeyboardInterrupt). The check is
// rate-limited by PieceClock, so it costs one clock read per piece and one GIL round trip every
// few milliseconds. SignalPoll is the core's Poll; raise_if_stopped turns the end of a call of
// training steps into KeyboardInterrupt or FloatingPointError.
#pragma once
#include <pybind11/pybind11.h>

#include <functional>
#include <string>

#include "nemm/pieces.hpp"

namespace nemm::bindings {

namespace py = pybind11;

class SignalPoll : public PieceClock {
 public:
  // Call without the GIL. True when a signal handler raised: the Python error is set, and the
  // caller stops, restores a consistent state and throws py::error_already_set with the GIL.
  // `always`: check now, whatever the clock (at the end of a call whose work must be rolled back
  // on a signal that arrived during it, rather than raised by Python after it returned).
  bool interrupted(bool always = false) {
    if (!due(always)) return false;
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
  }
};

// A stop test for core calls that take one (enumerate_hidden): asks `poll` and, once it said
// yes, keeps saying yes; `interrupted` tells the caller to raise (with the GIL).
inline std::function<bool()> poll_stop(SignalPoll& poll, bool& interrupted) {
  return [&poll, &interrupted] { return interrupted = interrupted || poll.interrupted(); };
}

// With the GIL, after run_steps (nemm/pieces.hpp) with a SignalPoll: KeyboardInterrupt (already
// set by the signal handler) or FloatingPointError naming the step, and `epoch` when it is >= 0
// (the caller's count; used only in the message). Either way the training state was rolled back.
inline void raise_if_stopped(const StepsOutcome& o, long epoch) {
  if (o.interrupted) throw py::error_already_set();
  if (o.bad < 0) return;
  const std::string where = epoch >= 0 ? "epoch " + std::to_string(epoch) + ", step " + std::to_string(o.bad)
                                       : "step " + std::to_string(o.bad) + " of this call";
  PyErr_SetString(
      PyExc_FloatingPointError,
      ("training diverged at " + where + " (" + o.why + "); the training state is rolled back to " +
       (epoch >= 0 ? "the start of that epoch" : "the start of this call") + "; try a smaller learning_rate")
          .c_str());
  throw py::error_already_set();
}

}  // namespace nemm::bindings
