# The Transformer layer kernels (layer norm, GELU, position embeddings): gradients, references, accumulation.
reel_unit_test(xf_layers)
# Their parity with PyTorch (tests/torch_layers.sh; torch is required): test_xf_layers dump writes the
# kernels' inputs and results for it.
list(APPEND REEL_TEST_ENV "TEST_XF_LAYERS=$<TARGET_FILE:test_xf_layers>")
reel_script_test(torch_layers parity)
