# Parity of the recurrent classifiers and language models and of the GPT with PyTorch (tests/torch_parity.sh;
# torch and h5py are required).
# It runs tests/dump_batch, whose path core.cmake adds to REEL_TEST_ENV as DUMP_BATCH; fragments are
# included in alphabetical order, so that has happened by now. Fail at configure time rather than with
# an unset variable at test time if that order ever changes.
if(NOT TARGET dump_batch)
  message(FATAL_ERROR "parity.cmake needs the dump_batch target from core.cmake")
endif()
reel_script_test(torch_parity parity)
