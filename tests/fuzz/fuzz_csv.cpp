// libFuzzer target for the CSV reader: bytes → a CSV file → load_csv_data, with the label
// as the last column and then by name. Refusing an input (InputError, or another
// std::runtime_error) is the expected outcome; crashes, sanitizer findings, hangs and a
// data set whose shape contradicts its columns count as findings.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "fuzz_input_file.h"
#include "ncflab/model/data.h"

namespace {

// The invariants of a loaded data set with `features` feature columns.
void check_shape(const ncflab::Dataset& data, size_t features, const char* how) {
  const bool ok = data.inputs.dim() == 2 && data.labels.dim() == 1 &&
                  data.inputs.size(0) == data.labels.size(0) && data.inputs.size(0) > 0 &&
                  data.inputs.size(1) == static_cast<int64_t>(features) &&
                  data.feature_names.size() == features && data.inputs.is_contiguous() &&
                  data.labels.is_contiguous() && data.inputs.scalar_type() == torch::kFloat64 &&
                  data.labels.scalar_type() == torch::kFloat64;
  if (!ok) {
    std::fprintf(stderr, "fuzz_csv: inconsistent data set (%s): inputs %s, labels %s, %zu names\n",
                 how, c10::str(data.inputs.sizes()).c_str(), c10::str(data.labels.sizes()).c_str(),
                 data.feature_names.size());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ncflab::fuzz::FuzzInputFile file("csv", ".csv");
  const std::string& path = file.write(data, size);
  ncflab::Dataset last;
  try {
    last = ncflab::load_csv_data(path, "");
  } catch (const std::runtime_error&) {
    return 0;  // refused, with a message: what bad input should get
  }
  const size_t features = last.feature_names.size();
  check_shape(last, features, "label: last column");
  if (features == 0) return 0;
  // The first column as the label instead: the same cells, the label moved.
  const std::string label = last.feature_names.front();
  ncflab::Dataset first = ncflab::load_csv_data(path, label);
  check_shape(first, features, "label: first column");
  if (first.label_name != label || !torch::equal(first.labels, last.inputs.select(1, 0))) {
    std::fprintf(stderr, "fuzz_csv: the label column '%s' read differently by name\n",
                 label.c_str());
    std::abort();
  }
  return 0;
}
