reel_unit_test(attention)
reel_unit_test_part(attention bf16)
