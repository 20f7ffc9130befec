reel_unit_test(gradcheck)
reel_unit_test(core)
reel_unit_test(checkpoint)

# Test helper programs used by the shell tests.
add_executable(ckpt_compare ${CMAKE_CURRENT_SOURCE_DIR}/ckpt_compare.c)
target_link_libraries(ckpt_compare PRIVATE reel_core)
list(APPEND REEL_TEST_ENV "CKPT_COMPARE=$<TARGET_FILE:ckpt_compare>")

reel_script_test(train_multirank mpi)
reel_script_test(train_resume mpi)
reel_script_test(train_errors cli)
reel_script_test(jobs_scripts cli)
reel_unit_test(recurrent)
add_executable(dump_batch ${CMAKE_CURRENT_SOURCE_DIR}/dump_batch.c)
target_link_libraries(dump_batch PRIVATE reel_core)
list(APPEND REEL_TEST_ENV "DUMP_BATCH=$<TARGET_FILE:dump_batch>")
reel_script_test(train_multiclass cli)
reel_unit_test(lm)
