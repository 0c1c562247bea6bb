// The power-sampling chain over a sequence_generator: the same MH chain as the in-process engine
// (mh-chain.h), each block extension and each proposal one generate() call (a server generates
// whole suffixes).
#include "powersample/knobs.h"
#include "powersample/remote.h"

#include "core/methods/mh-chain.h"
#include "core/token-sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace powersample {

namespace {

// Server seeds are 32-bit, and llama-server reads 0xFFFFFFFF as "random".
uint32_t request_seed(random_stream & rng) { return uint32_t(rng.next_u64() % 0xFFFFFFFEull); }

}  // namespace

remote_result sample_remote(sequence_generator & gen, const std::vector<token_id> & prompt,
                            const sampling_params & params, const remote_run_options & options) {
    validate(params);
    if (prompt.empty()) throw invalid_argument_error("prompt", "prompt: empty");
    if (params.method != method::power && params.method != method::sample && params.method != method::low_temp) {
        throw invalid_argument_error("method", std::string("method = ") + method_name(params.method) +
                                                   ": the remote backend runs power, sample and low-temp only");
    }
    using P = sampling_params;
    if (!params.stop.empty()) {
        // A server generates whole suffixes and would not end them at our stop rule.
        const std::string stop = knob_for(&P::stop).name();
        throw invalid_argument_error(stop, stop + ": the remote backend does not support stop strings");
    }
    if (params.top_k > 0 || params.top_p < 1.0 || params.min_p > 0.0) {
        const std::string top_k = knob_for(&P::top_k).name();
        throw invalid_argument_error(top_k, top_k + "/" + knob_for(&P::top_p).name() + "/" +
                                                knob_for(&P::min_p).name() +
                                                ": the remote backend samples untruncated proposals only");
    }
    const double  temperature = effective_temperature(params);
    const int32_t T           = params.max_new_tokens;
    const int32_t B           = std::min(params.block_size, T);
    const int32_t N           = params.method == method::power ? params.n_steps_per_block : 0;
    const int32_t n_blocks    = params.method == method::power ? (T + B - 1) / B : 1;
    const int32_t block_len   = params.method == method::power ? B : T;

    remote_result out;
    out.result.n_prompt_tokens = int32_t(prompt.size());
    const auto start           = std::chrono::steady_clock::now();
    auto       cancelled       = [&] { return options.cancel && options.cancel->load(); };

    for (int32_t c = 0; c < params.n_chains; ++c) {
        random_stream   token_rng(params.seed, uint64_t(c), 0);  // request seeds
        mh_chain        chain(params, uint64_t(c));              // cuts and accept uniforms: (seed, c, 1)
        sample_result & res     = chain.result();
        bool            stopped = false;

        auto draw = [&](int32_t m, int32_t target) {
            std::vector<token_id> context = prompt;
            context.insert(context.end(), chain.tokens().begin(), chain.tokens().begin() + m);
            generated_suffix s = gen.generate(context, target - m, temperature, request_seed(token_rng));
            out.n_requests += 1;
            if (s.tokens.empty() || s.tokens.size() != s.log_p.size() || s.tokens.size() != s.log_q.size()) {
                throw error("remote: the generator returned " + std::to_string(s.tokens.size()) + " tokens with " +
                            std::to_string(s.log_p.size()) + " log p and " + std::to_string(s.log_q.size()) +
                            " log q values");
            }
            if (int32_t(s.tokens.size()) > target - m || (!s.eog && int32_t(s.tokens.size()) < target - m)) {
                throw error("remote: asked for " + std::to_string(target - m) + " tokens, got " +
                            std::to_string(s.tokens.size()) + (s.eog ? " ending with EOG" : " without EOG") +
                            " (the server stopped for another reason: context full?)");
            }
            if (!s.exact) out.exact = false;
            out.max_log_q_error = std::max(out.max_log_q_error, s.max_log_q_error);
            res.n_tokens_generated += int64_t(s.tokens.size());
            res.n_tokens_decoded += int64_t(s.tokens.size());
            return s;
        };
        auto report = [&](int32_t block, int32_t step, bool done) {
            if (!options.on_progress) return;
            progress p{};
            p.request_id         = 0;
            p.chain              = c;
            p.block              = block;
            p.n_blocks           = n_blocks;
            p.step               = step;
            p.n_steps            = N;
            p.length             = int32_t(chain.tokens().size());
            p.n_proposals        = res.n_proposals;
            p.n_accepted         = res.n_accepted;
            p.n_tokens_generated = res.n_tokens_generated;
            p.done               = done;
            options.on_progress(p);
        };

        for (int32_t block = 1; block <= n_blocks && !stopped; ++block) {
            const int32_t target   = std::min<int64_t>(int64_t(block) * block_len, T);
            const bool    ends_eog = !chain.tokens().empty() && res.finish == finish_reason::eog;
            if (int32_t(chain.tokens().size()) < target && !ends_eog) {
                if (cancelled()) {
                    stopped = true;
                    break;
                }
                generated_suffix s = draw(int32_t(chain.tokens().size()), target);
                // No entropies from a server: power-entropy does not run remotely.
                for (size_t i = 0; i < s.tokens.size(); ++i) chain.extend(s.tokens[i], s.log_p[i], s.log_q[i], 0.0);
                res.finish = s.eog ? finish_reason::eog : finish_reason::length;
            }
            report(block, 0, false);
            for (int32_t step = 0; step < N; ++step) {
                if (cancelled()) {
                    stopped = true;
                    break;
                }
                // The whole suffix arrives at once, so nothing is left to stop early: the step
                // ends with the full decision (docs/remote.md).
                const int32_t    m = chain.begin_step();
                generated_suffix s = draw(m, target);
                for (size_t i = 0; i < s.tokens.size(); ++i) chain.propose(s.tokens[i], s.log_p[i], s.log_q[i], 0.0);
                if (chain.end_step(block, target, false))
                    res.finish = s.eog ? finish_reason::eog : finish_reason::length;
                report(block, step + 1, false);
            }
            if (res.finish == finish_reason::eog || int32_t(chain.tokens().size()) >= T) break;
        }
        if (stopped) res.finish = finish_reason::cancelled;
        res.tokens      = chain.tokens();
        res.token_log_p = chain.token_log_p();
        res.log_p       = chain.log_p();
        out.result.n_tokens_decoded += res.n_tokens_decoded;
        out.result.chains.push_back(std::move(res));
        report(n_blocks, N, true);
    }
    out.result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
}

}  // namespace powersample
