# Data pipeline: tokenizer, token files, vocabulary, `reel prep` and `reel synth`.
reel_unit_test(tokenizer)
reel_unit_test(tokfile)
reel_unit_test(vocab)
reel_unit_test(pieces)
reel_script_test(prep_cli cli)
reel_script_test(prep_imdb_real realdata)
reel_script_test(pieces_prep mpi)
