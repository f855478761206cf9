import FuzzSupport

// libFuzzer runs fuzzWebSocket on every input (see FuzzSupport.runLibFuzzer).
runLibFuzzer(fuzzWebSocket)
