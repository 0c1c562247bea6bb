// powersample: the language-model interface the sampler core talks to.
//
// The Metropolis-Hastings core never includes llama.h. It drives any implementation of
// `language_model`: the llama.cpp backend (powersample.h, `model`), the exact toy model of the
// tests, or a backend of your own. The contract mirrors a KV cache with numbered sequences:
//
//   * A sequence is a numbered list of tokens whose model state the backend keeps. Sequence ids
//     run from 0 to n_seq_max() - 1. Every sequence starts empty.
//   * decode() appends each entry's token to the end of its sequence (entries of one sequence are
//     appended in order) and, where asked, makes the next-token logits after that token
//     available through logits().
//   * seq_copy_prefix(src, dst, n) makes dst hold exactly the first n tokens of src. It must not
//     recompute what it can copy (llama.cpp: a unified cache shares cells by metadata; per-sequence
//     streams copy the stream's buffer and cut it). A backend that cannot roll a sequence back
//     (recurrent models) must still give the right state, e.g. by decoding the n tokens again:
//     never a wrong state.
//   * The logits after a token must depend only on the sequence's tokens, not on what other
//     sequences hold or decode: the sampler caches them and never recomputes them.
//
// Thread safety: none. One thread drives one language_model at a time.
// Errors: implementations throw powersample::error (see powersample.h) on failure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace powersample {

using token_id = int32_t;

struct decode_entry {
    int32_t  seq;          // sequence to append to
    token_id token;        // token appended at the sequence's next position
    bool     want_logits;  // make the logits after this token available
};

class language_model {
public:
    virtual ~language_model() = default;

    virtual int32_t n_vocab() const = 0;
    // True for end-of-generation tokens (llama_vocab_is_eog): they end a completion.
    virtual bool is_eog(token_id token) const = 0;
    // The token's raw bytes as the detokenizer concatenates them (special tokens not rendered,
    // no UTF-8 repair: a multi-byte character may be split across tokens). Stop strings are
    // matched on these bytes. A backend without token text keeps the defaults, and then
    // sampling_params::stop must stay empty.
    virtual bool        has_token_bytes() const { return false; }
    virtual std::string token_bytes(token_id /*token*/) const { return {}; }
    // Number of sequence ids available: 0 .. n_seq_max() - 1.
    virtual int32_t n_seq_max() const = 0;
    // Token cells in total. With a shared pool (n_cells_per_sequence() == 0, a unified KV cache)
    // all sequences draw on them, and tokens that two sequences share through seq_copy_prefix
    // occupy one cell.
    virtual int32_t n_cells() const = 0;
    // 0 for a shared pool; otherwise every sequence has its own store of this many cells
    // (llama.cpp's per-sequence KV streams), and a sequence can never hold more tokens.
    virtual int32_t n_cells_per_sequence() const { return 0; }
    // False when seq_copy_prefix() decodes the prefix again instead of sharing or copying its
    // state: then every sequence holds its own copy of the prompt (the engine reserves cells for
    // it), and the engine swaps a chain's two ids where it would otherwise copy a whole state.
    virtual bool shares_prefix_cells() const { return true; }
    // Number of tokens currently held by a sequence.
    virtual int32_t seq_length(int32_t seq) const = 0;

    // dst := the first n_tokens tokens of src (dst's previous content is dropped).
    // n_tokens == 0 clears dst; src == dst truncates.
    virtual void seq_copy_prefix(int32_t src, int32_t dst, int32_t n_tokens) = 0;
    virtual void seq_clear(int32_t seq)                                      = 0;

    // Appends the entries' tokens to their sequences. Returns after the logits of every entry
    // with want_logits are available through logits(entry_index).
    virtual void decode(const std::vector<decode_entry> & entries) = 0;
    // Raw next-token logits (n_vocab floats) after entry `entry_index` of the last decode().
    // Valid until the next call of decode().
    virtual const float * logits(int32_t entry_index) const = 0;
};

}  // namespace powersample
