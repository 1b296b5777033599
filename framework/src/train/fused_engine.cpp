// The fused CPU engine. For the small nets of this field (tens of units, tens to
// hundreds of samples) a step is ~30 ATen ops of a few microseconds of dispatch each and
// almost no arithmetic; doing the whole step in loops per member removes the dispatch.
// The loops are fused_kernels*: one member alone, or a group of members interleaved in the
// lanes of SIMD registers, for the widest instruction set the CPU has. Work items (groups
// and single members) run on a WorkTeam of as many threads as LibTorch's intra-op threads,
// which, unlike an OpenMP team, never waits for a thread another process keeps off its core;
// between two looks of the training loop each item takes its whole chunk of steps at once
// (run_steps). Wide nets take tiled matrix products instead (fused_wide_path.h): a member per
// thread, or, with fewer members than threads, each member's stages shared out among them.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "fused_kernels.h"
#include "ncflab/core/work_team.h"
#include "ncflab/train/engine.h"

namespace ncflab {
namespace {

// The most members a kernel computes together (float32 in AVX-512's 16 lanes).
constexpr int kMaxLanes = 16;

// Whether `net` is wide (fused_engine_is_wide).
template <typename T>
bool is_wide(const fused::Net<T>& net) {
  int64_t parameters = 0;
  for (size_t l = 0; l < net.layers; ++l) parameters += net.shapes[2 * l] * net.shapes[2 * l + 1];
  return fused_engine_is_wide(net.samples, parameters);
}

// A run of `count` members of the active list, from `first`, computed in one kernel call.
struct WorkItem {
  size_t first;
  int count;
};

template <typename T>
class FusedEngine final : public TrainingEngine {
 public:
  FusedEngine(FeedForward model, torch::Tensor inputs, torch::Tensor labels, LossKind loss,
              CpuIsa isa)
      : model_(std::move(model)),
        inputs_(inputs.contiguous()),
        labels_(labels.contiguous()),
        team_(at::get_num_threads()) {
    for (const auto& w : model_->weights()) {
      TORCH_CHECK(w.is_contiguous(), "fused engine – weights must be contiguous");
      gradients_.push_back(torch::zeros_like(w));
      shapes_.push_back(w.size(1));
      shapes_.push_back(w.size(2));
    }
    const auto& activation = model_->options.activation();
    net_.samples = inputs_.size(0);
    net_.inputs = inputs_.template data_ptr<T>();
    net_.labels = labels_.template data_ptr<T>();
    net_.logistic = loss == LossKind::logistic;
    net_.p = activation.p();
    net_.negative_coefficient = activation.p() == 1       ? activation.alpha()
                                : activation.p() % 2 == 0 ? -activation.alpha()
                                                          : activation.alpha();
    net_.layers = gradients_.size();
    net_.shapes = shapes_.data();
    net_.hidden = static_cast<size_t>(model_->hidden_layers());
    // A single-layer model's output row is fixed to ones: H = Σ_j σ(w_jᵀx).
    net_.learned_output = model_->options.kind() == ModelKind::feedforward;
    weights_.resize(net_.layers);
    gradient_blocks_.resize(net_.layers);
    net_.weights = weights_.data();
    net_.gradients = gradient_blocks_.data();
    // Wide nets: the kernels' own tiled products (fused_wide_path.h); a member per thread when
    // there is one for every thread, else each member in turn spread over all threads.
    net_.wide = is_wide(net_);
    spread_members_ = net_.wide && model_->members() < team_.threads();
    const int kernels = spread_members_ ? 1 : team_.threads();
    for (int t = 0; t < kernels; ++t) kernels_.push_back(fused::make_member_kernel(isa, net_));
    TORCH_CHECK(kernels_.front()->lanes() <= kMaxLanes, "fused engine – ",
                kernels_.front()->lanes(), " lanes, more than run_steps holds");
  }

  void evaluate(const std::vector<uint8_t>& active, StepStatistics& statistics) override {
    statistics.loss.resize(active.size());
    statistics.norm.resize(active.size());
    statistics.gradient_norm.resize(active.size());
    bind(active);
    if (spread_members_) {
      numbers_.resize(members_.size());
      for (size_t m = 0; m < members_.size(); ++m) {
        evaluate_spread(members_[m], numbers_[m]);
        record(m, statistics);
      }
      return;
    }
    plan_items();
    numbers_.resize(members_.size());
    // Every member is computed by the same operations whichever item, lane or thread it
    // lands in (fused_kernels.h), so the results do not depend on the number of threads.
    team_.run(static_cast<int64_t>(items_.size()), [&](int64_t k, int thread) {
      auto& kernel = *kernels_[static_cast<size_t>(thread)];
      const WorkItem& item = items_[static_cast<size_t>(k)];
      kernel.evaluate(net_, members_.data() + item.first, item.count, numbers_.data() + item.first);
      for (size_t m = item.first; m < item.first + static_cast<size_t>(item.count); ++m)
        record(m, statistics);
    });
  }

  void update(double step_size, const std::vector<uint8_t>& active) override {
    bind(active);
    const auto members = static_cast<int64_t>(members_.size());
    const T eta = static_cast<T>(step_size);
    // Elementwise, so any split over threads gives the same weights; chunks of members big
    // enough that handing one out costs little next to its work.
    constexpr int64_t kChunk = 32;
    const auto update_members = [&](int64_t chunk, int /*thread*/) {
      const int64_t end = std::min(members, (chunk + 1) * kChunk);
      for (int64_t m = chunk * kChunk; m < end; ++m) fused::member_update(net_, members_[m], eta);
    };
    const int64_t chunks = (members + kChunk - 1) / kChunk;
    if (chunks == 1) {
      update_members(0, 0);
    } else {
      team_.run(chunks, update_members);
    }
  }

  // The SIMD kernels' steps in chunks: each work item takes all its steps on one thread, so
  // the threads meet once per chunk, and a member's weights, gradients and scratch stay in
  // that core's cache between the kernel, the checks and the update. Lanes of members that
  // finish go on being computed at their frozen weights (the same gradients bit for bit,
  // which is what the engine's gradients hold afterwards); their results are not used.
  // Not for members spread over the threads: their steps are long, and the threads meet
  // several times within each anyway.
  bool runs_step_chunks() const override { return !spread_members_; }

  StepChunk run_steps(const StepRule& rule, int64_t k, int64_t until,
                      const std::vector<uint8_t>& active,
                      const std::vector<uint8_t>& escaped) override {
    TORCH_CHECK(runs_step_chunks(),
                "fused engine – wide nets with fewer members than threads take no chunks of steps");
    TORCH_CHECK(until > k, "fused engine – run_steps until (", until, ") must be after k (", k,
                ")");
    TORCH_CHECK(escaped.size() == active.size(), "fused engine – run_steps: ", escaped.size(),
                " escape flags for ", active.size(), " members");
    const size_t members = active.size();
    StepChunk chunk;
    chunk.finish_step.assign(members, -1);
    chunk.diverged.assign(members, 0);
    chunk.escape_step.assign(members, -1);
    chunk.escape_norm.assign(members, 0.0);
    chunk.loss.assign(members, 0.0);
    chunk.norm.assign(members, 0.0);
    chunk.gradient_norm.assign(members, 0.0);
    std::vector<uint8_t> running = active;
    std::vector<uint8_t> escaped_now = escaped;
    bind(active);
    plan_items();
    numbers_.resize(members_.size());
    const T eta = static_cast<T>(rule.step_size);
    team_.run(static_cast<int64_t>(items_.size()), [&](int64_t index, int thread) {
      auto& kernel = *kernels_[static_cast<size_t>(thread)];
      const WorkItem& item = items_[static_cast<size_t>(index)];
      const int64_t* group = members_.data() + item.first;
      fused::MemberNumbers* numbers = numbers_.data() + item.first;
      // w_{k+1}, from the host's evaluation at k (the gradients in the engine's tensors).
      for (int m = 0; m < item.count; ++m) {
        if (running[static_cast<size_t>(group[m])]) fused::member_update(net_, group[m], eta);
      }
      kernel.load_group(net_, group, item.count);
      uint8_t lanes_running[kMaxLanes];
      for (int64_t step = k + 1; step < until; ++step) {
        bool any = false;
        for (int m = 0; m < item.count; ++m) {
          lanes_running[m] = running[static_cast<size_t>(group[m])];
          any = any || lanes_running[m];
        }
        if (!any) break;
        kernel.evaluate_group(net_, numbers);
        for (int m = 0; m < item.count; ++m) {
          const auto i = static_cast<size_t>(group[m]);
          if (!running[i]) continue;
          const double loss = numbers[m].loss;
          const double norm = std::sqrt(numbers[m].weight_norm2);
          const double gradient_norm = std::sqrt(numbers[m].gradient_norm2);
          const auto check = check_member(rule, loss, norm, gradient_norm, escaped_now[i]);
          if (check.escapes) {
            chunk.escape_step[i] = step;
            chunk.escape_norm[i] = norm;
            escaped_now[i] = 1;
          }
          if (check.finishes) {
            running[i] = 0;
            chunk.finish_step[i] = step;
            chunk.diverged[i] = check.diverges;
            chunk.loss[i] = loss;
            chunk.norm[i] = norm;
            chunk.gradient_norm[i] = gradient_norm;
            lanes_running[m] = 0;
          }
        }
        kernel.update_group(net_, eta, lanes_running);
      }
      kernel.store_group(net_);
    });
    return chunk;
  }

  EngineKind kind() const override { return EngineKind::fused; }

 private:
  // Member s's numbers with its evaluation spread over the team: each stage's pieces shared
  // out as work items (the kernel's stages give the same bits whoever runs a piece).
  void evaluate_spread(int64_t s, fused::MemberNumbers& numbers) {
    auto& kernel = *kernels_.front();
    for (int stage = 0; stage < kernel.stages(); ++stage) {
      kernel.begin_stage(net_, s, stage);
      team_.run(kernel.pieces(stage),
                [&](int64_t piece, int /*thread*/) { kernel.run_piece(net_, s, stage, piece); });
    }
    numbers.loss = kernel.staged_loss();
    fused::member_squared_norms(net_, s, numbers);
  }

  // The active members and the model's and gradients' blocks, which the kernels read.
  void bind(const std::vector<uint8_t>& active) {
    for (size_t l = 0; l < net_.layers; ++l) {
      weights_[l] = model_->weights()[l].template data_ptr<T>();
      gradient_blocks_[l] = gradients_[l].template data_ptr<T>();
    }
    members_.clear();
    for (size_t s = 0; s < active.size(); ++s) {
      if (active[s]) members_.push_back(static_cast<int64_t>(s));
    }
  }

  // The m-th active member's numbers as the trainer's statistics.
  void record(size_t m, StepStatistics& statistics) const {
    const auto index = static_cast<size_t>(members_[m]);
    statistics.loss[index] = numbers_[m].loss;
    statistics.norm[index] = std::sqrt(numbers_[m].weight_norm2);
    statistics.gradient_norm[index] = std::sqrt(numbers_[m].gradient_norm2);
  }

  // Groups of `lanes` active members; a last, smaller group runs interleaved too when it
  // fills at least half the lanes, else member by member (a lane pass costs about as much
  // whether its lanes are full or not).
  void plan_items() {
    items_.clear();
    const auto lanes = static_cast<size_t>(kernels_.front()->lanes());
    const size_t smallest_group = std::max<size_t>(2, lanes / 2);
    for (size_t first = 0; first < members_.size(); first += lanes) {
      const size_t count = std::min(lanes, members_.size() - first);
      if (count >= smallest_group) {
        items_.push_back({first, static_cast<int>(count)});
      } else {
        for (size_t m = first; m < first + count; ++m) items_.push_back({m, 1});
      }
    }
  }

  FeedForward model_;
  torch::Tensor inputs_;
  torch::Tensor labels_;
  std::vector<int64_t> shapes_;  // rows, cols of each weight tensor (per member)
  std::vector<T*> weights_;      // member 0's block of each layer, refreshed per evaluate
  std::vector<T*> gradient_blocks_;
  fused::Net<T> net_;
  // One per thread; one only when members are spread over the threads.
  std::vector<std::unique_ptr<fused::MemberKernel<T>>> kernels_;
  bool spread_members_ = false;   // a wide net with fewer members than threads
  std::vector<int64_t> members_;  // the active ones
  std::vector<WorkItem> items_;
  std::vector<fused::MemberNumbers> numbers_;  // per active member
  WorkTeam team_;                              // as many threads as LibTorch's intra-op threads
};

}  // namespace

// From here on a layer product is a million multiply-adds or more: enough for register tiles
// to pay, and for the threads to share one member's tiles.
bool fused_engine_is_wide(int64_t samples, int64_t parameters) {
  return samples * parameters >= (int64_t{1} << 20);
}

std::unique_ptr<TrainingEngine> make_fused_engine(FeedForward model, torch::Tensor inputs,
                                                  torch::Tensor labels, LossKind loss, CpuIsa isa) {
  TORCH_CHECK(inputs.device().is_cpu(),
              "fused engine – runs on CPU only (use engine batched on CUDA) – got ",
              inputs.device());
  if (inputs.scalar_type() == torch::kFloat32) {
    return std::make_unique<FusedEngine<float>>(std::move(model), std::move(inputs),
                                                std::move(labels), loss, isa);
  }
  TORCH_CHECK(inputs.scalar_type() == torch::kFloat64,
              "fused engine – float32 or float64 only – got ", inputs.scalar_type());
  return std::make_unique<FusedEngine<double>>(std::move(model), std::move(inputs),
                                               std::move(labels), loss, isa);
}

}  // namespace ncflab
