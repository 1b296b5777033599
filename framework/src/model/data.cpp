// Synthetic teacher data and the CSV reader. The reader reports bad cells with
// file, line and column so a researcher can fix a 10 000-row file quickly.
#include "ncflab/model/data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/core/log.h"
#include "ncflab/core/random.h"
#include "ncflab/core/text.h"

namespace ncflab {
namespace {

torch::Tensor normalized_rows(const torch::Tensor& rows) {
  return rows / rows.norm(2, /*dim=*/1, /*keepdim=*/true);
}

torch::Tensor teacher_labels(const SyntheticDataOptions& options, const torch::Tensor& inputs,
                             at::Generator& generator) {
  const auto float64 = torch::TensorOptions(torch::kFloat64);
  switch (options.teacher()) {
    case TeacherKind::neuron: {
      auto b = normalized_rows(at::normal(0.0, 1.0, {1, options.d()}, generator, float64));
      return poly_leaky_relu(torch::matmul(inputs, b.t()).squeeze(1), options.teacher_activation());
    }
    case TeacherKind::two_layer: {
      auto w = normalized_rows(
          at::normal(0.0, 1.0, {options.teacher_width(), options.d()}, generator, float64));
      auto a =
          at::bernoulli(torch::full({options.teacher_width()}, 0.5, float64), generator) * 2 - 1;
      return torch::matmul(
          poly_leaky_relu(torch::matmul(inputs, w.t()), options.teacher_activation()), a);
    }
    case TeacherKind::random_signs:
      return at::bernoulli(torch::full({options.n()}, 0.5, float64), generator) * 2 - 1;
  }
  TORCH_CHECK(false, "make_synthetic_data – unknown teacher kind");
}

std::string teacher_name(TeacherKind kind) {
  switch (kind) {
    case TeacherKind::neuron:
      return "single-neuron teacher";
    case TeacherKind::two_layer:
      return "two-layer teacher";
    case TeacherKind::random_signs:
      return "random signs";
  }
  return "?";
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(space);
  std::string cell = text.substr(first, last - first + 1);
  if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') {
    cell = cell.substr(1, cell.size() - 2);
  }
  return cell;
}

std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream stream(line);
  std::string cell;
  while (std::getline(stream, cell, ',')) cells.push_back(trim(cell));
  if (!line.empty() && line.back() == ',') cells.emplace_back();  // a trailing empty cell
  return cells;
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

}  // namespace

Dataset make_synthetic_data(const SyntheticDataOptions& options) {
  TORCH_CHECK(options.n() >= 1, "make_synthetic_data – n must be >= 1 – got ", options.n());
  TORCH_CHECK(options.d() >= 1, "make_synthetic_data – d must be >= 1 – got ", options.d());
  TORCH_CHECK(options.teacher_width() >= 1,
              "make_synthetic_data – teacher_width must be >= 1 – got ", options.teacher_width());
  TORCH_CHECK(options.label_noise() >= 0, "make_synthetic_data – label_noise must be >= 0 – got ",
              options.label_noise());
  torch::NoGradGuard no_grad;
  auto generator = make_generator(options.seed(), RandomStream::data);
  const auto float64 = torch::TensorOptions(torch::kFloat64);

  Dataset data;
  data.inputs = at::normal(0.0, 1.0, {options.n(), options.d()}, generator, float64);
  if (options.inputs() == InputDistribution::sphere) data.inputs = normalized_rows(data.inputs);

  auto teacher_generator = make_generator(options.seed(), RandomStream::teacher);
  data.labels = teacher_labels(options, data.inputs, teacher_generator);
  if (options.label_noise() > 0) {
    data.labels +=
        options.label_noise() * at::normal(0.0, 1.0, {options.n()}, teacher_generator, float64);
  }
  if (options.sign_labels()) data.labels = (data.labels >= 0).to(torch::kFloat64) * 2 - 1;

  for (int64_t j = 0; j < options.d(); ++j) data.feature_names.push_back(fmt::format("x{}", j + 1));
  data.label_name = "y";
  data.origin = fmt::format(
      "synthetic: n={}, d={}, {} inputs, {}{}{}", options.n(), options.d(),
      options.inputs() == InputDistribution::sphere ? "unit-sphere" : "Gaussian",
      teacher_name(options.teacher()),
      options.label_noise() > 0 ? fmt::format(", label noise {:g}", options.label_noise()) : "",
      options.sign_labels() ? ", sign labels" : "");
  return data;
}

namespace {

// The first non-blank line: the column names, none empty, at least two.
std::vector<std::string> read_csv_header(std::istream& file, const std::string& path,
                                         int& line_number) {
  std::string line;
  bool have_header = false;
  while (!have_header && std::getline(file, line)) {
    ++line_number;
    have_header = !is_blank(line);
  }
  if (!have_header)
    throw InputError({path, 0}, "", "a header row of column names", "an empty file");
  const std::vector<std::string> header = split_cells(line);
  for (size_t j = 0; j < header.size(); ++j) {
    if (header[j].empty()) {
      throw InputError({path, line_number}, fmt::format("header column {}", j + 1), "a column name",
                       "an empty cell");
    }
  }
  if (header.size() < 2) {
    throw InputError({path, line_number}, "header", "at least two columns (features and a label)",
                     fmt::format("{} column", header.size()));
  }
  // With a name twice, data.label would pick one and the other would train as a feature.
  for (size_t j = 0; j < header.size(); ++j) {
    for (size_t k = 0; k < j; ++k) {
      if (header[j] == header[k]) {
        throw InputError({path, line_number}, fmt::format("header column {}", j + 1),
                         "distinct column names",
                         fmt::format("'{}' again (column {} too)", header[j], k + 1));
      }
    }
  }
  return header;
}

// The label's column: `label_column` by name, or the last one.
size_t label_index_of(const std::vector<std::string>& header, const std::string& label_column,
                      const std::string& path, int header_line) {
  if (label_column.empty()) return header.size() - 1;
  const auto it = std::find(header.begin(), header.end(), label_column);
  if (it == header.end()) {
    std::string names;
    for (const auto& name : header) names += (names.empty() ? "" : ", ") + name;
    throw InputError({path, header_line}, "data.label",
                     fmt::format("a column named '{}' (columns: {})", label_column, names),
                     "no such column");
  }
  return static_cast<size_t>(it - header.begin());
}

// Every data row's cells as finite numbers, row after row; returns the number of rows.
int64_t read_csv_rows(std::istream& file, const std::string& path,
                      const std::vector<std::string>& header, int& line_number,
                      std::vector<double>& values) {
  std::string line;
  int64_t rows = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (is_blank(line)) continue;
    const std::vector<std::string> cells = split_cells(line);
    if (cells.size() != header.size()) {
      throw InputError({path, line_number}, "row",
                       fmt::format("{} cells like the header", header.size()),
                       fmt::format("{} cells", cells.size()));
    }
    for (size_t j = 0; j < cells.size(); ++j) {
      const std::string& cell = cells[j];
      char* end = nullptr;
      errno = 0;
      const double value = cell.empty() ? 0.0 : std::strtod(cell.c_str(), &end);
      const std::string column = fmt::format("column '{}'", header[j]);
      // Decimal numbers only: strtod also reads hex ("0x10").
      const bool decimal = cell.find_first_not_of("0123456789+-.eE") == std::string::npos;
      const bool parsed = !cell.empty() && end == cell.c_str() + cell.size();
      if (parsed && !std::isfinite(value)) {
        throw InputError({path, line_number}, column, "a finite number", fmt::format("'{}'", cell));
      }
      if (!parsed || !decimal) {
        throw InputError({path, line_number}, column, "a number",
                         cell.empty() ? "an empty cell" : fmt::format("'{}'", cell));
      }
      values.push_back(value);
    }
    ++rows;
  }
  return rows;
}

}  // namespace

Dataset load_csv_data(const std::string& path, const std::string& label_column) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw InputError(
        {path, 0}, "data.path", "a readable CSV file",
        fmt::format("'{}' ({})", path,
                    std::filesystem::exists(path, error) ? "not a regular file" : "no such file"));
  }
  std::string text = read_whole_file(path);  // a read error is an IoError, not an end
  require_utf8_text(text, path);
  std::istringstream file(text);
  int line_number = 0;
  const std::vector<std::string> header = read_csv_header(file, path, line_number);
  const size_t label_index = label_index_of(header, label_column, path, line_number);
  std::vector<double> values;
  const int64_t rows = read_csv_rows(file, path, header, line_number, values);
  if (rows == 0) throw InputError({path, 0}, "", "at least one data row", "only a header");

  const auto columns = static_cast<int64_t>(header.size());
  auto table = torch::tensor(values, torch::kFloat64).reshape({rows, columns});
  const auto label = static_cast<int64_t>(label_index);
  Dataset data;
  data.labels = table.select(1, label).contiguous();
  data.inputs =
      torch::cat({table.narrow(1, 0, label), table.narrow(1, label + 1, columns - label - 1)}, 1)
          .contiguous();
  for (size_t j = 0; j < header.size(); ++j) {
    if (j != label_index) data.feature_names.push_back(header[j]);
  }
  data.label_name = header[label_index];
  data.origin = fmt::format("csv: {} ({} rows, {} features, label '{}')", path, rows, columns - 1,
                            data.label_name);
  return data;
}

void normalize_inputs(Dataset& data, InputNormalization normalization) {
  torch::NoGradGuard no_grad;
  switch (normalization) {
    case InputNormalization::none:
      return;
    case InputNormalization::standardize: {
      if (data.size() < 2) {
        throw InputError({data.origin, 0}, "data.normalize",
                         "at least two rows to standardize (one row centres to all zeros)",
                         fmt::format("{} row", data.size()));
      }
      // Columns beyond 1e150 are scaled down first: their squares would overflow the spread
      // to inf (and the column to 0). Scaling by 1 elsewhere keeps ordinary data bit-exact.
      const auto magnitude = data.inputs.abs().amax(0, /*keepdim=*/true);
      const auto inputs =
          data.inputs / torch::where(magnitude > 1e150, magnitude, torch::ones_like(magnitude));
      auto centred = inputs - inputs.mean(0, /*keepdim=*/true);
      auto spread = centred.std(0, /*unbiased=*/false, /*keepdim=*/true);
      const auto constant = (spread.squeeze(0) == 0).nonzero();
      for (int64_t i = 0; i < constant.size(0); ++i) {
        const auto j = static_cast<size_t>(constant[i].item<int64_t>());
        log_warning(
            "data.normalize: standardize: column '{}' is constant; it becomes 0 and "
            "carries nothing",
            j < data.feature_names.size() ? data.feature_names[j] : std::to_string(j + 1));
      }
      data.inputs = centred / torch::where(spread > 0, spread, torch::ones_like(spread));
      data.origin += ", standardized";
      return;
    }
    case InputNormalization::sphere: {
      const auto magnitude = data.inputs.abs().amax(1, /*keepdim=*/true);
      const auto scaled =
          data.inputs / torch::where(magnitude > 1e150, magnitude, torch::ones_like(magnitude));
      auto norms = scaled.norm(2, 1, /*keepdim=*/true);
      const auto zero_rows = (norms.squeeze(1) == 0).nonzero();
      if (zero_rows.numel() > 0) {
        throw InputError({data.origin, 0}, "data.normalize", "inputs without all-zero rows",
                         fmt::format("row {} all zero", zero_rows[0].item<int64_t>() + 1));
      }
      data.inputs = scaled / norms;
      data.origin += ", rows on the unit sphere";
      return;
    }
  }
}

}  // namespace ncflab
