# Every registered model type, driven by the registry: tests/test_models.c holds each type's tiny
# configuration and runs the finite-difference, padding and checkpoint checks.
reel_unit_test(models)
