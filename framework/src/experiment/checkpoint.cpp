// Checkpoint files: w_k and the trainer's state (with the gradient flow's restart record).
// Every value is stored as float64 (exact for float64 and float32 weights and for step
// counts below 2^53).
#include "ncflab/experiment/checkpoint.h"

#include <fmt/format.h>

#include <map>

#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/model/feedforward.h"

namespace ncflab {
namespace {

torch::Tensor doubles(const std::vector<double>& values) {
  return torch::tensor(values, torch::kFloat64);
}

template <typename T, typename F>
torch::Tensor per_member(const std::vector<T>& items, F&& value) {
  std::vector<double> values;
  for (const auto& item : items) values.push_back(static_cast<double>(value(item)));
  return doubles(values);
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const TrainState& state,
                     const std::vector<torch::Tensor>& weights) {
  auto tensors = named_layers(weights);
  tensors.emplace_back("step", doubles({static_cast<double>(state.step)}));
  tensors.emplace_back(
      "status", per_member(state.status, [](MemberStatus s) { return static_cast<int>(s); }));
  tensors.emplace_back("active", per_member(state.active, [](uint8_t a) { return a; }));
  tensors.emplace_back("steps_done", per_member(state.steps_done, [](int64_t k) { return k; }));
  tensors.emplace_back("escape_step",
                       per_member(state.escape, [](const EscapeRecord& e) { return e.step; }));
  tensors.emplace_back("escape_time",
                       per_member(state.escape, [](const EscapeRecord& e) { return e.time; }));
  tensors.emplace_back("escape_rescaled_time", per_member(state.escape, [](const EscapeRecord& e) {
                         return e.rescaled_time;
                       }));
  tensors.emplace_back("escape_norm",
                       per_member(state.escape, [](const EscapeRecord& e) { return e.norm; }));
  tensors.emplace_back("loss", doubles(state.loss));
  tensors.emplace_back("norm", doubles(state.norm));
  tensors.emplace_back("gradient_norm", doubles(state.gradient_norm));
  tensors.emplace_back("time", doubles(state.times));
  tensors.emplace_back("evaluations", per_member(state.evaluations, [](int64_t n) { return n; }));
  std::vector<double> finished_now(state.active.size(), 0.0);
  for (int64_t s : state.finished_now) finished_now[static_cast<size_t>(s)] = 1.0;
  tensors.emplace_back("finished_now", doubles(finished_now));
  if (state.flow) {
    const auto& flow = *state.flow;
    tensors.emplace_back("flow_start", flow.start.to(torch::kCPU, torch::kFloat64));
    tensors.emplace_back("flow_start_time", doubles(flow.start_time));
    tensors.emplace_back("flow_start_time_low", doubles(flow.start_time_low));
    tensors.emplace_back("flow_step_size", doubles(flow.step_size));
    tensors.emplace_back("flow_after_rejection",
                         per_member(flow.after_rejection, [](uint8_t a) { return a; }));
    tensors.emplace_back("flow_previous_error", doubles(flow.previous_error));
    tensors.emplace_back("flow_previous_step", doubles(flow.previous_step));
    tensors.emplace_back("flow_rejected", per_member(flow.rejected, [](int64_t n) { return n; }));
    tensors.emplace_back("flow_stiff_time", doubles(flow.stiff_time));
    tensors.emplace_back("flow_stiff_steps",
                         per_member(flow.stiff_steps, [](int64_t n) { return n; }));
  }
  save_tensor_dict(path, tensors);
}

Checkpoint load_checkpoint(const std::filesystem::path& path, int64_t members,
                           const std::vector<std::vector<int64_t>>& layer_shapes) {
  if (!std::filesystem::exists(path)) {
    throw InputError({path.string(), 0}, "--resume", "a checkpoint written by ncflab run",
                     "no such file");
  }
  std::map<std::string, torch::Tensor> table;
  for (auto& [name, tensor] : load_tensor_dict(path)) table[name] = tensor.to(torch::kFloat64);
  const auto get = [&](const std::string& key, int64_t size) {
    const auto it = table.find(key);
    if (it == table.end()) {
      throw InputError({path.string(), 0}, key, "a checkpoint written by ncflab run",
                       "the key missing");
    }
    if (size >= 0 && (it->second.dim() != 1 || it->second.size(0) != size)) {
      throw InputError({path.string(), 0}, key, fmt::format("{} values", size),
                       "shape " + c10::str(it->second.sizes()));
    }
    return it->second.contiguous();
  };
  Checkpoint checkpoint;
  for (size_t l = 0; l < layer_shapes.size(); ++l) {
    const auto name = layer_name(l);
    const auto w = get(name, -1);
    const std::vector<int64_t> expected = {members, layer_shapes[l][0], layer_shapes[l][1]};
    if (w.sizes() != torch::IntArrayRef(expected)) {
      throw InputError({path.string(), 0}, name, "shape " + c10::str(torch::IntArrayRef(expected)),
                       "shape " + c10::str(w.sizes()));
    }
    checkpoint.weights.push_back(w);
  }
  auto& state = checkpoint.state;
  state.step = static_cast<int64_t>(get("step", 1)[0].item<double>());
  const auto read = [&](const std::string& key) {
    const auto t = get(key, members);
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + members);
  };
  const auto status = read("status");
  const auto active = read("active");
  const auto steps_done = read("steps_done");
  const auto escape_step = read("escape_step");
  const auto escape_time = read("escape_time");
  const auto escape_rescaled = read("escape_rescaled_time");
  const auto escape_norm = read("escape_norm");
  state.loss = read("loss");
  state.norm = read("norm");
  state.gradient_norm = read("gradient_norm");
  const auto to_counts = [](const std::vector<double>& values) {
    return std::vector<int64_t>(values.begin(), values.end());
  };
  // Checkpoints of earlier versions lack these; the trainer derives them from the steps.
  if (table.count("time") != 0) state.times = read("time");
  if (table.count("evaluations") != 0) state.evaluations = to_counts(read("evaluations"));
  if (table.count("finished_now") != 0) {
    const auto finished_now = read("finished_now");
    for (int64_t s = 0; s < members; ++s) {
      if (finished_now[static_cast<size_t>(s)] != 0) state.finished_now.push_back(s);
    }
  }
  if (table.count("flow_start") != 0) {
    auto flow = std::make_shared<FlowRestart>();
    flow->start = get("flow_start", -1);
    if (flow->start.dim() != 2 || flow->start.size(0) != members) {
      throw InputError({path.string(), 0}, "flow_start", fmt::format("shape [{}, P]", members),
                       "shape " + c10::str(flow->start.sizes()));
    }
    flow->start_time = read("flow_start_time");
    flow->start_time_low = read("flow_start_time_low");
    flow->step_size = read("flow_step_size");
    for (double a : read("flow_after_rejection")) flow->after_rejection.push_back(a != 0 ? 1 : 0);
    flow->previous_error = read("flow_previous_error");
    flow->previous_step = read("flow_previous_step");
    flow->rejected = to_counts(read("flow_rejected"));
    flow->stiff_time = read("flow_stiff_time");
    flow->stiff_steps = to_counts(read("flow_stiff_steps"));
    state.flow = flow;
  }
  for (int64_t s = 0; s < members; ++s) {
    const auto i = static_cast<size_t>(s);
    const int code = static_cast<int>(status[i]);
    if (code < 0 || code > static_cast<int>(MemberStatus::interrupted)) {
      throw InputError({path.string(), 0}, "status", "a member status code 0-4",
                       fmt::format("{}", status[i]));
    }
    state.status.push_back(static_cast<MemberStatus>(code));
    state.active.push_back(active[i] != 0 ? 1 : 0);
    state.steps_done.push_back(static_cast<int64_t>(steps_done[i]));
    state.escape.push_back(
        {static_cast<int64_t>(escape_step[i]), escape_time[i], escape_rescaled[i], escape_norm[i]});
  }
  return checkpoint;
}

}  // namespace ncflab
