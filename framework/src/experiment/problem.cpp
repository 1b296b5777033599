// Turns a validated Config into tensors: data, ensemble model, NCF labels.
#include "ncflab/experiment/problem.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "ncflab/core/errors.h"

namespace ncflab {

torch::Device resolve_device(const Config& config) {
  const bool cuda = torch::cuda::is_available();
  switch (config.device) {
    case DeviceChoice::cpu:
      return torch::kCPU;
    case DeviceChoice::automatic:
      return cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    case DeviceChoice::cuda:
      if (!cuda) {
        throw InputError(config.location_of("device"), "device",
                         "cpu or auto on this machine (cuda needs a CUDA LibTorch and a GPU)",
                         "cuda");
      }
      return torch::kCUDA;
  }
  return torch::kCPU;
}

SyntheticDataOptions synthetic_data_options(const Config& config) {
  return SyntheticDataOptions(config.data)
      .teacher_activation(config.model.activation)
      .seed(static_cast<uint64_t>(config.seed));
}

Dataset load_data(const Config& config) {
  const auto& settings = config.data;
  Dataset data = settings.source == DataSource::csv
                     ? load_csv_data(settings.path, settings.label)
                     : make_synthetic_data(synthetic_data_options(config));
  normalize_inputs(data, settings.normalize);
  const std::string where = settings.source == DataSource::csv ? settings.path : "synthetic data";
  check_labels(config.loss, data.labels, where, data.label_name);
  return data;
}

FeedForwardOptions model_options(const Config& config, int64_t input_dim,
                                 const EnsembleInit& members) {
  auto options = FeedForwardOptions(input_dim, config.model.widths)
                     .kind(config.model.kind)
                     .activation(config.model.activation)
                     .members(config.ensemble.seeds)
                     .init_scale(config.init.scale)
                     .seed(static_cast<uint64_t>(config.seed))
                     .dtype(config.dtype);
  if (!members.deltas.empty()) {
    options.members(static_cast<int64_t>(members.deltas.size()))
        .member_init_scales(members.deltas)
        .member_seeds(members.seeds);
  }
  return options;
}

KktSearchOptions kkt_search_options(const Config& config) {
  return KktSearchOptions(config.kkt).seed(static_cast<uint64_t>(config.seed));
}

int64_t default_threads() {
  // OMP_NUM_THREADS where the environment sets it (SLURM jobs, ctest -j, a shared machine);
  // otherwise every logical core: LibTorch's own default is the number of physical cores (1
  // on a 2-vCPU machine with hyper-threading), and researchers expect every core.
  if (const char* text = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long threads = std::strtol(text, &end, 10);
    if (end != text && *end == '\0' && threads > 0) return threads;
  }
  return static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
}

namespace {

// Memory this machine can give a new process now: MemAvailable, else all of it.
long double available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  long double kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(256, '\n');
  }
  return static_cast<long double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
}

std::string gib(long double bytes) {
  return fmt::format("{:.3g} GiB", static_cast<double>(bytes / (1 << 30)));
}

}  // namespace

MemoryEstimate estimate_memory(const Config& config, int64_t n, int64_t d, int64_t members) {
  const long double element = config.dtype == torch::kFloat64 ? 8 : 4;
  long double parameters = 0;  // per member
  long double units = 0;       // hidden units per sample
  long double previous = static_cast<long double>(d);
  for (const int64_t width : config.model.widths) {
    parameters += previous * static_cast<long double>(width);
    units += static_cast<long double>(width);
    previous = static_cast<long double>(width);
  }
  parameters += previous;  // the output row
  MemoryEstimate estimate;
  // The data in float64 while read or generated, in the run's dtype, and as data.pt.
  estimate.data = static_cast<long double>(n) * static_cast<long double>(d + 1) * 8 * 3;
  // Weights, gradients, directions, checkpoint and snapshots, the flow's stages.
  estimate.weights = static_cast<long double>(members) * parameters * element * 12;
  // Pre-activations, activations and their gradients of every member on every sample.
  estimate.activations =
      static_cast<long double>(members) * static_cast<long double>(n) * units * element * 4;
  return estimate;
}

void check_fits_in_memory(const Config& config, int64_t n, int64_t d, int64_t members) {
  const auto estimate = estimate_memory(config, n, d, members);
  const long double available = available_memory_bytes();
  if (estimate.total() <= available) return;
  const char* key = estimate.data >= std::max(estimate.weights, estimate.activations) ? "data.n"
                    : estimate.weights >= estimate.activations ? "model.widths"
                    : members > 1                              ? "ensemble.seeds"
                                                               : "data.n";
  throw InputError(
      config.location_of(key), key,
      fmt::format("a problem that fits in memory ({} available)", gib(available)),
      fmt::format("an estimated {} (data {}, weights {}, activations {}; n = {}, d = {}, "
                  "{} member{})",
                  gib(estimate.total()), gib(estimate.data), gib(estimate.weights),
                  gib(estimate.activations), n, d, members, members == 1 ? "" : "s"));
}

Problem build_problem(const Config& config, const EnsembleInit& members) {
  at::set_num_threads(static_cast<int>(config.threads > 0 ? config.threads : default_threads()));
  Problem problem;
  problem.config = config;
  problem.device = resolve_device(config);
  problem.dtype = config.dtype;
  const int64_t member_count =
      members.deltas.empty() ? config.ensemble.seeds : static_cast<int64_t>(members.deltas.size());
  // Refused before anything is allocated (synthetic data) or right after reading (a CSV
  // file's size is known only then), rather than failing inside LibTorch's allocator.
  if (config.data.source == DataSource::synthetic) {
    check_fits_in_memory(config, config.data.n(), config.data.d(), member_count);
  }
  problem.data = load_data(config);
  check_fits_in_memory(config, problem.data.size(), problem.data.dim(), member_count);
  const auto to_run = torch::TensorOptions().device(problem.device).dtype(problem.dtype);
  problem.data.inputs = problem.data.inputs.to(to_run);
  problem.data.labels = problem.data.labels.to(to_run);
  problem.ncf_labels = ncf_labels(config.loss, problem.data.labels);
  problem.model = FeedForward(model_options(config, problem.data.dim(), members));
  problem.model->to(problem.device);
  return problem;
}

std::string describe_problem(const Problem& problem) {
  const Config& config = problem.config;
  const auto& model = *problem.model;
  const auto degrees = model.degrees();
  const int64_t total = model.total_degree();
  const double delta = config.init.scale;
  std::string text;
  text += fmt::format("  data     {}\n", problem.data.origin);
  text += fmt::format("           labels in [{:.4g}, {:.4g}]\n",
                      problem.data.labels.min().item<double>(),
                      problem.data.labels.max().item<double>());
  text += fmt::format("  model    {}\n", describe_model(model.options));
  text += fmt::format("  degrees  q = [{}] (W1 first), total L = {}\n", fmt::join(degrees, ", "),
                      total);
  text +=
      fmt::format("  weights  P = {} per member, S = {} member{}, {} on {}\n",
                  model.parameters_per_member(), model.members(), model.members() == 1 ? "" : "s",
                  problem.dtype == torch::kFloat64 ? "float64" : "float32", problem.device.str());
  text += fmt::format("  loss     {}, NCF labels ybar = {}\n", loss_name(config.loss),
                      config.loss == LossKind::square ? "y" : "y/2");
  if (total > 2) {
    const bool flows = config.train.integrator() == Integrator::gradient_flow;
    text += fmt::format(
        "  scales   delta = {:g}: H starts ~ delta^L = {:.3g}; escape at t ~ T*/delta^(L-2) = "
        "T* x {:.3g} ({}steps ~ T* x {:.3g} at step {:g})\n",
        delta, std::pow(delta, total), std::pow(delta, -(total - 2.0)),
        flows ? "gradient descent: " : "",
        std::pow(delta, -(total - 2.0)) / config.train.step_size(), config.train.step_size());
  } else {
    text += fmt::format(
        "  scales   delta = {:g}: L = 2, no blow-up; escape time grows like log(1/delta) = "
        "{:.3g}\n",
        delta, std::log(1.0 / delta));
  }
  return text;
}

}  // namespace ncflab
