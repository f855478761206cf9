import FuzzSupport

// libFuzzer runs fuzzJSONBody on every input (see FuzzSupport.runLibFuzzer).
runLibFuzzer(fuzzJSONBody)
