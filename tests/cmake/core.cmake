reel_unit_test(gradcheck)
reel_unit_test(core)
reel_unit_test(checkpoint)
