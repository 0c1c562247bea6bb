#include "llama/llama-backend.h"

#include "powersample/text.h"

#include "llama/log.h"

#include <cstdio>
#include <cstring>
#include <thread>

namespace powersample {

namespace {

void check_gguf_file(const std::string & path) {
    FILE * f = std::fopen(path.c_str(), "rb");
    if (!f) {
        throw invalid_argument_error("model", "model = '" + path + "': cannot open: " + std::strerror(errno));
    }
    char         magic[4] = { 0, 0, 0, 0 };
    const size_t got      = std::fread(magic, 1, 4, f);
    std::fclose(f);
    if (got != 4 || std::memcmp(magic, "GGUF", 4) != 0) {
        throw invalid_argument_error("model", "model = '" + path + "': not a GGUF file (no GGUF magic at its start)");
    }
}

}  // namespace

// ---------------------------------------------------------------- model

model::model() : impl_(std::make_unique<impl>()) {}

model::~model() {
    if (impl_ && impl_->handle) {
        llama_model_free(impl_->handle);
    }
}

std::shared_ptr<model> model::load(const model_params & params) {
    install_llama_log_bridge();
    const std::string path = resolve_model_path(params.path);
    check_gguf_file(path);

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers       = params.n_gpu_layers;
    std::shared_ptr<model> m(new model());
    m->impl_->handle = llama_model_load_from_file(path.c_str(), mp);
    if (!m->impl_->handle) {
        throw error("model = '" + path + "': llama.cpp could not load it (truncated file or unsupported architecture)");
    }
    m->impl_->path  = path;
    m->impl_->vocab = llama_model_get_vocab(m->impl_->handle);
    if (const char * t = llama_model_chat_template(m->impl_->handle, nullptr)) {
        m->impl_->chat_template = t;
    }
    m->impl_->can_truncate = !llama_model_is_recurrent(m->impl_->handle) && !llama_model_is_hybrid(m->impl_->handle);
    if (!m->impl_->can_truncate) {
        log_message(log_level::warn,
                    "recurrent or hybrid model: its state cannot be cut back to a prefix, "
                    "so every proposal re-decodes its prefix (correct, slower)");
    }
    return m;
}

std::vector<token_id> model::tokenize(const std::string & text, bool add_special, bool parse_special) const {
    if (const size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
        throw invalid_argument_error("prompt", "prompt: invalid UTF-8 at byte " + std::to_string(bad));
    }
    if (text.size() > size_t(INT32_MAX / 2)) {
        throw invalid_argument_error("prompt", "prompt: too long (" + std::to_string(text.size()) + " bytes)");
    }
    std::vector<token_id> tokens(text.size() + 8);
    int32_t n = llama_tokenize(impl_->vocab, text.data(), int32_t(text.size()), tokens.data(), int32_t(tokens.size()),
                               add_special, parse_special);
    if (n < 0) {
        tokens.resize(size_t(-n));
        n = llama_tokenize(impl_->vocab, text.data(), int32_t(text.size()), tokens.data(), int32_t(tokens.size()),
                           add_special, parse_special);
    }
    if (n < 0) {
        throw error("prompt: tokenization failed");
    }
    tokens.resize(size_t(n));
    return tokens;
}

std::string model::detokenize(const std::vector<token_id> & tokens) const {
    if (tokens.empty()) return {};
    std::string out(tokens.size() * 8 + 16, '\0');
    int32_t n = llama_detokenize(impl_->vocab, tokens.data(), int32_t(tokens.size()), out.data(), int32_t(out.size()),
                                 false, false);
    if (n < 0) {
        out.resize(size_t(-n));
        n = llama_detokenize(impl_->vocab, tokens.data(), int32_t(tokens.size()), out.data(), int32_t(out.size()),
                             false, false);
    }
    out.resize(size_t(std::max(n, 0)));
    return valid_utf8(out);
}

std::string model::completion_text(const std::vector<token_id> & tokens, const std::string & stop) const {
    std::vector<token_id> visible;
    visible.reserve(tokens.size());
    for (token_id t : tokens) {
        if (!is_eog(t)) visible.push_back(t);
    }
    std::string text = detokenize(visible);
    if (!stop.empty()) {
        if (const size_t at = text.find(stop); at != std::string::npos) text.resize(at);
    }
    return text;
}

std::string model::token_to_piece(token_id token) const {
    char          buf[256];
    const int32_t n = llama_token_to_piece(impl_->vocab, token, buf, sizeof(buf), 0, true);
    return n > 0 ? valid_utf8(std::string_view(buf, size_t(n))) : std::string();
}

bool model::has_chat_template() const { return !impl_->chat_template.empty(); }

std::string model::format_chat(const std::string & user_message, const std::string & system_message) const {
    std::vector<chat_message> messages;
    if (!system_message.empty()) messages.push_back({ "system", system_message });
    messages.push_back({ "user", user_message });
    return format_chat(messages);
}

std::string model::format_chat(const std::vector<chat_message> & messages) const {
    if (impl_->chat_template.empty()) {
        throw error("model '" + impl_->path + "' has no chat template; use the raw prompt");
    }
    if (messages.empty()) {
        throw invalid_argument_error("messages", "messages: empty");
    }
    std::vector<llama_chat_message> msgs;
    size_t                          total = 0;
    for (const auto & m : messages) {
        msgs.push_back({ m.role.c_str(), m.content.c_str() });
        total += m.role.size() + m.content.size();
    }
    std::vector<char> buf(2 * total + 1024);
    int32_t n = llama_chat_apply_template(impl_->chat_template.c_str(), msgs.data(), msgs.size(), true, buf.data(),
                                          int32_t(buf.size()));
    if (n > int32_t(buf.size())) {
        buf.resize(size_t(n));
        n = llama_chat_apply_template(impl_->chat_template.c_str(), msgs.data(), msgs.size(), true, buf.data(),
                                      int32_t(buf.size()));
    }
    if (n < 0) {
        throw error("model '" + impl_->path + "': its chat template is not one llama.cpp supports; use --raw");
    }
    return std::string(buf.data(), size_t(n));
}

std::vector<token_id> model::tokenize_chat(const std::vector<chat_message> & messages) const {
    // Render the template with a sentinel in place of each content, then tokenize the template's
    // pieces with special tokens parsed and the contents without. The sentinels use control
    // characters no template emits; a content that holds one is rejected rather than mis-split.
    auto                      sentinel = [](size_t i) { return "\x1e" + std::to_string(i) + "\x1f"; };
    std::vector<chat_message> marked;
    for (size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].content.find('\x1e') != std::string::npos) {
            throw invalid_argument_error(
                "messages", "messages[" + std::to_string(i) + "].content: holds the control character U+001E");
        }
        marked.push_back({ messages[i].role, sentinel(i) });
    }
    const std::string     rendered = format_chat(marked);
    std::vector<token_id> out;
    size_t                pos   = 0;
    bool                  first = true;
    auto                  add   = [&](const std::string & text, bool special) {
        if (text.empty()) return;
        const auto t = tokenize(text, first, special);
        out.insert(out.end(), t.begin(), t.end());
        first = false;
    };
    for (size_t i = 0; i < messages.size(); ++i) {
        const std::string s  = sentinel(i);
        const size_t      at = rendered.find(s, pos);
        if (at == std::string::npos) continue;  // the template dropped this message
        add(rendered.substr(pos, at - pos), true);
        add(messages[i].content, false);
        pos = at + s.size();
    }
    add(rendered.substr(pos), true);
    return out;
}

int32_t     model::n_vocab() const { return llama_vocab_n_tokens(impl_->vocab); }
int32_t     model::n_ctx_train() const { return llama_model_n_ctx_train(impl_->handle); }
bool        model::is_eog(token_id token) const { return llama_vocab_is_eog(impl_->vocab, token); }
bool        model::can_truncate_state() const { return impl_->can_truncate; }
std::string model::path() const { return impl_->path; }
uint64_t    model::n_params() const { return llama_model_n_params(impl_->handle); }
uint64_t    model::size_bytes() const { return llama_model_size(impl_->handle); }

std::string model::description() const {
    char buf[256];
    llama_model_desc(impl_->handle, buf, sizeof(buf));
    return buf;
}

// ---------------------------------------------------------------- llama_language_model

llama_language_model::llama_language_model(const model & m, int32_t cells_per_sequence, int32_t n_seq_max,
                                           int32_t n_batch, int32_t n_threads, bool recompute_prefix)
    : model_(m), can_truncate_(m.can_truncate_state() && !recompute_prefix) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx                = uint32_t(int64_t(cells_per_sequence) * n_seq_max);
    cp.n_batch              = uint32_t(n_batch);
    cp.n_ubatch             = uint32_t(n_batch);
    cp.n_seq_max            = uint32_t(n_seq_max);
    const int32_t threads   = n_threads > 0 ? n_threads : int32_t(std::max(1u, std::thread::hardware_concurrency()));
    cp.n_threads            = threads;
    cp.n_threads_batch      = threads;
    // One KV stream per sequence (see llama-backend.h for why not a unified pool).
    cp.kv_unified = false;
    // Sliding-window models (Gemma 3) must keep every position, or a prefix copy loses it.
    cp.swa_full = true;
    cp.no_perf  = true;
    ctx_        = llama_init_from_model(m.internals().handle, cp);
    if (!ctx_) {
        throw error("could not create a llama.cpp context with " + std::to_string(cells_per_sequence) +
                    " cells per sequence and " + std::to_string(n_seq_max) + " sequences (out of memory?)");
    }
    n_vocab_         = m.n_vocab();
    n_seq_max_       = int32_t(llama_n_seq_max(ctx_));
    n_cells_         = int32_t(llama_n_ctx(ctx_));
    n_cells_per_seq_ = int32_t(llama_n_ctx_seq(ctx_));
    n_batch_         = int32_t(llama_n_batch(ctx_));
    batch_           = llama_batch_init(n_batch_, 0, 1);
    history_.resize(size_t(n_seq_max_));
}

llama_language_model::~llama_language_model() {
    llama_batch_free(batch_);
    if (ctx_) llama_free(ctx_);
}

bool llama_language_model::is_eog(token_id token) const { return model_.is_eog(token); }

std::string llama_language_model::token_bytes(token_id token) const {
    // Raw bytes, special tokens not rendered, as llama_detokenize concatenates pieces; no UTF-8
    // repair here, since a stop string may span the tokens of one character.
    char    buf[256];
    int32_t n = llama_token_to_piece(model_.internals().vocab, token, buf, sizeof(buf), 0, false);
    if (n >= 0) return std::string(buf, size_t(n));
    std::string big(size_t(-n), '\0');
    n = llama_token_to_piece(model_.internals().vocab, token, big.data(), int32_t(big.size()), 0, false);
    big.resize(size_t(std::max(n, 0)));
    return big;
}

void llama_language_model::seq_clear(int32_t seq) {
    llama_memory_seq_rm(llama_get_memory(ctx_), seq, -1, -1);
    history_.at(size_t(seq)).clear();
}

void llama_language_model::seq_copy_prefix(int32_t src, int32_t dst, int32_t n_tokens) {
    llama_memory_t                mem    = llama_get_memory(ctx_);
    const std::vector<token_id> & source = history_.at(size_t(src));
    if (n_tokens > int32_t(source.size())) {
        throw error("seq_copy_prefix: " + std::to_string(n_tokens) + " tokens requested, sequence holds " +
                    std::to_string(source.size()));
    }
    if (src == dst && can_truncate_ && llama_memory_seq_rm(mem, dst, n_tokens, -1)) {
        history_[size_t(dst)].resize(size_t(n_tokens));
        return;
    }
    if (src != dst && (n_tokens == 0 || can_truncate_)) {
        seq_clear(dst);
        if (n_tokens == 0) return;
        // Streams are copied whole, then cut: cells [0, n) keep positions [0, n) in order.
        llama_memory_seq_cp(mem, src, dst, -1, -1);
        if (!llama_memory_seq_rm(mem, dst, n_tokens, -1)) {
            throw error("llama.cpp could not truncate a copied sequence to " + std::to_string(n_tokens) + " tokens");
        }
        // Guard against a memory type that copies more or less than asked: never a wrong state.
        if (llama_memory_seq_pos_max(mem, dst) != n_tokens - 1 || llama_memory_seq_pos_min(mem, dst) != 0) {
            throw error("llama.cpp did not copy positions [0, " + std::to_string(n_tokens) +
                        ") of a sequence; this model's memory cannot be shared by prefix");
        }
        history_[size_t(dst)].assign(source.begin(), source.begin() + n_tokens);
        return;
    }
    // Recurrent state, or the recompute baseline: decode the prefix again into dst. The prefix
    // is copied out first because src may be dst.
    const std::vector<token_id> prefix(source.begin(), source.begin() + n_tokens);
    seq_clear(dst);
    std::vector<decode_entry> redo;
    for (token_id t : prefix) redo.push_back({ dst, t, false });
    n_redecoded_ += int64_t(redo.size());
    decode(redo);
}

void llama_language_model::decode(const std::vector<decode_entry> & entries) {
    row_location_.assign(entries.size(), 0);
    saved_rows_.clear();
    // With per-sequence streams llama.cpp puts only runs of consecutive sequence ids into one
    // micro-batch: sort by id (stable, so one sequence's tokens keep their order).
    decode_order_.resize(entries.size());
    for (size_t e = 0; e < entries.size(); ++e) decode_order_[e] = e;
    std::stable_sort(decode_order_.begin(), decode_order_.end(),
                     [&](size_t a, size_t b) { return entries[a].seq < entries[b].seq; });
    size_t start = 0;
    while (start < entries.size()) {
        const size_t end = std::min(entries.size(), start + size_t(n_batch_));
        batch_.n_tokens  = 0;
        for (size_t k = start; k < end; ++k) {
            const decode_entry & d = entries[decode_order_[k]];
            if (d.seq < 0 || d.seq >= n_seq_max_) {
                throw error("decode: sequence id " + std::to_string(d.seq) + " out of range");
            }
            auto &        hist  = history_[size_t(d.seq)];
            const int32_t i     = batch_.n_tokens++;
            batch_.token[i]     = d.token;
            batch_.pos[i]       = llama_pos(hist.size());
            batch_.n_seq_id[i]  = 1;
            batch_.seq_id[i][0] = d.seq;
            batch_.logits[i]    = d.want_logits;
            hist.push_back(d.token);
        }
        const int32_t rc = llama_decode(ctx_, batch_);
        if (rc != 0) {
            throw error(rc == 1 ? "llama_decode: no room in the KV cache (" + std::to_string(n_cells_) + " cells)"
                                : "llama_decode failed with code " + std::to_string(rc));
        }
        const bool last_chunk = end == entries.size();
        for (size_t k = start; k < end; ++k) {
            const size_t e = decode_order_[k];
            if (!entries[e].want_logits) continue;
            const int32_t i = int32_t(k - start);
            if (last_chunk) {
                row_location_[e] = i;
            } else {
                const float * row = llama_get_logits_ith(ctx_, i);
                const size_t  k   = saved_rows_.size() / size_t(n_vocab_);
                saved_rows_.insert(saved_rows_.end(), row, row + n_vocab_);
                row_location_[e] = -int32_t(k) - 1;
            }
        }
        start = end;
    }
}

const float * llama_language_model::logits(int32_t entry_index) const {
    const int32_t loc = row_location_.at(size_t(entry_index));
    if (loc < 0) {
        return saved_rows_.data() + size_t(-loc - 1) * size_t(n_vocab_);
    }
    return llama_get_logits_ith(ctx_, loc);
}

}  // namespace powersample
