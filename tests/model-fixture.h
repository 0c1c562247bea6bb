// Shared by the tests that load a real model (CTest label "model").
#pragma once

#include "powersample/powersample.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

namespace powersample::testing {

// The model tests run on SmolLM2-135M, not on the (four times larger) default model: they check
// exactness and behaviour, which any model shows, and CI's time is bounded. scripts/test.sh fetches it.
inline constexpr const char * test_model_name = "smollm2-135m";

// The test model, loaded once per test binary. $POWERSAMPLE_TEST_MODEL overrides it.
// A missing model fails the test (never a silent skip).
inline std::shared_ptr<model> test_model() {
    static std::shared_ptr<model> m = [] {
        const char * env = std::getenv("POWERSAMPLE_TEST_MODEL");
        return model::load({ env && *env ? env : test_model_name });
    }();
    return m;
}

}  // namespace powersample::testing
