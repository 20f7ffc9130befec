# The windows of a bounded context (reel/windows.h), exhaustively on small cases (tests/test_windows.c).
reel_unit_test(windows)
reel_unit_test(windows_lm) # bounded-context scoring against one forward per window (tests/test_windows_lm.c)
reel_script_test(windows_eval cli) # eval, predict and generate of a model whose context is bounded (tests/windows_eval.sh)
