/* reel/server.h: a trained model behind a small HTTP service (`reel serve`), built on libmicrohttpd and
 * cJSON.
 *
 * Routes:
 *   GET  /              an HTML page: type a review, see its class and probability (classifiers); type a
 *                       prime, read what the model writes (language models)
 *   GET  /healthz       {"status":"ok","model":...,"objective":...,"classes":[...],"checkpoint":...}
 *   POST /v1/predict    {"text": "..."} or {"texts": ["...", ...]} ->
 *                       {"predictions": [{"label","probability","probabilities":{class: p},"tokens","unknown"}]}
 *                       (language models: {"perplexity","nll","tokens","unknown"} per text; an empty text
 *                       gets {"error": ...} in its place)
 *   POST /v1/generate   language models: {"prime","length","temperature","top_k","top_p","seed","samples",
 *                       "stop_at_eod"} (all optional) -> {"samples": ["..."], "prime_tokens", "unknown_words"}
 * Errors are JSON, {"error": "..."}, with a 4xx status: 400 malformed JSON or a field of the wrong type or
 * range, 404 an unknown path (or /v1/generate on a classifier), 405 another method (with Allow), 413 a body
 * over max_body bytes or more than max_texts texts. Bad input never stops the server.
 *
 * Concurrency: connections are served by a pool of threads (reading and writing in parallel); the model
 * runs one request at a time under a lock, since it holds its activations. Each request is logged as one
 * line: time, client, method, path, status, response bytes, milliseconds.
 */
#ifndef REEL_SERVER_H
#define REEL_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reel/check.h"
#include "reel/loader.h"

typedef struct reel_server_options {
    const char *host;        /* address to bind (IPv4 or IPv6 literal); "127.0.0.1" keeps it local */
    uint16_t port;           /* 0: any free port (reel_server_port tells which) */
    size_t max_body;         /* bytes of a request body, at most */
    size_t max_texts;        /* texts per /v1/predict request, at most */
    size_t max_tokens;       /* tokens read per text (0: all) */
    size_t max_generate;     /* tokens per generated sample, at most */
    unsigned threads;        /* connection threads */
    FILE *log;               /* request log (NULL: none) */
} reel_server_options;

typedef struct reel_server reel_server;

/* Starts serving trained (which must outlive the server; its model must be built for at least 8 rows)
 * in background threads. Fails with the reason when the address cannot be bound. */
int reel_server_start(reel_server **out, reel_trained *trained, const reel_server_options *options, reel_error *err);
uint16_t reel_server_port(const reel_server *server);
/* Stops accepting, finishes the requests in flight, and frees the server. */
void reel_server_stop(reel_server *server);

#endif
