reel_unit_test(metrics)
