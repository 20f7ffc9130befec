# Using trained models: reel predict, serve, analyze, plot and runs.
reel_script_test(predict cli)
reel_script_test(serve cli)
reel_script_test(serve_page cli)
reel_script_test(serve_gpt cli)
reel_script_test(analyze mpi)
reel_script_test(plot_runs mpi)
