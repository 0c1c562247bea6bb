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

// One llama.cpp context with n_seq_max sequences, each in its own KV stream of at least
// cells_per_sequence cells (kv_unified = false).
//
// Why not one unified cell pool: llama.cpp's logits for a sequence depend on the order of the
// cells its tokens occupy (by up to about 1 in a logit on SmolLM2 Q4_1), and in a shared pool a
// token lands wherever a cell was freed, often below the sequence's earlier tokens. The cached
// w_i would then differ from the model's own numbers by noise that alpha multiplies. In its own
// stream a sequence always holds position i in cell i, and its logits are those of a fresh
// decode of the same tokens in the same batch shape (tests/test-model-sampling.cpp). Some CPU
// kernels still depend on the shape (rows per product, docs/algorithm.md "Numerics: what still
// depends on the batch"): on the test model a chain is bit-identical alone and beside others, on
// the default model it is not.
// The price: a prefix copy between streams copies the stream's buffer (a memcpy, still no
// recompute), and the prompt is stored once per sequence.
class llama_language_model : public language_model {
public:
    llama_language_model(const model & m, int32_t cells_per_sequence, int32_t n_seq_max, int32_t n_batch,
                         int32_t n_threads, bool recompute_prefix);
    ~llama_language_model() override;

    int32_t       n_vocab() const override { return n_vocab_; }
    bool          is_eog(token_id token) const override;
    bool          has_token_bytes() const override { return true; }
    std::string   token_bytes(token_id token) const override;
    int32_t       n_seq_max() const override { return n_seq_max_; }
    int32_t       n_cells() const override { return n_cells_; }
    int32_t       n_cells_per_sequence() const override { return n_cells_per_seq_; }
    bool          shares_prefix_cells() const override { return can_truncate_; }
    int32_t       seq_length(int32_t seq) const override { return int32_t(history_.at(size_t(seq)).size()); }
    void          seq_copy_prefix(int32_t src, int32_t dst, int32_t n_tokens) override;
    void          seq_clear(int32_t seq) override;
    void          decode(const std::vector<decode_entry> & entries) override;
    const float * logits(int32_t entry_index) const override;

    int32_t n_batch() const { return n_batch_; }
    // Tokens decoded again by seq_copy_prefix because the prefix could not be shared or cut.
    int64_t n_tokens_redecoded() const { return n_redecoded_; }

private:
    const model &   model_;
    llama_context * ctx_ = nullptr;
    llama_batch     batch_{};
    int32_t         n_vocab_, n_seq_max_, n_cells_, n_cells_per_seq_, n_batch_;
    bool            can_truncate_;
    int64_t         n_redecoded_ = 0;
    // Tokens of each sequence: positions for decode, and the re-decode fallback.
    std::vector<std::vector<token_id>> history_;
    // Where each entry's logits are: >= 0 an output index of the last llama_decode, < 0 a row
    // -(k+1) of saved_rows_ (copied when a long decode spans several batches).
    std::vector<int32_t> row_location_;
    std::vector<float>   saved_rows_;
    std::vector<size_t>  decode_order_;  // entries sorted by sequence id (stable)
};

}  // namespace powersample
