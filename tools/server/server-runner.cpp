#include "server-runner.h"

#include <chrono>

namespace ps = powersample;

namespace psserver {

namespace {

constexpr size_t max_buffered_events = 256;

void finish(job & j, const std::string & error, ps::generation_result result, int error_status = 500) {
    {
        std::lock_guard<std::mutex> lock(j.mu);
        j.error        = error;
        j.error_status = error_status;
        j.result       = std::move(result);
        j.done         = true;
    }
    j.cv.notify_all();
}

}  // namespace

engine_runner::engine_runner(std::unique_ptr<ps::language_model> lm, size_t max_in_flight, admission_policy policy)
    : lm_(std::move(lm)), engine_(*lm_), max_in_flight_(max_in_flight), policy_(policy) {
    engine_.set_progress_callback([this](const ps::progress & p) {
        auto it = by_id_.find(p.request_id);
        if (it == by_id_.end() || !it->second->want_progress) return;
        job & j = *it->second;
        {
            std::lock_guard<std::mutex> lock(j.mu);
            if (j.events.size() >= max_buffered_events) j.events.pop_front();
            j.events.push_back(p);
        }
        j.cv.notify_all();
    });
    thread_ = std::thread([this] { loop(); });
}

engine_runner::~engine_runner() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

bool engine_runner::try_submit(const std::shared_ptr<job> & j) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (in_flight_ >= max_in_flight_) return false;
        in_flight_ += 1;
        inbox_.push_back(j);
    }
    cv_.notify_all();
    return true;
}

void engine_runner::cancel(const std::shared_ptr<job> & j) {
    j->cancel_requested = true;
    cv_.notify_all();
}

runner_stats engine_runner::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return { in_flight_, live_, completed_, cancelled_ };
}

void engine_runner::finish_cancelled(const std::shared_ptr<job> & j) {
    ps::generation_result none;
    none.chains.resize(size_t(j->params.n_chains));
    for (auto & c : none.chains) c.finish = ps::finish_reason::cancelled;
    {
        std::lock_guard<std::mutex> lock(mu_);
        in_flight_ -= 1;
        cancelled_ += 1;
    }
    finish(*j, "", std::move(none));
}

void engine_runner::admit_waiting() {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        const std::shared_ptr<job> j      = *it;
        const bool                 oldest = it == waiting_.begin();
        if (j->cancel_requested) {
            finish_cancelled(j);
            it = waiting_.erase(it);
            if (oldest) overtakes_ = 0;
            continue;
        }
        const int32_t need  = ps::sequences_needed(j->params);
        const bool    heavy = j->cost.expected > policy_.heavy_cost;
        const int32_t free  = policy_.n_sequences - seqs_in_use_;
        // Alone, a heavy job may take everything: nothing else would use it.
        const int32_t usable = heavy && seqs_in_use_ > 0 ? free - policy_.reserve : free;
        if (need > usable) {
            if (oldest && overtakes_ >= policy_.max_overtakes) return;  // the others wait for it now
            ++it;
            continue;
        }
        it = waiting_.erase(it);
        if (oldest) {
            overtakes_ = 0;
        } else {
            overtakes_ += 1;
        }
        try {
            const uint64_t id = engine_.submit({ j->prompt, j->params, j->n_top_log_p });
            by_id_[id]        = j;
            seqs_in_use_ += need;
        } catch (const std::exception & e) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                in_flight_ -= 1;
            }
            const bool client_fault = dynamic_cast<const ps::invalid_argument_error *>(&e) != nullptr;
            finish(*j, e.what(), {}, client_fault ? 400 : 500);
        }
    }
}

void engine_runner::loop() {
    while (true) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || !by_id_.empty() || !waiting_.empty(); });
            if (stop_) break;
            for (auto & j : inbox_) waiting_.push_back(std::move(j));
            inbox_.clear();
        }
        admit_waiting();
        if (by_id_.empty()) {
            // Only jobs that cannot be admitted (cancelled ones were just retired): wait for news.
            if (!waiting_.empty()) {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait_for(lock, std::chrono::milliseconds(50));
            }
            continue;
        }
        for (auto & [id, j] : by_id_) {
            if (j->cancel_requested && !cancel_sent_[id]) {
                engine_.cancel(id);
                cancel_sent_[id] = true;
            }
        }
        std::string failure;
        try {
            engine_.step();
        } catch (const std::exception & e) {
            // A runtime failure (llama_decode) fails every request in the engine: their KV state
            // is unknown. They are reported as errors, never as finished samples.
            failure = e.what();
        }
        if (!failure.empty()) {
            engine_.cancel_all();
            try {
                engine_.step();
            } catch (const std::exception &) {}
            engine_.take_finished();
            std::lock_guard<std::mutex> lock(mu_);
            for (auto & [id, j] : by_id_) {
                in_flight_ -= 1;
                finish(*j, "engine failure: " + failure, {});
            }
            by_id_.clear();
            cancel_sent_.clear();
            seqs_in_use_ = 0;
            live_        = 0;
            continue;
        }
        for (auto & f : engine_.take_finished()) {
            auto it = by_id_.find(f.id);
            if (it == by_id_.end()) continue;
            std::shared_ptr<job> j = it->second;
            by_id_.erase(it);
            cancel_sent_.erase(f.id);
            seqs_in_use_ -= ps::sequences_needed(j->params);
            {
                std::lock_guard<std::mutex> lock(mu_);
                in_flight_ -= 1;
                if (j->cancel_requested)
                    cancelled_ += 1;
                else
                    completed_ += 1;
            }
            finish(*j, "", std::move(f.result));
        }
        std::lock_guard<std::mutex> lock(mu_);
        live_ = engine_.n_live();
    }
}

}  // namespace psserver
