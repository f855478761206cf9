import FuzzSupport

// libFuzzer runs fuzzURITemplate on every input (see FuzzSupport.runLibFuzzer).
runLibFuzzer(fuzzURITemplate)
