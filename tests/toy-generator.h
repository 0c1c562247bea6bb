// toy_generator: whole suffixes drawn from the exact toy model, as a server would generate them,
// for the remote driver's tests (and behind the fake vLLM's answers).
#pragma once

#include "powersample/remote.h"
#include "core/token-sampler.h"
#include "toy-model.h"

#include <algorithm>
#include <cmath>

namespace powersample::testing {

// Generates whole suffixes from the toy model, as a server would. `lie_about_q` reports
// log q = log p (the seed README's ratio without proposal terms): the broken control.
class toy_generator : public sequence_generator {
public:
    toy_generator(const toy_model & m, bool lie_about_q) : model_(m), lie_(lie_about_q) {}

    generated_suffix generate(const std::vector<token_id> & context, int32_t max_tokens, double temperature,
                              uint64_t seed) override {
        random_stream         rng(seed, 7, 0);
        generated_suffix      s;
        std::vector<token_id> history = context;
        for (int32_t i = 0; i < max_tokens; ++i) {
            const auto lp = model_.log_probs_after(history);
            double     mx = -INFINITY;
            for (double v : lp) mx = std::max(mx, v / temperature);
            double z = 0.0;
            for (double v : lp) z += std::exp(v / temperature - mx);
            const double u   = rng.uniform_open01();
            double       acc = 0.0;
            token_id     t   = token_id(lp.size() - 1);
            for (size_t v = 0; v < lp.size(); ++v) {
                acc += std::exp(lp[v] / temperature - mx) / z;
                if (u < acc) {
                    t = token_id(v);
                    break;
                }
            }
            s.tokens.push_back(t);
            s.log_p.push_back(lp[size_t(t)]);
            s.log_q.push_back(lie_ ? lp[size_t(t)] : lp[size_t(t)] / temperature - mx - std::log(z));
            history.push_back(t);
            if (model_.is_eog(t)) {
                s.eog = true;
                break;
            }
        }
        return s;
    }

private:
    const toy_model & model_;
    bool              lie_;
};

}  // namespace powersample::testing
