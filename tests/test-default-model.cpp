// The default model (qwen2.5-coder-0.5b) answers the README's first prompt: what a new user sees
// first must be right. Power sampling with the default preset, several seeds; greedy too.
#include "powersample/powersample.h"

#include <gtest/gtest.h>

using namespace powersample;

TEST(default_model, answers_the_readme_prompt) {
    auto m = model::load({default_model_name});
    ASSERT_EQ(std::string(default_model_name), "qwen2.5-coder-0.5b");
    power_sampler sampler(m, context_params{2});
    const std::string prompt = m->format_chat("What is 7 * 8? Answer briefly.");
    sampling_params p = preset("quality");
    for (uint64_t seed = 1; seed <= 6; ++seed) {
        p.seed = seed;
        const auto r = sampler.generate(prompt, p);
        ASSERT_EQ(r.chains.size(), 1u);
        EXPECT_NE(r.chains[0].text.find("56"), std::string::npos) << "seed " << seed << ": " << r.chains[0].text;
        EXPECT_EQ(r.chains[0].finish, finish_reason::eog) << "seed " << seed;
    }
    p.method = method::greedy;
    EXPECT_NE(sampler.generate(prompt, p).chains[0].text.find("56"), std::string::npos);
}
