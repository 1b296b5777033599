// UTF-8 validation (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
#include "ncflab/core/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>

#include "ncflab/core/errors.h"

namespace ncflab {
namespace {

// Length of the valid UTF-8 sequence at `i`, or 0.
size_t utf8_sequence_length(const std::string& text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return lead == 0 ? 0 : 1;
  size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;  // allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;   // overlong
    if (lead == 0xed) high = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;   // overlong
    if (lead == 0xf4) high = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return length;
}

}  // namespace

void require_utf8_text(std::string& text, const std::string& source) {
  if (text.compare(0, 3, "\xef\xbb\xbf") == 0) text.erase(0, 3);
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      const auto line =
          1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(i), '\n');
      const auto value = static_cast<unsigned char>(text[i]);
      throw InputError({source, static_cast<int>(line)}, "", "UTF-8 text",
                       value == 0 ? "a NUL byte (UTF-16 or a binary file?)"
                                  : fmt::format("byte 0x{:02x} (not UTF-8; Latin-1?)", value));
    }
    i += length;
  }
}

}  // namespace ncflab
