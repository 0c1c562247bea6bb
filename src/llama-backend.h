// The llama.cpp implementation of language_model, and what `model` holds.
#pragma once

#include "powersample/powersample.h"

#include "llama.h"

#include <string>
#include <vector>

namespace powersample {

struct model::impl {
    llama_model *       handle = nullptr;
    const llama_vocab * vocab  = nullptr;
    std::string         path;
    std::string         chat_template;  // empty when the GGUF has none
    bool                can_truncate = true;
};

// One llama.cpp context with a unified KV cache, n_seq_max sequences and n_ctx cells.
class llama_language_model : public language_model {
public:
    llama_language_model(const model & m, int32_t n_ctx, int32_t n_seq_max, int32_t n_batch, int32_t n_threads,
                         bool recompute_prefix);
    ~llama_language_model() override;

    int32_t n_vocab() const override { return n_vocab_; }
    bool    is_eog(token_id token) const override;
    int32_t n_seq_max() const override { return n_seq_max_; }
    int32_t n_cells() const override { return n_cells_; }
    bool    shares_prefix_cells() const override { return can_truncate_; }
    int32_t seq_length(int32_t seq) const override { return int32_t(history_.at(size_t(seq)).size()); }
    void    seq_copy_prefix(int32_t src, int32_t dst, int32_t n_tokens) override;
    void    seq_clear(int32_t seq) override;
    void    decode(const std::vector<decode_entry> & entries) override;
    const float * logits(int32_t entry_index) const override;

    int32_t n_batch() const { return n_batch_; }

private:
    const model &  model_;
    llama_context * ctx_ = nullptr;
    llama_batch    batch_{};
    int32_t        n_vocab_, n_seq_max_, n_cells_, n_batch_;
    bool           can_truncate_;
    // Tokens of each sequence: positions for decode, and the re-decode fallback.
    std::vector<std::vector<token_id>> history_;
    // Where each entry's logits are: >= 0 an output index of the last llama_decode, < 0 a row
    // -(k+1) of saved_rows_ (copied when a long decode spans several batches).
    std::vector<int32_t> row_location_;
    std::vector<float>   saved_rows_;
};

}  // namespace powersample
