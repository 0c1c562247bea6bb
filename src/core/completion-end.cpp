#include "core/completion-end.h"

#include "powersample/knobs.h"

#include <algorithm>

namespace powersample {

completion_end::completion_end(const language_model & lm, const std::vector<std::string> & stops, bool last_token_only)
    : lm_(lm), stops_(stops), last_token_only_(last_token_only) {
    if (!stops_.empty() && !lm.has_token_bytes()) {
        const std::string stop = knob_for(&sampling_params::stop).name();
        throw invalid_argument_error(stop, stop + ": the model backend has no token text");
    }
    for (const auto & s : stops_) longest_ = std::max(longest_, s.size());
}

const std::string & completion_end::bytes_of(token_id t) const {
    auto it = bytes_cache_.find(t);
    if (it == bytes_cache_.end()) it = bytes_cache_.emplace(t, lm_.token_bytes(t)).first;
    return it->second;
}

completion_end_hit completion_end::at(std::initializer_list<token_span> parts) const {
    // Tokens from the newest back: walk the spans in reverse, skipping empty ones at the end.
    const token_span * begin = parts.begin();
    const token_span * end   = parts.end();
    while (end != begin && (end - 1)->size == 0) --end;
    if (end == begin) return {};
    const token_id newest = (end - 1)->data[(end - 1)->size - 1];
    if (lm_.is_eog(newest)) return { completion_end_kind::eog, -1 };
    if (stops_.empty()) return {};
    const std::string & last = bytes_of(newest);
    if (last.empty()) return {};

    // The window: up to longest_ - 1 bytes before the newest token, then its bytes.
    std::string  before;
    const size_t want = last_token_only_ ? 0 : longest_ - 1;
    size_t       skip = 1;  // the newest token itself
    for (const token_span * sp = end; sp != begin && before.size() < want;) {
        --sp;
        for (size_t i = sp->size; i-- > 0 && before.size() < want;) {
            if (skip > 0) {
                skip -= 1;
                continue;
            }
            before.insert(0, bytes_of(sp->data[i]));
        }
    }
    if (before.size() > want) before.erase(0, before.size() - want);
    const std::string window = before + last;

    // Of the stops ending in the newest token, the one that starts first: the text is cut there.
    completion_end_hit hit;
    size_t             first_start = std::string::npos;
    for (size_t k = 0; k < stops_.size(); ++k) {
        const std::string & s = stops_[k];
        if (s.size() > window.size()) continue;
        // An occurrence must end after `before`, i.e. start at or after before.size() + 1 - |s|.
        const size_t from = before.size() + 1 > s.size() ? before.size() + 1 - s.size() : 0;
        const size_t pos  = window.find(s, from);
        if (pos != std::string::npos && pos < first_start) {
            first_start    = pos;
            hit.kind       = completion_end_kind::stop;
            hit.stop_index = int32_t(k);
        }
    }
    return hit;
}

}  // namespace powersample
