// Member statuses and the bookkeeping of a member finishing.
#include "ncflab/train/train_state.h"

#include <algorithm>

namespace ncflab {

const char* member_status_name(MemberStatus status) {
  switch (status) {
    case MemberStatus::running:
      return "running";
    case MemberStatus::escaped:
      return "escaped";
    case MemberStatus::max_steps:
      return "max_steps";
    case MemberStatus::diverged:
      return "diverged";
    case MemberStatus::interrupted:
      return "interrupted";
  }
  return "unknown";
}

void TrainState::finish(int64_t s, MemberStatus why) {
  const auto i = static_cast<size_t>(s);
  if (!active[i]) return;
  active[i] = 0;
  status[i] = why;
  finished_now.push_back(s);
}

bool TrainState::any(MemberStatus wanted) const {
  return std::find(status.begin(), status.end(), wanted) != status.end();
}

}  // namespace ncflab
