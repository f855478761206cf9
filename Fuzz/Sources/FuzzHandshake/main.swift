import FuzzSupport

// libFuzzer runs fuzzHandshake on every input (see FuzzSupport.runLibFuzzer).
runLibFuzzer(fuzzHandshake)
