// The HTTP side that the remote clients share: remote_params validated once, and JSON requests
// with bounded retries. Each client (llama-server, vLLM) owns one.
#pragma once

#include "powersample/remote.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace httplib {
class Client;
}

namespace powersample {

class remote_http {
public:
    // Validates params (url, top_logprobs, retries, timeout, backoff): invalid_argument_error
    // naming the field. Opens no connection.
    explicit remote_http(remote_params params);
    ~remote_http();

    // POSTs body (or GETs when body is null) and parses the answer as JSON. Connection errors,
    // timeouts and 5xx are retried params.max_retries times with exponential backoff from
    // params.backoff_seconds; 4xx and a 200 that is not JSON fail at once. Throws error naming the
    // URL and the last problem.
    nlohmann::json call(const std::string & path, const nlohmann::json & body) const;

    const remote_params & params() const { return params_; }
    int64_t               n_requests() const { return n_requests_; }

private:
    remote_params                    params_;
    std::unique_ptr<httplib::Client> client_;
    mutable int64_t                  n_requests_ = 0;
};

}  // namespace powersample
