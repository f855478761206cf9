#ifndef C_LIB_FUZZER_H
#define C_LIB_FUZZER_H

#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (compiler-rt, linked by `-sanitize=fuzzer`) with `target` as the
/// `LLVMFuzzerTestOneInput` it calls on every input.
///
/// SwiftPM makes an executable's `main` its own (it renames the module's entry point and points
/// `main` at it), so libFuzzer's `main` never runs: each target's `main.swift` calls this instead.
int star_fuzz_run(int *argc, char ***argv, int (*target)(const uint8_t *data, size_t size));

#endif
