#include "remote/http.h"

#include <httplib.h>

#include <chrono>
#include <thread>

namespace powersample {

using json = nlohmann::json;

remote_http::remote_http(remote_params params) {
    if (params.url.empty()) throw invalid_argument_error("url", "remote url: empty");
    if (params.url.rfind("http://", 0) != 0) {
        throw invalid_argument_error("url", "remote url = '" + params.url + "': must start with http://");
    }
    if (params.top_logprobs < 1) {
        throw invalid_argument_error("top_logprobs",
                                     "top_logprobs = " + std::to_string(params.top_logprobs) + ": must be >= 1");
    }
    if (params.max_retries < 0) {
        throw invalid_argument_error("max_retries",
                                     "max_retries = " + std::to_string(params.max_retries) + ": must be >= 0");
    }
    if (!(params.timeout_seconds > 0)) {
        throw invalid_argument_error("timeout_seconds",
                                     "timeout_seconds = " + std::to_string(params.timeout_seconds) + ": must be > 0");
    }
    if (!(params.backoff_seconds >= 0)) {
        throw invalid_argument_error("backoff_seconds",
                                     "backoff_seconds = " + std::to_string(params.backoff_seconds) + ": must be >= 0");
    }
    while (!params.url.empty() && params.url.back() == '/') params.url.pop_back();
    params_         = std::move(params);
    client_         = std::make_unique<httplib::Client>(params_.url);
    const auto sec  = time_t(params_.timeout_seconds);
    const auto usec = time_t((params_.timeout_seconds - double(sec)) * 1e6);
    client_->set_connection_timeout(sec, usec);
    client_->set_read_timeout(sec, usec);
    client_->set_write_timeout(sec, usec);
    // One connection for the whole chain: a proposal is one request, and a fresh TCP connection per
    // step costs more than the request itself on a fast server. A connection the server has
    // closed is reopened by httplib; a failure in between is retried below. No Nagle delay on a
    // reused connection (llama-server and vLLM's uvicorn set TCP_NODELAY on their side too).
    client_->set_keep_alive(true);
    client_->set_tcp_nodelay(true);
    if (!params_.api_key.empty()) client_->set_bearer_token_auth(params_.api_key.c_str());
}

remote_http::~remote_http() = default;

json remote_http::call(const std::string & path, const json & body) const {
    std::string last_problem;
    double      delay = params_.backoff_seconds;
    for (int32_t attempt = 0; attempt <= params_.max_retries; ++attempt) {
        if (attempt > 0) {
            std::this_thread::sleep_for(std::chrono::duration<double>(delay));
            delay *= 2;
        }
        n_requests_ += 1;
        httplib::Result res =
            body.is_null() ? client_->Get(path.c_str()) : client_->Post(path.c_str(), body.dump(), "application/json");
        if (!res) {
            last_problem = "no response (" + httplib::to_string(res.error()) + ")";
            continue;
        }
        if (res->status >= 500) {
            last_problem = "HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 300);
            continue;
        }
        if (res->status != 200) {
            throw error("remote " + params_.url + path + ": HTTP " + std::to_string(res->status) + ": " +
                        res->body.substr(0, 500));
        }
        try {
            return json::parse(res->body);
        } catch (const json::parse_error &) {
            throw error("remote " + params_.url + path + ": response is not JSON");
        }
    }
    throw error("remote " + params_.url + path + ": failed after " + std::to_string(params_.max_retries + 1) +
                " attempts; last: " + last_problem);
}

}  // namespace powersample
