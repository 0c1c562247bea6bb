// `power-sampling models --fetch NAME`: downloads a catalogue model into the models cache.
#pragma once

#include <string>

// Runs the fetch script (scripts/fetch-model.sh, installed as share/powersample/fetch-model.sh)
// for catalogue model `name`, its progress on stderr. Returns the exit code: 0 fetched or
// already cached, 1 an unknown name or no script found (one line naming --fetch), 2 the
// download or a check failed (the script says which; nothing partial is left in the cache).
int fetch_model(const std::string & name);
