reel_unit_test(config)
reel_script_test(configs_shipped mpi)
