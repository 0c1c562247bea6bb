// Shared by the tests that load the real default model (CTest label "model").
#pragma once

#include "powersample/powersample.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

namespace powersample::testing {

// The default model, loaded once per test binary. $POWERSAMPLE_TEST_MODEL overrides the path.
// A missing model fails the test (never a silent skip): scripts/setup.sh fetches it.
inline std::shared_ptr<model> default_model() {
    static std::shared_ptr<model> m = [] {
        const char * env = std::getenv("POWERSAMPLE_TEST_MODEL");
        return model::load({env && *env ? env : default_model_name});
    }();
    return m;
}

}  // namespace powersample::testing
