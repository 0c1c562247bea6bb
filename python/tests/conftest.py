"""Shared fixtures: the test model (SmolLM2-135M, which scripts/test.sh fetches; smaller and faster
than the default model), loaded once.

A missing model fails the tests rather than skipping them. $POWERSAMPLE_TEST_MODEL overrides it.
Samplers use one thread: these short runs do not depend on the thread count, and on a busy machine one
llama.cpp thread is much faster than several that spin waiting for each other."""

import os

import pytest

import powersample


@pytest.fixture(scope="session")
def model_and_tokenizer():
    return powersample.load_model_and_tokenizer(os.environ.get("POWERSAMPLE_TEST_MODEL") or "smollm2-135m")


@pytest.fixture(scope="session")
def model(model_and_tokenizer):
    return model_and_tokenizer[0]


@pytest.fixture(scope="session")
def tokenizer(model_and_tokenizer):
    return model_and_tokenizer[1]


@pytest.fixture(scope="session")
def sampler(model, tokenizer):
    return powersample.PowerSampler(model, tokenizer, threads=1)
