// Config: defaults, round trip through the resolved YAML, overrides, and one clear
// error (file, line, key, expected, found) for every class of bad input.
#include <fstream>
#include <sstream>

#include "ncflab/experiment/config.h"
#include "support.h"

namespace ncflab {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

/// The InputError message for a config text (and overrides); fails if none is thrown.
std::string config_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    testing::CapturedLog quiet;
    parse_config(yaml, "exp.yaml", overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << yaml;
  return "";
}

TEST(Config, MissingKeysKeepTheirDefaults) {
  const Config config = parse_config("name: tiny\n", "exp.yaml");
  const Config defaults;
  EXPECT_EQ(config.name, "tiny");
  EXPECT_EQ(config.model.widths, defaults.model.widths);
  EXPECT_EQ(config.init.scale, 1.0e-3);
  EXPECT_EQ(config.train.max_steps(), 100000);
  EXPECT_EQ(config.dtype, torch::kFloat64);
  EXPECT_EQ(config.device, DeviceChoice::automatic);
}

TEST(Config, ReadsEveryKindOfValue) {
  testing::CapturedLog
      log;  // float32 at this δ and L warns; WarnsWhenFloat32WouldUnderflow checks that
  const Config config = parse_config(R"(
name: run1
seed: 4
dtype: float32
device: cpu
data: {source: synthetic, n: 30, d: 3, inputs: sphere, teacher: two_layer, teacher_width: 3,
       label_noise: 0.1, normalize: standardize}
model:
  widths: [12, 12]
  activation: {alpha: -0.5, p: 3}
loss: square
train: {step: 5.0e-3, max_steps: 1e5, stop_at_escape: false}
ensemble: {seeds: 8}
)",
                                     "exp.yaml");
  EXPECT_EQ(config.seed, 4);
  EXPECT_EQ(config.dtype, torch::kFloat32);
  EXPECT_EQ(config.device, DeviceChoice::cpu);
  EXPECT_EQ(config.data.inputs(), InputDistribution::sphere);
  EXPECT_EQ(config.data.teacher(), TeacherKind::two_layer);
  EXPECT_EQ(config.data.normalize, InputNormalization::standardize);
  EXPECT_EQ(config.model.widths, (std::vector<int64_t>{12, 12}));
  EXPECT_EQ(config.model.activation.alpha(), -0.5);
  EXPECT_EQ(config.model.activation.p(), 3);
  EXPECT_EQ(config.train.step_size(), 5.0e-3);
  EXPECT_EQ(config.train.max_steps(), 100000);  // 1e5 accepted as an integer
  EXPECT_FALSE(config.train.stop_at_escape());
  EXPECT_EQ(config.ensemble.seeds, 8);
  EXPECT_EQ(config.location_of("train.step").line, 12);  // the text starts with a newline
}

TEST(Config, ResolvedYamlReadsBackToTheSameConfig) {
  const Config original = parse_config(
      "name: rt\ninit: {scale: 3.3e-7}\ntrain: {step: 0.1234567890123}\nmodel: {widths: [3, 4, "
      "5]}\n"
      "loss: logistic\ndata: {sign_labels: true, label: yy}\n",
      "exp.yaml");
  const std::string yaml = config_to_yaml(original);
  const Config again = parse_config(yaml, "again.yaml");
  EXPECT_EQ(config_to_yaml(again), yaml);
  EXPECT_EQ(again.init.scale, 3.3e-7);
  EXPECT_EQ(again.train.step_size(), 0.1234567890123);
  EXPECT_EQ(again.loss, LossKind::logistic);
  // Every key appears in the resolved YAML.
  for (const auto& key : config_key_paths()) {
    const auto leaf = key.substr(key.rfind('.') + 1);
    EXPECT_THAT(yaml, HasSubstr(leaf + ":")) << key;
  }
}

TEST(Config, OverridesFollowHydraHabits) {
  const Config config = parse_config("name: o\nmodel: {widths: [5]}\n", "exp.yaml",
                                     {"model.widths=[12,12]", "train.step=1e-4",
                                      "model.activation.p=3", "name=other", "ensemble.seeds=3"});
  EXPECT_EQ(config.model.widths, (std::vector<int64_t>{12, 12}));
  EXPECT_EQ(config.train.step_size(), 1e-4);
  EXPECT_EQ(config.model.activation.p(), 3);
  EXPECT_EQ(config.name, "other");
  EXPECT_EQ(config.ensemble.seeds, 3);
  EXPECT_EQ(config.location_of("train.step").file, "override 'train.step=1e-4'");
}

TEST(Config, UnknownKeysAreRejectedWithTheLineAndASuggestion) {
  const std::string message = config_error("name: x\ntrian:\n  step: 0.1\n");
  EXPECT_THAT(message, HasSubstr("exp.yaml:2: trian: expected a known key at the top level"));
  EXPECT_THAT(message, HasSubstr("did you mean 'train'?"));
  EXPECT_THAT(config_error("train:\n  stepp: 0.1\n"),
              HasSubstr("exp.yaml:2: train.stepp: expected a known key under train"));
  EXPECT_THAT(config_error("model:\n  activation: {alpha: 0.1, pp: 2}\n"),
              HasSubstr("model.activation.pp: expected a known key"));
  EXPECT_THAT(config_error("name: x\n", {"trian.step=1"}),
              HasSubstr("override 'trian.step=1': trian: expected a known key"));
}

TEST(Config, StrictYamlRefusesDuplicateKeysSecondDocumentsAndUnclosedQuotes) {
  // yaml-cpp would keep the first duplicate (PyYAML the last), ignore a second document and
  // let an unclosed quote swallow every key after it.
  EXPECT_THAT(config_error("seed: 0\nname: x\nseed: 7\n"),
              HasSubstr("exp.yaml:3: seed: expected each key once, found 'seed' again (first at "
                        "line 1)"));
  EXPECT_THAT(config_error("train:\n  step: 0.1\n  step: 0.2\n"),
              HasSubstr("exp.yaml:3: train.step: expected each key once"));
  EXPECT_THAT(config_error("name: x\n---\nseed: 2\n"),
              HasSubstr("exp.yaml:2: expected one YAML document, found a second document"));
  EXPECT_THAT(config_error("name: \"base\nseed: 3\n"),
              HasSubstr("exp.yaml:1: name: expected a quoted value closed on its line, found an "
                        "unclosed quote"));
  // Quotes that close (with their escapes) are fine.
  EXPECT_EQ(parse_config("name: 'it''s'\n", "exp.yaml").name, "it's");
  EXPECT_EQ(parse_config("name: \"a\\\"b\"\n", "exp.yaml").name, "a\"b");
}

TEST(Config, SectionOverridesMergeIntoTheFilesSection) {
  // Hydra's semantics: train={step: 0.5} changes the step and keeps the file's other keys.
  const Config config = parse_config("train: {max_steps: 123, step: 0.1}\ndata: {n: 7, d: 3}\n",
                                     "exp.yaml", {"train={step: 0.5}", "data={n: 9}"});
  EXPECT_EQ(config.train.step_size(), 0.5);
  EXPECT_EQ(config.train.max_steps(), 123);
  EXPECT_EQ(config.data.n(), 9);
  EXPECT_EQ(config.data.d(), 3);
}

TEST(Config, AMappingReplacesAValueThatWasNotOne) {
  // train=5 then train={step: 0.5}: the mapping replaces 5, so nothing of the file's train
  // section shows through (max_steps back to its default), as when the overrides are merged
  // one after another into the file's tree.
  const Config defaults;
  const Config config = parse_config("train: {max_steps: 123, step: 0.1}\n", "exp.yaml",
                                     {"train=5", "train={step: 0.5}"});
  EXPECT_EQ(config.train.step_size(), 0.5);
  EXPECT_EQ(config.train.max_steps(), defaults.train.max_steps());
  // A key below a value that is not a mapping, in the file or set by an override, is refused.
  EXPECT_THAT(config_error("train: 5\n", {"train.step=0.5"}),
              HasSubstr("expected 'train' to be a section"));
  EXPECT_THAT(config_error("name: x\n", {"train=5", "train.step=0.5"}),
              HasSubstr("expected 'train' to be a section"));
  // A section left empty in the file (`model:`) takes the override's keys.
  EXPECT_EQ(parse_config("model:\n", "exp.yaml", {"model.widths=[7]"}).model.widths,
            (std::vector<int64_t>{7}));
  // Nested mappings merge level by level.
  const Config nested = parse_config("model: {widths: [4], activation: {alpha: 0.3, p: 2}}\n",
                                     "exp.yaml", {"model={activation: {p: 3}}"});
  EXPECT_EQ(nested.model.activation.p(), 3);
  EXPECT_EQ(nested.model.activation.alpha(), 0.3);
  EXPECT_EQ(nested.model.widths, (std::vector<int64_t>{4}));
}

TEST(Config, AParsedConfigResolvesEachSetOfOverridesAsParseConfigDoes) {
  const std::string yaml =
      "name: many\nseed: 3\ntrain: {step: 0.1, max_steps: 50}\nmodel: {widths: [5]}\n";
  const ParsedConfig parsed(yaml, "exp.yaml");
  // {"train=4"} is an error: the file's tree must come out of it unchanged.
  const std::vector<std::vector<std::string>> override_sets = {
      {"seed=7", "init.scale=0.01"},
      {},
      {"train={step: 0.5}", "model.widths=[3,3]"},
      {"seed=7", "init.scale=0.02"},
      {"train=4"},
      {"model.activation={p: 3}"},
      {},
  };
  for (const auto& overrides : override_sets) {
    std::string expected;
    std::string resolved;
    try {
      expected = config_to_yaml(parse_config(yaml, "exp.yaml", overrides));
    } catch (const InputError& e) {
      expected = e.what();
    }
    try {
      resolved = config_to_yaml(parsed.resolve(overrides));
    } catch (const InputError& e) {
      resolved = e.what();
    }
    EXPECT_EQ(resolved, expected) << ::testing::PrintToString(overrides);
  }
  // Lines still point into the file after many resolves.
  EXPECT_EQ(parsed.resolve({"seed=1"}).location_of("train.step").line, 3);
  EXPECT_EQ(parsed.resolve({"seed=1"}).location_of("seed").file, "override 'seed=1'");
}

TEST(Config, StringsNeedingQuotesReadBackFromTheResolvedYaml) {
  for (const std::string text : {"plain_name-1.0",
                                 "yes",
                                 "No",
                                 "null",
                                 "1e3",
                                 "0x10",
                                 "a: b",
                                 "#tag",
                                 "- item",
                                 "[x]",
                                 "quote\"and\\backslash",
                                 "tab\tinside",
                                 "trailing ",
                                 " leading",
                                 "~",
                                 "d\u00e9j\u00e0",
                                 "100%",
                                 "@at",
                                 "&anchor",
                                 "*alias",
                                 "!tag",
                                 "'single'",
                                 "a,b",
                                 "{x}"}) {
    Config config;
    config.data.label = text;
    config.launcher.slurm.partition = text;
    const Config again = parse_config(config_to_yaml(config), "again.yaml");
    EXPECT_EQ(again.data.label, text);
    EXPECT_EQ(again.launcher.slurm.partition, text);
  }
}

TEST(Config, RemovedKeysSayWhatReplacedThem) {
  // Configs of earlier versions fail with a pointer, not a bare "unknown key".
  const std::string message = config_error("flow:\n  kink_step: 1.0e-3\n");
  EXPECT_THAT(message, HasSubstr("exp.yaml:2: flow.kink_step: expected no flow.kink_step"));
  EXPECT_THAT(message, HasSubstr("locate every kink crossing"));
  EXPECT_THAT(config_error("name: x\n", {"flow.atol=1e-9"}),
              HasSubstr("flow.atol: expected no flow.atol: the flow's tolerance is flow.rtol"));
}

TEST(Config, WrongTypesNameTheKeyAndTheValue) {
  EXPECT_THAT(config_error("train:\n  step: fast\n"),
              HasSubstr("exp.yaml:2: train.step: expected a finite number, found 'fast'"));
  EXPECT_THAT(config_error("train: {max_steps: 1.5}\n"),
              HasSubstr("train.max_steps: expected an integer, found '1.5'"));
  EXPECT_THAT(config_error("model: {widths: [4, x]}\n"),
              HasSubstr("model.widths: expected a list of integers, found [4, x]"));
  EXPECT_THAT(config_error("train: {stop_at_escape: maybe}\n"),
              HasSubstr("train.stop_at_escape: expected true or false, found 'maybe'"));
  EXPECT_THAT(config_error("loss: hinge\n"),
              HasSubstr("exp.yaml:1: loss: expected one of square | logistic, found 'hinge'"));
  EXPECT_THAT(config_error("train: 5\n"),
              HasSubstr("train: expected a mapping of train keys, found '5'"));
  EXPECT_THAT(config_error("init: {scale: .nan}\n"),
              HasSubstr("init.scale: expected a finite number"));
}

TEST(Config, OutOfRangeValuesAreRejected) {
  EXPECT_THAT(config_error("threads: 100000\n"),
              HasSubstr("threads: expected an integer in [0, 1024], found '100000'"));
  EXPECT_THAT(config_error("name: " + std::string(201, 'n') + "\n"),
              HasSubstr("name: expected a non-empty name without '/' of at most 200 characters"));
  EXPECT_EQ(parse_config("name: " + std::string(200, 'n') + "\n", "exp.yaml").name.size(), 200u);
  EXPECT_THAT(config_error("init: {scale: 0}\n"),
              HasSubstr("init.scale: expected a number > 0, found '0'"));
  EXPECT_THAT(config_error("init: {scale: -1e-3}\n"),
              HasSubstr("init.scale: expected a number > 0"));
  EXPECT_THAT(config_error("model: {widths: [3, 0]}\n"),
              HasSubstr("model.widths: expected hidden widths >= 1, found [3, 0]"));
  EXPECT_THAT(config_error("model: {widths: []}\n"),
              HasSubstr("model.widths: expected a non-empty list"));
  EXPECT_THAT(config_error("model: {activation: {p: 0}}\n"),
              HasSubstr("model.activation.p: expected an integer in [1, 100], found '0'"));
  EXPECT_THAT(config_error("model: {activation: {alpha: 1.5}}\n"),
              HasSubstr("model.activation.alpha: expected a number in [-1, 1], found '1.5'"));
  EXPECT_THAT(config_error("train: {step: 0}\n"), HasSubstr("train.step: expected a number > 0"));
  EXPECT_THAT(config_error("train: {max_steps: 0}\n"),
              HasSubstr("train.max_steps: expected an integer >= 1, found '0'"));
  EXPECT_THAT(config_error("ensemble: {seeds: 0}\n"),
              HasSubstr("ensemble.seeds: expected an integer >= 1"));
  EXPECT_THAT(config_error("name: x\n", {"init.scale=-2"}),
              HasSubstr("override 'init.scale=-2': init.scale: expected a number > 0"));
}

TEST(Config, MalformedYamlGivesTheLine) {
  EXPECT_THAT(config_error("name: x\ntrain:\n  step: [1, 2\n"), HasSubstr("exp.yaml:"));
  EXPECT_THAT(config_error("name: x\ntrain:\n  step: [1, 2\n"), HasSubstr("expected valid YAML"));
  EXPECT_THAT(config_error("a: b\n  c: d\n"), HasSubstr("exp.yaml:2: expected valid YAML"));
  EXPECT_THAT(config_error(""),
              HasSubstr("expected a mapping of config keys, found an empty document"));
  EXPECT_THAT(config_error("- 1\n- 2\n"), HasSubstr("expected a mapping of config keys"));
  EXPECT_THAT(config_error("name: x\n", {"train.step"}),
              HasSubstr("expected an override key.path=value"));
  EXPECT_THAT(config_error("name: x\n", {"train.step="}), HasSubstr("expected a value after '='"));
}

TEST(Config, CrossKeyRules) {
  EXPECT_THAT(config_error("data: {source: csv}\n"),
              HasSubstr("data.path: expected a CSV file path"));
  EXPECT_THAT(config_error("loss: logistic\n"),
              HasSubstr("exp.yaml:1: data.sign_labels: expected true for loss: logistic"));
  EXPECT_NO_THROW(parse_config("loss: logistic\ndata: {teacher: random_signs}\n", "exp.yaml"));
  EXPECT_THAT(config_error("model: {widths: [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, "
                           "2, 2], activation: {p: 9}}\n"),
              HasSubstr("expected a total degree"));
}

TEST(Config, SingleLayerModelNeedsExactlyOneWidth) {
  EXPECT_EQ(parse_config("name: x\n", "exp.yaml").model.kind, ModelKind::feedforward);
  const Config single = parse_config("model: {kind: single_layer, widths: [8]}\n", "exp.yaml");
  EXPECT_EQ(single.model.kind, ModelKind::single_layer);
  EXPECT_THAT(config_to_yaml(single), HasSubstr("kind: single_layer"));
  // The error names the file, the line of the widths, the key, what was expected and found.
  EXPECT_THAT(config_error("name: x\nmodel:\n  kind: single_layer\n  widths: [8, 8]\n"),
              HasSubstr("exp.yaml:4: model.widths: expected exactly one hidden width [k] for "
                        "model.kind: single_layer, found [8, 8] (2 widths)"));
  EXPECT_THAT(config_error("name: x\n", {"model.kind=single_layer", "model.widths=[3,4,5]"}),
              HasSubstr("model.widths: expected exactly one hidden width [k]"));
  EXPECT_THAT(config_error("model: {kind: two_layer}\n"),
              HasSubstr("model.kind: expected one of feedforward | single_layer"));
}

TEST(Config, WarnsWhenFloat32WouldUnderflow) {
  testing::CapturedLog log;
  // L = 1 + 10 = 11: outputs δ^L = 1e-33 (below float32's ~1e-30 comfort), gradients
  // δ^(L-1) = 1e-30 still normal.
  const std::string yaml = "init: {scale: 1.0e-3}\nmodel: {widths: [4], activation: {p: 10}}\n";
  parse_config("dtype: float32\n" + yaml, "exp.yaml");
  ASSERT_EQ(log.warnings.size(), 1u);
  EXPECT_THAT(log.warnings[0], HasSubstr("float32"));
  testing::CapturedLog none;
  parse_config("dtype: float64\n" + yaml, "exp.yaml");
  EXPECT_TRUE(none.warnings.empty());
}

TEST(Config, RefusesADeltaWhoseGradientsUnderflow) {
  // L = 15 in float32: δ^(L-1) = 1e-42 is below float32's smallest normal (1.2e-38).
  EXPECT_THAT(config_error("dtype: float32\ninit: {scale: 1.0e-3}\n"
                           "model: {widths: [4, 4, 4], activation: {p: 2}}\n"),
              HasSubstr("init.scale: expected delta with delta^(L-1) above float32's smallest "
                        "normal number"));
  // L = 3 in float64: δ = 1e-160 gives δ^2 = 1e-320 (denormal); 1e-150 gives 1e-300 (normal).
  EXPECT_THAT(config_error("init: {scale: 1.0e-160}\nmodel: {widths: [4], activation: {p: 2}}\n"),
              HasSubstr("delta^(L-1) = 1e-320, nothing would train"));
  testing::CapturedLog log;
  parse_config("init: {scale: 1.0e-150}\nmodel: {widths: [4], activation: {p: 2}}\n", "exp.yaml");
  ASSERT_EQ(log.warnings.size(), 1u);  // outputs δ^3 = 1e-450 underflow: a warning only
  EXPECT_THAT(log.warnings[0], HasSubstr("close to float64's underflow"));
}

TEST(Config, RelativeDataPathsAreRelativeToTheConfigFile) {
  TempDir dir;
  const auto path = dir.write("exp.yaml", "data: {source: csv, path: sub/d.csv}\n");
  const Config config = load_config(path);
  EXPECT_EQ(config.data.path, dir.path("sub/d.csv"));
  const Config overridden = load_config(path, {"data.path=x.csv"});
  EXPECT_EQ(overridden.data.path, (std::filesystem::current_path() / "x.csv").string());
}

TEST(Config, MissingFileIsAnInputError) {
  EXPECT_THROW(load_config("/nonexistent/exp.yaml"), InputError);
}

TEST(Config, AReadErrorIsAnErrorNotTheEndOfTheFile) {
  // /proc/self/mem opens, and reading it at offset 0 fails (EIO): the path a read error in the
  // middle of a config takes, which used to read as its end (every later key at its default).
  if (!std::filesystem::exists("/proc/self/mem")) GTEST_SKIP() << "no /proc/self/mem";
  try {
    load_config("/proc/self/mem");
    FAIL() << "no error";
  } catch (const InputError& e) {
    FAIL() << "a read error reported as bad input: " << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("/proc/self/mem: read error after 0 bytes"));
  }
}

TEST(Config, LauncherKeysBecomeSbatchOptionsInOrder) {
  const Config config = parse_config(
      "launcher:\n  slurm:\n    partition: gpu\n    time: \"1:00:00\"\n    cpus_per_task: 4\n"
      "    extra: --exclusive  --nice=10\n",
      "lab.yaml");
  EXPECT_EQ(config.launcher.slurm.sbatch_options(),
            (std::vector<std::string>{"--partition=gpu", "--time=1:00:00", "--cpus-per-task=4",
                                      "--exclusive", "--nice=10"}));
  EXPECT_TRUE(parse_config("name: lab\n", "plain.yaml").launcher.slurm.sbatch_options().empty());
  // config.yaml keeps them, so a resumed sweep submits as the first one did.
  EXPECT_EQ(parse_config(config_to_yaml(config), "again.yaml").launcher.slurm.sbatch_options(),
            config.launcher.slurm.sbatch_options());
  EXPECT_THROW(parse_config("launcher:\n  slurm:\n    extra: exclusive\n", "bad.yaml"), InputError);
}

TEST(Config, ReadmeDocumentsEveryKey) {
  std::ifstream readme(std::string(NCFLAB_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(readme) << "README.md not found";
  std::stringstream text;
  text << readme.rdbuf();
  for (const auto& key : config_key_paths()) {
    EXPECT_THAT(text.str(), HasSubstr("`" + key + "`")) << "README.md does not document " << key;
  }
}

}  // namespace
}  // namespace ncflab
