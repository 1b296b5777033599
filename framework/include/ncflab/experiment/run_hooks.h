// The hooks a run installs from its config (hooks.*, train.checkpoint_every,
// train.snapshot_every), in the order their metric columns appear.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <vector>

#include "ncflab/experiment/config.h"
#include "ncflab/model/feedforward.h"
#include "ncflab/ncf/flow.h"
#include "ncflab/ncf/ncf.h"
#include "ncflab/train/hooks/kkt_comparison_hook.h"
#include "ncflab/train/hooks/layer_statistics_hook.h"
#include "ncflab/train/hooks/weight_snapshot_hook.h"
#include "ncflab/train/trainer.h"

namespace ncflab {

/// What the hooks of a run refer to.
struct HookInputs {
  const Config* config = nullptr;
  const FeedForwardImpl* model = nullptr;
  std::shared_ptr<const Ncf> ncf;
  const FlowResult* flow = nullptr;  ///< the reference flow; null: none
  std::vector<double> deltas;        ///< δ per member
  /// checkpoint.pt to write every train.checkpoint_every steps and on an interrupt; none
  /// for a batch of runs (not resumable).
  std::optional<std::filesystem::path> checkpoint;
  bool terminal = false;  ///< redraw the progress line in place
};

/// The installed hooks whose results the summary and the run directory read; null when
/// not installed.
struct RunHooks {
  std::shared_ptr<LayerStatisticsHook> layers;
  std::shared_ptr<KktComparisonHook> comparison;
  std::shared_ptr<WeightSnapshotHook> snapshots;
};

/// Installs layer statistics, KKT comparison (with a KKT search when hooks.kkt_search;
/// its result is reported to `out`), weight snapshots, checkpoints and the progress line
/// (to `err`), each when the config asks for it.
RunHooks install_run_hooks(Trainer& trainer, const HookInputs& inputs, std::ostream& out,
                           std::ostream& err);

}  // namespace ncflab
