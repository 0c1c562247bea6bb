// Where a completion ends: at an end-of-generation token, or after the token with which its text
// contains a stop string (sampling_params::stop). One rule, used by every method: the MH chain's
// blocks and proposals, the plain decoders, best-of-n, Power-SMC particles, SPS candidates and
// rollouts. It depends on the tokens alone, and a completion's earlier prefixes never end (they
// would have ended there), so the completions it ends are prefix-free: pi stays a distribution
// (docs/algorithm.md, "Stop strings").
#pragma once

#include "powersample/language-model.h"
#include "powersample/sampling.h"

#include <cstddef>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <vector>

namespace powersample {

// A run of tokens; a completion is passed as consecutive spans (prefix kept, suffix drawn).
struct token_span {
    const token_id * data = nullptr;
    size_t           size = 0;
};

inline token_span span_of(const std::vector<token_id> & v, size_t n) { return { v.data(), n }; }
inline token_span span_of(const std::vector<token_id> & v) { return { v.data(), v.size() }; }

enum class completion_end_kind { none, eog, stop };

struct completion_end_hit {
    completion_end_kind kind       = completion_end_kind::none;
    int32_t             stop_index = -1;  // into sampling_params::stop, for kind stop
};

class completion_end {
public:
    // Throws invalid_argument_error when `stops` is not empty and lm has no token bytes.
    // last_token_only = true matches a stop only inside the newest token's bytes, missing those
    // that span tokens: a broken control for the exactness tests.
    completion_end(const language_model & lm, const std::vector<std::string> & stops, bool last_token_only = false);

    // Does the completion made of `parts` (in order) end at its last token? A stop counts only
    // where it ends inside the last token's bytes: the earlier prefixes are known not to end, so
    // only the last (longest stop - 1) bytes before it are read.
    completion_end_hit at(std::initializer_list<token_span> parts) const;

    const std::vector<std::string> & stops() const { return stops_; }

private:
    const std::string & bytes_of(token_id t) const;

    const language_model &   lm_;
    std::vector<std::string> stops_;
    size_t                   longest_ = 0;
    bool                     last_token_only_;
    // Bytes of the tokens seen so far: a completion touches few distinct tokens, so a map, not a
    // vocabulary-sized table per request.
    mutable std::unordered_map<token_id, std::string> bytes_cache_;
};

// The finish reason of a completion that ended with `hit` (kind not none).
inline finish_reason finish_of(const completion_end_hit & hit) {
    return hit.kind == completion_end_kind::stop ? finish_reason::stop : finish_reason::eog;
}

}  // namespace powersample
