// δ^(L−2) rescaling between training time and NCF-flow time (SPEC §1).
#include "ncflab/ncf/time_scale.h"

#include <cmath>

namespace ncflab {

double rescaled_time(double time, double delta, int64_t total_degree) {
  return time * std::pow(delta, static_cast<double>(total_degree - 2));
}

double training_time(double flow_time, double delta, int64_t total_degree) {
  return flow_time / std::pow(delta, static_cast<double>(total_degree - 2));
}

}  // namespace ncflab
