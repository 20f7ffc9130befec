# libFuzzer targets (tests/fuzz.sh builds them with clang in build/fuzz): 20 s each in the default
# suite (label fuzz), 10 minutes each under the long label.
foreach(target tokenizer config tokfile vocab checkpoint)
  add_test(NAME fuzz_${target} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz.sh ${target} 20)
  set_tests_properties(fuzz_${target} PROPERTIES ENVIRONMENT "${REEL_TEST_ENV};REEL_FUZZ_BUILD=${CMAKE_BINARY_DIR}/fuzz"
                       LABELS "fuzz" SKIP_RETURN_CODE 77 TIMEOUT 900 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  add_test(NAME fuzz_${target}_long COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz.sh ${target} 600)
  set_tests_properties(fuzz_${target}_long PROPERTIES ENVIRONMENT "${REEL_TEST_ENV};REEL_FUZZ_BUILD=${CMAKE_BINARY_DIR}/fuzz"
                       LABELS "long" SKIP_RETURN_CODE 77 TIMEOUT 1800 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endforeach()
