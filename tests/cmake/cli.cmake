# The option parsers shared by the command-line front ends (tests/test_cli.c). src/cli is not part of
# the library, so the test compiles cli_common.c itself.
reel_unit_test(cli)
target_sources(test_cli PRIVATE ${CMAKE_SOURCE_DIR}/src/cli/cli_common.c)
target_include_directories(test_cli PRIVATE ${CMAKE_SOURCE_DIR}/src/cli)
