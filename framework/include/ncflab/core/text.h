// Text files ncflab reads (configs, CSV data) must be UTF-8: a Latin-1 or UTF-16 file
// would otherwise reach the parsers as odd bytes and come out as garbled keys or messages.
#pragma once

#include <string>

namespace ncflab {

/// Checks that `text` is UTF-8 without NUL bytes; otherwise an InputError at `source`'s line
/// of the first bad byte ("expected UTF-8 text, found byte 0xe9"). Drops a leading UTF-8
/// byte-order mark (Excel's "CSV UTF-8" writes one).
void require_utf8_text(std::string& text, const std::string& source);

}  // namespace ncflab
