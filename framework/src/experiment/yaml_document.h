// Strict reading of a config file's YAML (internal): exactly one document, each key once per
// mapping, and quoted values closed on their own line. yaml-cpp accepts all three silently
// (it keeps the first of duplicate keys, ignores later documents and lets an unclosed quote
// swallow the rest of the file), where PyYAML, which the baseline reads configs with, would
// take the last duplicate or refuse.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

namespace ncflab::config_schema {

/// The one document of `text`; throws InputError on a second document, a duplicate key or a
/// quoted value that does not close on its line, naming `source` (a file: with the line; an
/// override: without) and the key path below `prefix`.
YAML::Node load_strict_yaml(const std::string& text, const std::string& source,
                            const std::string& prefix = "", bool with_lines = true);

}  // namespace ncflab::config_schema
