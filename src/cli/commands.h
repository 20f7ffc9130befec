/* Subcommands of the `reel` program. Each takes the arguments after its own name (argv[0] is the
 * subcommand) and returns the process exit status. MPI is initialised by main() for every subcommand. */
#ifndef REEL_CLI_COMMANDS_H
#define REEL_CLI_COMMANDS_H

int reel_cmd_prep(int argc, char **argv);
int reel_cmd_synth(int argc, char **argv);
int reel_cmd_train(int argc, char **argv);
int reel_cmd_eval(int argc, char **argv);
int reel_cmd_inspect(int argc, char **argv);
int reel_cmd_generate(int argc, char **argv);
int reel_cmd_export(int argc, char **argv);
int reel_cmd_predict(int argc, char **argv);
int reel_cmd_serve(int argc, char **argv);
int reel_cmd_analyze(int argc, char **argv);
int reel_cmd_plot(int argc, char **argv);
int reel_cmd_runs(int argc, char **argv);
int reel_cmd_commtest(int argc, char **argv);

#endif
