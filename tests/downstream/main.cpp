// The README's first example as a program outside the project: the default model (or MODEL),
// power sampling, the completion on stdout. Usage: downstream [MODEL]
#include <powersample/powersample.h>

#include <iostream>

int main(int argc, char ** argv) {
    auto       model  = powersample::model::load({ argc > 1 ? argv[1] : "" });
    const auto result = powersample::power_sample(model, "What is 7 * 8? Answer briefly.", 4.0, 16, 2, 32);
    std::cout << result.text << "\n";
    return 0;
}
