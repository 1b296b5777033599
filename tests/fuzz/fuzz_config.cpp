// libFuzzer target for the config reader: bytes → a YAML file → load_config. Refusing an
// input (InputError, or another std::runtime_error) is the expected outcome; crashes,
// sanitizer findings, hangs and a config that cannot be read back count as findings.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_input_file.h"
#include "ncflab/core/log.h"
#include "ncflab/experiment/config.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Warnings about surprising but valid settings would flood the fuzzer's output.
  ncflab::set_log_sink([](ncflab::LogLevel, std::string_view) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ncflab::fuzz::FuzzInputFile file("config", ".yaml");
  ncflab::Config config;
  try {
    config = ncflab::load_config(file.write(data, size));
  } catch (const std::runtime_error&) {
    return 0;  // refused, with a message: what bad input should get
  }
  // A config that loaded is written into every run directory, and resuming reads it back
  // (config.h: "parse_config reads it back"): that must work, and give the same config.
  const std::string yaml = ncflab::config_to_yaml(config);
  std::string again;
  try {
    again = ncflab::config_to_yaml(ncflab::parse_config(yaml, config.file));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fuzz_config: the resolved config does not read back: %s\n%s\n",
                 error.what(), yaml.c_str());
    std::abort();
  }
  if (again != yaml) {
    std::fprintf(stderr, "fuzz_config: the resolved config reads back differently:\n%s\n---\n%s\n",
                 yaml.c_str(), again.c_str());
    std::abort();
  }
  return 0;
}
