# The sanitizer build (tests/sanitize.sh builds build/asan): its unit tests in the default suite (label
# sanitize), its whole suite but the scheduler, browser and long tests under the long label.
set(REEL_ASAN_ENV "${REEL_TEST_ENV};REEL_ASAN_BUILD=${CMAKE_BINARY_DIR}/asan")
add_test(NAME sanitize_unit COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/sanitize.sh -L unit)
set_tests_properties(sanitize_unit PROPERTIES ENVIRONMENT "${REEL_ASAN_ENV}" LABELS "sanitize" TIMEOUT 1200
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
add_test(NAME sanitize_suite COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/sanitize.sh -LE "long|cluster|sanitize|fuzz|parity"
                                     -E serve_page)
set_tests_properties(sanitize_suite PROPERTIES ENVIRONMENT "${REEL_ASAN_ENV}" LABELS "long" TIMEOUT 3600
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
