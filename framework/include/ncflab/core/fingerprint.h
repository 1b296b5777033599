// Fingerprints of inputs (64-bit FNV-1a): what a run records at its start so that a resume
// can tell whether its config or data changed since. Not cryptographic: it detects edits,
// not tampering.
#pragma once

#include <string>
#include <string_view>

namespace ncflab {

/// "fnv1a64:" and 16 hex digits of the bytes' FNV-1a hash.
std::string fingerprint(std::string_view bytes);

}  // namespace ncflab
