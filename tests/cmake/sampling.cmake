# The sampler of reel generate against a nucleus computed by the test (tests/test_sampling.c).
reel_unit_test(sampling)
