// The NCF gradient flow's public entry (flow.h): the options checked, the integrator run
// with a progress callback (flow_integrator.h), status names and the progress line.
#include "ncflab/ncf/flow.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <ostream>

#include "flow_integrator.h"
#include "ncflab/core/signals.h"

namespace ncflab {
namespace {

using flow_detail::FlowIntegrator;

constexpr int64_t kProgressEvery = 20;  // callers throttle by time (flow_progress_printer)

void check_options(const FlowOptions& options) {
  TORCH_CHECK(options.max_norm() >= 0, "integrate_ncf_flow – max_norm must be >= 0 – got ",
              options.max_norm());
  TORCH_CHECK(options.rtol() > 0 && options.rtol() < 1,
              "integrate_ncf_flow – rtol must be in (0, 1) – got ", options.rtol());
  TORCH_CHECK(options.direction_tol() > 0 && options.direction_tol() < 1,
              "integrate_ncf_flow – direction_tol must be in (0, 1) – got ",
              options.direction_tol());
  TORCH_CHECK(options.stall_tol() >= 0 && options.stall_tol() < 1,
              "integrate_ncf_flow – stall_tol must be in [0, 1) – got ", options.stall_tol());
  TORCH_CHECK(options.max_steps() >= 1, "integrate_ncf_flow – max_steps must be >= 1 – got ",
              options.max_steps());
  TORCH_CHECK(options.max_time() >= 0, "integrate_ncf_flow – max_time must be >= 0 – got ",
              options.max_time());
  TORCH_CHECK(options.record_every() >= 1, "integrate_ncf_flow – record_every must be >= 1 – got ",
              options.record_every());
}

void check_inputs(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options) {
  check_options(options);
  TORCH_CHECK(u0.dim() == 2 && u0.size(1) == ncf.parameters() && u0.size(0) >= 1,
              "integrate_ncf_flow – u0 must be [S, ", ncf.parameters(), "] with S >= 1 – got ",
              u0.sizes());
  TORCH_CHECK(u0.is_floating_point(), "integrate_ncf_flow – u0 must be floating point – got ",
              u0.scalar_type());
  const auto& sample_times = options.sample_times();
  TORCH_CHECK(sample_times.empty() || static_cast<int64_t>(sample_times.size()) == u0.size(0),
              "integrate_ncf_flow – sample_times needs one list per member (", u0.size(0),
              ") – got ", sample_times.size());
  for (const auto& times : sample_times) {
    for (size_t i = 0; i < times.size(); ++i) {
      TORCH_CHECK(times[i] >= 0 && (i == 0 || times[i] > times[i - 1]),
                  "integrate_ncf_flow – sample times must be >= 0 and increasing – got ", times[i],
                  " at position ", i);
    }
  }
}

}  // namespace

const char* flow_status_name(FlowStatus status) {
  switch (status) {
    case FlowStatus::blew_up:
      return "blew_up";
    case FlowStatus::collapsed:
      return "collapsed";
    case FlowStatus::stalled:
      return "stalled";
    case FlowStatus::max_time:
      return "max_time";
    case FlowStatus::max_steps:
      return "max_steps";
  }
  return "unknown";
}

std::function<void(const FlowProgress&)> flow_progress_printer(std::ostream& out,
                                                               double interval_seconds) {
  auto last =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [&out, interval_seconds, last](const FlowProgress& progress) {
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - *last).count() < interval_seconds) return;
    *last = now;
    out << fmt::format("flow: {:>8} steps  {} member(s) active  t = {:.6g}  max ||u|| = {:.3g}\n",
                       progress.accepted, progress.active, progress.time, progress.norm)
        << std::flush;
  };
}

FlowResult integrate_ncf_flow(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options,
                              std::function<void(const FlowProgress&)> progress) {
  check_inputs(ncf, u0, options);
  torch::NoGradGuard no_grad;
  FlowIntegrator integrator(ncf, u0, options);
  for (int64_t iteration = 1; integrator.step(); ++iteration) {
    if (progress && iteration % kProgressEvery == 0) progress(integrator.progress());
    stop_if_interrupted("the NCF flow");
  }
  return std::move(integrator).result();
}

}  // namespace ncflab
