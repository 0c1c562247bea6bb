// Parsing and validating the OpenAI-style request bodies of power-sampling-server.
// Every rejection names the offending field; nothing here touches the model.
#pragma once

#include "powersample/powersample.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace psserver {

// Limits a request must stay within (set from the server's command line).
struct request_limits {
    int32_t max_tokens         = 256;  // cap on max_tokens
    int32_t default_max_tokens = 64;   // max_tokens when the request gives none
    int32_t max_chains         = 2;
    int32_t max_steps          = 32;
    double  max_alpha          = 64.0;
    int32_t max_prompt_tokens  = 512;
    // Sequence ids the server's context holds: a request that needs more (sequences_needed():
    // smc particles, sps candidates and rollouts, best-of samples, chains) could never run.
    int32_t max_sequences  = 256;
    int32_t max_json_depth = 16;  // nesting of arrays and objects in a body (a chat body has 3)
};

// A request the server refuses, with its HTTP status (400, 401, ...) and the field it is about.
class request_error : public std::runtime_error {
public:
    request_error(int status, std::string field, const std::string & message)
        : std::runtime_error(message), status_(status), field_(std::move(field)) {}
    int                 status() const { return status_; }
    const std::string & field() const { return field_; }

private:
    int         status_;
    std::string field_;
};

struct parsed_request {
    bool                                   chat = false;
    std::string                            model;          // as sent (informational)
    std::string                            prompt_text;    // completions with a string prompt
    std::vector<powersample::token_id>     prompt_tokens;  // completions with a token-id prompt
    bool                                   prompt_is_tokens = false;
    std::vector<powersample::chat_message> messages;  // chat
    powersample::sampling_params           params;
    bool                                   stream        = false;
    bool                                   include_usage = false;  // stream_options.include_usage
    bool                                   logprobs      = false;  // per-token log p in the answer
    int32_t                                top_logprobs  = 0;      // alternatives per token (chat
                                                                   // top_logprobs, completions logprobs)
};

// Parses a /v1/completions (chat = false) or /v1/chat/completions body. Throws request_error.
parsed_request parse_request(const std::string & body, bool chat, const request_limits & limits, int32_t n_vocab);

}  // namespace psserver
