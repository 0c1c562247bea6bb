// One batched engine shared by every HTTP request: a single thread drives engine.step(); HTTP
// threads hand in jobs and wait on them. The engine itself is not thread-safe, so only the runner
// thread ever touches it (submit, cancel, step).
//
// Scheduling: every admitted request decodes a token per chain in every round, so what a heavy
// request can take from the others is KV sequences, for as long as it runs. The runner keeps
// the waiting jobs and hands one to the engine only when its sequences are free (a job that
// does not fit does not hold up a smaller one behind it, for at most max_overtakes overtakings,
// so that wide jobs are not starved in turn), and a heavy job (expected cost above heavy_cost)
// never takes the last `reserve` free sequences while others run: those stay for light jobs.
#pragma once

#include "powersample/powersample.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace psserver {

// A request on its way through the engine. HTTP threads read it under `mu`; the runner writes it.
struct job {
    std::vector<powersample::token_id> prompt;
    powersample::sampling_params       params;
    int32_t                            n_top_log_p = 0;        // alternatives per token (logprobs)
    powersample::decode_cost           cost;                   // estimate_decode_cost() of it
    bool                               want_progress = false;  // keep progress events (streaming)

    std::mutex                        mu;
    std::condition_variable           cv;
    std::deque<powersample::progress> events;  // unread progress, oldest first (bounded)
    bool                              done = false;
    std::string                       error;               // set when the engine rejected or failed it
    int                               error_status = 500;  // 400 when the request was at fault
    powersample::generation_result    result;

    std::atomic<bool> cancel_requested{ false };
};

struct admission_policy {
    int32_t n_sequences   = 256;        // sequence ids of the context
    int32_t reserve       = 0;          // of them, those a heavy job may not take while others run
    int64_t heavy_cost    = INT64_MAX;  // expected decoded tokens above which a job is heavy
    int32_t max_overtakes = 8;          // jobs admitted past the oldest waiting one before it is next
};

struct runner_stats {
    size_t   in_flight = 0;  // accepted, not yet finished (waiting + live)
    size_t   live      = 0;  // admitted by the engine
    uint64_t completed = 0;
    uint64_t cancelled = 0;
};

class engine_runner {
public:
    // max_in_flight: jobs accepted at once (queued + running); more are refused by try_submit.
    engine_runner(std::unique_ptr<powersample::language_model> lm, size_t max_in_flight, admission_policy policy);
    ~engine_runner();

    // False when max_in_flight jobs are already in flight (the caller answers 503).
    bool try_submit(const std::shared_ptr<job> & j);
    // The job's chains stop at the engine's next step and free their sequences.
    void         cancel(const std::shared_ptr<job> & j);
    runner_stats stats() const;

private:
    void loop();
    void admit_waiting();
    void finish_cancelled(const std::shared_ptr<job> & j);

    std::unique_ptr<powersample::language_model> lm_;
    powersample::engine                          engine_;
    const size_t                                 max_in_flight_;
    const admission_policy                       policy_;

    mutable std::mutex                mu_;
    std::condition_variable           cv_;
    std::vector<std::shared_ptr<job>> inbox_;
    size_t                            in_flight_ = 0;
    size_t                            live_      = 0;
    uint64_t                          completed_ = 0;
    uint64_t                          cancelled_ = 0;
    bool                              stop_      = false;

    // Runner thread only.
    std::map<uint64_t, std::shared_ptr<job>> by_id_;
    std::map<uint64_t, bool>                 cancel_sent_;
    std::deque<std::shared_ptr<job>>         waiting_;          // accepted, not given to the engine
    int32_t                                  seqs_in_use_ = 0;  // by jobs given to the engine
    int32_t                                  overtakes_   = 0;  // of the oldest waiting job

    std::thread thread_;
};

}  // namespace psserver
