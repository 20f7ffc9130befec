/* reel serve: a trained model as a local HTTP service and page (reel/server.h). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/loader.h"
#include "reel/server.h"
#include "reel/util.h"

static void usage(FILE *out) {
    fputs("usage: reel serve CHECKPOINT.h5 [options]\n"
          "\n"
          "Serves a trained model over HTTP until SIGTERM or SIGINT (Ctrl-C), then finishes the requests in\n"
          "flight and exits 0. The checkpoint holds everything needed (configuration, weights, vocabulary, class\n"
          "names). Routes:\n"
          "  GET  /             a page to type a review and see its class and probability (a classifier), or a\n"
          "                     prime and what the model writes (a language model)\n"
          "  GET  /healthz      {\"status\":\"ok\", the model, its classes; a language model's max_context}\n"
          "  POST /v1/predict   {\"text\":\"...\"} or {\"texts\":[\"...\",...]} -> {\"predictions\":[{\"label\":...,\n"
          "                     \"probability\":...,\"probabilities\":{...},\"tokens\":...}]} (a language model: the\n"
          "                     perplexity of each text)\n"
          "  POST /v1/generate  language models: {\"prime\",\"length\",\"temperature\",\"top_k\",\"top_p\",\"seed\",\n"
          "                     \"samples\",\"stop_at_eod\"}, all optional (length: 60, or what is left of a\n"
          "                     model's max_context after the prime) -> {\"samples\":[\"...\"]}\n"
          "Errors are JSON ({\"error\":\"...\"}) with status 400 (a body that is not UTF-8, with the byte offset;\n"
          "malformed JSON; a wrong type or range), 404, 405, 413 (body or number of texts over the limit) or 431\n"
          "(header fields over 64 KiB; over about 1 MiB libmicrohttpd answers 431 itself, in HTML). One log line\n"
          "per request goes to standard error.\n"
          "\n"
          "options:\n"
          "  --host ADDR        address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every\n"
          "                     interface, which exposes the model to the network)\n"
          "  --port N           port (default 8080; 0 picks a free one, printed at start)\n"
          "  --port-file FILE   write the port to FILE once listening (for scripts using --port 0)\n"
          "  --max-body BYTES   largest request body (default 1048576)\n"
          "  --max-texts N      most texts per /v1/predict request (default 64)\n"
          "  --max-tokens N     tokens read per text (default: the checkpoint's [data] max_tokens; 0: all)\n"
          "  --max-generate N   most tokens per generated sample (default 400)\n"
          "  --threads N        connection threads (default 4); the model answers one request at a time\n"
          "  --quiet            no request log\n"
          "  -h, --help         this text\n"
          "\n"
          "Runs on one process (under mpirun, rank 0 serves while the others wait).\n",
          out);
}

static int serve_main(int argc, char **argv) {
    static const struct option options[] = {{"host", required_argument, NULL, 'H'},
                                            {"port", required_argument, NULL, 'p'},
                                            {"port-file", required_argument, NULL, 'f'},
                                            {"max-body", required_argument, NULL, 'b'},
                                            {"max-texts", required_argument, NULL, 'n'},
                                            {"max-tokens", required_argument, NULL, 'm'},
                                            {"max-generate", required_argument, NULL, 'g'},
                                            {"threads", required_argument, NULL, 't'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    reel_server_options o = {"127.0.0.1", 8080, 1 << 20, 64, 0, 400, 4, stderr};
    const char *port_file = NULL;
    size_t value = 0, max_tokens = SIZE_MAX;
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 'H': o.host = optarg; break;
        case 'f': port_file = optarg; break;
        case 'q': o.log = NULL; break;
        case 'p':
        case 'b':
        case 'n':
        case 'm':
        case 'g':
        case 't': {
            char option[64];
            reel_cli_option_name(options, c, option, sizeof option);
            /* a port is 16 bits; 0 asks the system for a free one */
            if (reel_cli_parse_size(option, optarg, c == 'm' || c == 'p' ? 0 : 1, c == 'p' ? 65535 : SIZE_MAX, &value,
                                    &err) != 0)
                return reel_cli_report(&err, NULL) + 1;
            if (c == 'p') o.port = (uint16_t)value;
            else if (c == 'b') o.max_body = value;
            else if (c == 'n') o.max_texts = value;
            else if (c == 'm') max_tokens = value;
            else if (c == 'g') o.max_generate = value;
            else if (c == 't') o.threads = (unsigned)(value > 64 ? 64 : value);
            break;
        }
        case 'h': return reel_cli_usage(usage, 0);
        default: return reel_cli_usage(usage, 2);
        }
    }
    if (optind != argc - 1) return reel_cli_usage(usage, 2);
    const char *checkpoint = argv[optind];
    reel_trained trained;
    reel_load_options load = {NULL, 0, 64};
    if (reel_trained_load(&trained, checkpoint, &load, &err) != 0)
        return reel_cli_report(&err, "give a checkpoint written by `reel train`");
    o.max_tokens = max_tokens != SIZE_MAX ? max_tokens : trained.model->output == REEL_OUTPUT_TOKEN ? 0 : trained.cfg.data.max_tokens;

    /* The signals are taken by this thread alone (sigwait): blocked before the server's threads start, so
     * they inherit the mask and never run a handler in the middle of a request. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    reel_server *server;
    if (reel_server_start(&server, &trained, &o, &err) != 0) {
        reel_trained_free(&trained);
        return reel_cli_report(&err, "choose another --port, or an address of this machine with --host");
    }
    uint16_t port = reel_server_port(server);
    const char *kind = trained.model->output == REEL_OUTPUT_TOKEN ? "language model" : "classifier";
    int ipv6 = strchr(o.host, ':') != NULL;
    fprintf(stderr, "reel serve: %s %s from %s at http://%s%s%s:%u/ (SIGTERM or Ctrl-C stops)\n", kind,
            trained.cfg.model.type, checkpoint, ipv6 ? "[" : "", o.host, ipv6 ? "]" : "", (unsigned)port);
    int status = 0;
    if (port_file) {
        char text[16];
        int length = snprintf(text, sizeof text, "%u\n", (unsigned)port);
        if (reel_write_file_atomic(port_file, text, (size_t)length, &err) != 0) status = reel_cli_report(&err, NULL);
    }
    int signal_number = 0;
    if (status == 0) sigwait(&stop, &signal_number);
    if (signal_number) fprintf(stderr, "reel serve: %s received, stopping\n", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
    reel_server_stop(server);
    reel_trained_free(&trained);
    return status;
}

int reel_cmd_serve(int argc, char **argv) { return reel_comm_run_on_rank0(serve_main, argc, argv); }
