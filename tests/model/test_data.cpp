// Data: synthetic teachers are deterministic and shaped as documented; the CSV
// reader parses good files and names file, line and column for each bad kind.
#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/model/data.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::TempDir;

TEST(SyntheticData, IsDeterministicPerSeed) {
  const auto options = SyntheticDataOptions().n(50).d(4).seed(3);
  const auto a = make_synthetic_data(options);
  const auto b = make_synthetic_data(options);
  EXPECT_TRUE(torch::equal(a.inputs, b.inputs));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  const auto c = make_synthetic_data(SyntheticDataOptions().n(50).d(4).seed(4));
  EXPECT_FALSE(torch::equal(a.inputs, c.inputs));
  EXPECT_EQ(a.inputs.sizes(), (std::vector<int64_t>{50, 4}));
  EXPECT_EQ(a.labels.sizes(), (std::vector<int64_t>{50}));
  EXPECT_EQ(a.inputs.scalar_type(), torch::kFloat64);
  EXPECT_EQ(a.feature_names.size(), 4u);
}

TEST(SyntheticData, SphereInputsHaveUnitNorm) {
  const auto data =
      make_synthetic_data(SyntheticDataOptions().n(30).d(5).inputs(InputDistribution::sphere));
  EXPECT_TRUE(
      torch::allclose(data.inputs.norm(2, 1), torch::ones({30}, torch::kFloat64), 1e-14, 0));
}

TEST(SyntheticData, SingleNeuronTeacherIsAReluOfAProjection) {
  // A ReLU neuron's labels are ≥ 0 and zero on about half the Gaussian inputs, and the
  // labels are a function of one direction b: y = max(bᵀx, 0) means the positive labels
  // equal an exact linear function of x, recoverable by least squares.
  const auto data = make_synthetic_data(
      SyntheticDataOptions().n(400).d(6).teacher_activation(PolyLeakyReLUOptions()).seed(1));
  EXPECT_GE(data.labels.min().item<double>(), 0.0);
  const auto positive = data.labels > 0;
  const double share = positive.to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(share, 0.35);
  EXPECT_LT(share, 0.65);
  const auto x = data.inputs.index({positive});
  const auto y = data.labels.index({positive}).unsqueeze(1);
  const auto b = std::get<0>(torch::linalg_lstsq(x, y, c10::nullopt, c10::nullopt));
  EXPECT_NEAR(b.norm().item<double>(), 1.0, 1e-12);  // ‖b‖ = 1
  EXPECT_TRUE(torch::allclose(torch::matmul(x, b), y, 1e-10, 1e-12));
}

TEST(SyntheticData, SignLabelsAndRandomSignsArePlusMinusOne) {
  for (auto teacher : {TeacherKind::neuron, TeacherKind::two_layer, TeacherKind::random_signs}) {
    auto options = SyntheticDataOptions().n(200).teacher(teacher).sign_labels(
        teacher != TeacherKind::random_signs);
    const auto labels =
        make_synthetic_data(options.teacher_activation(PolyLeakyReLUOptions().alpha(1.0))).labels;
    EXPECT_TRUE(((labels == 1) | (labels == -1)).all().item<bool>());
    EXPECT_GT((labels == 1).sum().item<int64_t>(), 40);
    EXPECT_GT((labels == -1).sum().item<int64_t>(), 40);
  }
}

TEST(SyntheticData, LabelNoiseAddsGaussianNoiseOfTheGivenSize) {
  const auto clean = make_synthetic_data(SyntheticDataOptions().n(4000).seed(5));
  const auto noisy = make_synthetic_data(SyntheticDataOptions().n(4000).seed(5).label_noise(0.3));
  EXPECT_TRUE(torch::equal(clean.inputs, noisy.inputs));
  const double spread = (noisy.labels - clean.labels).std().item<double>();
  EXPECT_NEAR(spread, 0.3, 0.3 * 0.06);  // 6 % ≈ 4 standard errors at n = 4000
}

TEST(SyntheticData, TwoLayerTeacherDiffersFromSingleNeuron) {
  const auto one = make_synthetic_data(SyntheticDataOptions().n(20).seed(2));
  const auto two = make_synthetic_data(
      SyntheticDataOptions().n(20).seed(2).teacher(TeacherKind::two_layer).teacher_width(3));
  EXPECT_TRUE(torch::equal(one.inputs, two.inputs));
  EXPECT_FALSE(torch::allclose(one.labels, two.labels));
}

TEST(CsvData, ReadsFeaturesAndTheLabelColumn) {
  TempDir dir;
  const auto path = dir.write("d.csv", "a, b,target,c\n1,2,3,4\n\n-5.5,6e-1,7,8\r\n");
  const auto last = load_csv_data(path, "");
  EXPECT_EQ(last.label_name, "c");
  EXPECT_TRUE(torch::equal(last.labels, torch::tensor({4.0, 8.0}, torch::kFloat64)));
  const auto named = load_csv_data(path, "target");
  EXPECT_EQ(named.feature_names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(torch::equal(named.inputs,
                           torch::tensor({{1.0, 2.0, 4.0}, {-5.5, 0.6, 8.0}}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(named.labels, torch::tensor({3.0, 7.0}, torch::kFloat64)));
}

/// Loads `text` as a CSV and returns the InputError's message (fails if none is thrown).
std::string csv_error(const std::string& text, const std::string& label = "") {
  TempDir dir;
  const auto path = dir.write("bad.csv", text);
  try {
    load_csv_data(path, label);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return "";
}

TEST(CsvData, EachBadInputHasItsOwnClearError) {
  using ::testing::HasSubstr;
  EXPECT_THAT(csv_error("x,y\n1,2\n3\n"),
              HasSubstr("bad.csv:3: row: expected 2 cells like the header, found 1 cells"));
  EXPECT_THAT(csv_error("x,y\n1,2,3\n"), HasSubstr("bad.csv:2: row: expected 2 cells"));
  EXPECT_THAT(csv_error("x,y\n1,abc\n"),
              HasSubstr("bad.csv:2: column 'y': expected a number, found 'abc'"));
  EXPECT_THAT(csv_error("x,y\n1,\n"),
              HasSubstr("column 'y': expected a number, found an empty cell"));
  EXPECT_THAT(csv_error("x,y\n1,2\nnan,1\n"),
              HasSubstr("bad.csv:3: column 'x': expected a finite number, found 'nan'"));
  EXPECT_THAT(csv_error("x,y\ninf,1\n"), HasSubstr("expected a finite number, found 'inf'"));
  EXPECT_THAT(csv_error("x,y\n1,2\n", "label"),
              HasSubstr("bad.csv:1: data.label: expected a column named 'label' (columns: x, y), "
                        "found no such column"));
  EXPECT_THAT(csv_error(""),
              HasSubstr("bad.csv: expected a header row of column names, found an empty file"));
  EXPECT_THAT(csv_error("x,y\n"), HasSubstr("expected at least one data row, found only a header"));
  EXPECT_THAT(csv_error("y\n1\n"), HasSubstr("expected at least two columns"));
  EXPECT_THAT(csv_error("x,,y\n1,2,3\n"), HasSubstr("header column 2: expected a column name"));
  // A name twice: data.label would pick one, the other would train as a feature.
  EXPECT_THAT(csv_error("y,x2,y\n1,2,3\n", "y"),
              HasSubstr("bad.csv:1: header column 3: expected distinct column names, found 'y' "
                        "again (column 1 too)"));
}

TEST(CsvData, AReadErrorIsAnErrorNotTheEndOfTheFile) {
  // /proc/self/mem is a regular file whose first read fails (EIO at address 0): the same
  // path a read error in the middle of a file takes, which used to read as its end.
  // (tests/faults/test_io_faults.sh injects EIO into a real CSV file mid-read.)
  try {
    load_csv_data("/proc/self/mem", "");
    FAIL() << "no error";
  } catch (const InputError& e) {
    FAIL() << "a read error reported as bad input: " << e.what();
  } catch (const IoError& e) {
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("read error"));
  }
}

TEST(CsvData, ADirectoryIsBadInput) {
  TempDir dir;
  EXPECT_THROW(load_csv_data(dir.path(""), ""), InputError);
}

TEST(CsvData, MissingFileIsAnInputError) {
  try {
    load_csv_data("/nonexistent/data.csv", "");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_THAT(std::string(e.what()),
                ::testing::HasSubstr("data.path: expected a readable CSV file"));
  }
}

TEST(Normalization, StandardizeAndSphere) {
  Dataset data;
  data.inputs = torch::tensor({{1.0, 5.0, 2.0}, {3.0, 5.0, 0.0}, {5.0, 5.0, 1.0}}, torch::kFloat64);
  data.labels = torch::zeros({3}, torch::kFloat64);
  auto standardized = data;
  normalize_inputs(standardized, InputNormalization::standardize);
  EXPECT_TRUE(
      torch::allclose(standardized.inputs.mean(0), torch::zeros({3}, torch::kFloat64), 0, 1e-15));
  // The constant column is only centred; the others get unit (population) variance.
  EXPECT_TRUE(torch::allclose(standardized.inputs.std(0, false),
                              torch::tensor({1.0, 0.0, 1.0}, torch::kFloat64), 1e-14, 1e-15));
  auto sphere = data;
  normalize_inputs(sphere, InputNormalization::sphere);
  EXPECT_TRUE(
      torch::allclose(sphere.inputs.norm(2, 1), torch::ones({3}, torch::kFloat64), 1e-15, 0));
  data.inputs[1].zero_();
  EXPECT_THROW(normalize_inputs(data, InputNormalization::sphere), InputError);
}

}  // namespace
}  // namespace ncflab
