#include "CLibFuzzer.h"

// From libFuzzer (compiler-rt), linked by -sanitize=fuzzer.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

static int (*fuzz_target)(const uint8_t *data, size_t size);

// libFuzzer's runtime refers to this symbol (its own main does), so it must exist; it forwards
// to the Swift function the target registered.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_target(data, size);
}

int star_fuzz_run(int *argc, char ***argv, int (*target)(const uint8_t *data, size_t size)) {
    fuzz_target = target;
    return LLVMFuzzerRunDriver(argc, argv, LLVMFuzzerTestOneInput);
}
