# Every registered model type, driven by the registry: tests/test_models.c holds each type's tiny
# configuration and runs the finite-difference, padding and checkpoint checks; tests/models_ranks.sh asks
# it for the types and their configurations and trains each on 1 and 2 ranks.
reel_unit_test(models)
list(APPEND REEL_TEST_ENV "TEST_MODELS=$<TARGET_FILE:test_models>")
reel_script_test(models_ranks mpi)
# The GPT's decoding: the key/value cache against recomputation, features read in pieces, max_context.
reel_unit_test(gpt)
# The GPT trained end to end: 1 vs 2 vs 3 ranks, resume, learning, predict, bad input, bf16.
reel_script_test(train_gpt mpi)
# The bag of words' n-grams and Naive-Bayes ratios: the hash and row layout, features by hand, dropout.
reel_unit_test(bow_ngrams)
# ... and trained: 1 vs 2 ranks, resume bit for bit, evaluation, configuration errors.
reel_script_test(train_bow_ngrams mpi)
# The Transformer classifier trained end to end: 1 vs 2 ranks, resume, whole reviews in windows, predict,
# eval --lengths, analyze; fine-tuned from a GPT: its tensors bit for bit, freezing, gradual unfreezing.
reel_script_test(train_transformer mpi)
