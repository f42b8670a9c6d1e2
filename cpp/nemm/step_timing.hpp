// Wall-clock seconds of the three parts of the training steps, summed while a trainer's `times`
// points here (bench/suite.py reads them through the bindings' step_profile.hpp to show where a
// step's time goes, in the run itself). Machine (trainer.hpp): chain, gradient, update (RMSprop
// and table refresh); RBM (rbm.hpp): data term, model term, update.
#pragma once
#include <chrono>

namespace nemm {

struct StepTimes {
  double seconds[3] = {0, 0, 0};
  long steps = 0;
  static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  void add(double t0, double t1, double t2, double t3) {
    seconds[0] += t1 - t0;
    seconds[1] += t2 - t1;
    seconds[2] += t3 - t2;
    ++steps;
  }
};

}  // namespace nemm
