// powersample: text that is always valid UTF-8.
//
// Byte-level BPE models emit one character as several tokens, so a token cap, a stop string or an
// end-of-generation token can fall inside a character, and a model can emit bytes that are no
// UTF-8 at all. Every text the library hands out (sample_result::text, model::detokenize) goes
// through valid_utf8(); tokens and log-probabilities are never touched.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace powersample {

// `bytes` with every invalid byte and every incomplete or overlong sequence replaced by U+FFFD
// (one per maximal invalid subpart, as the Unicode standard recommends and llama-server does).
// Valid input comes back unchanged.
std::string valid_utf8(std::string_view bytes);

// The offset of the first byte that is not part of a well-formed character (an incomplete one at
// the end included), or std::string_view::npos when all of `bytes` is valid UTF-8.
size_t first_invalid_utf8(std::string_view bytes);

// The length of the longest prefix of `bytes` that does not end inside a character that may
// still be completed: what a stream can send now while its tail waits for the next tokens.
size_t utf8_complete_prefix(std::string_view bytes);

// `text` with & < > " replaced by their entities: safe inside XML or HTML text and attribute
// values (the trace SVG, the eval's HTML report).
std::string markup_escape(std::string_view text);

}  // namespace powersample
