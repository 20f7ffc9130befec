reel_unit_test(config)
