// Answer extraction and grading for the evaluation harness, one file per task, and the report's
// statistics. Everything except run_humaneval_test is a pure function; none of the graders throws
// on odd model output (a response without an answer is simply wrong).
#pragma once

#include "graders/humaneval.h"
#include "graders/math.h"
#include "graders/numeric.h"
#include "statistics.h"
