/* The HTTP service of `reel serve` (reel/server.h): libmicrohttpd for HTTP, cJSON for the bodies. */
#include "reel/server.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "reel/generate.h"
#include "reel/infer.h"
#include "reel/util.h"

extern const char reel_server_page[]; /* src/use/server_page.c */

enum { MAX_SAMPLES = 8 };

/* Header fields larger than MAX_HEADER_BYTES in all are refused with a JSON 431. libmicrohttpd keeps a
 * request's header in the connection's memory pool and, when the header outgrows the pool, answers 431
 * itself with a fixed HTML body that no callback can change (0.9.75). So the pool is made much larger than
 * the limit: a header up to about CONNECTION_POOL_BYTES reaches the handler, which answers in JSON like
 * every other error; only beyond that does the library's own 431 remain. The pool is mapped lazily, so a
 * connection only costs the pages its request fills. */
enum { MAX_HEADER_BYTES = 64 * 1024, CONNECTION_POOL_BYTES = 1024 * 1024 };

struct reel_server {
    struct MHD_Daemon *daemon;
    reel_trained *trained;
    reel_server_options options;
    pthread_mutex_t model_lock; /* the model, the predictor and the encoder: one request at a time */
    pthread_mutex_t log_lock;
    reel_predictor *predictor;
    reel_text_encoder encoder;
    int is_lm;
    uint16_t port;
};

/* One request, from its first callback to its completion. */
typedef struct request {
    reel_buf body;
    int too_large;
    double start;
    unsigned status;
    size_t response_bytes;
    char method[16];
    char path[128];
} request;

/* ---- responses ---- */

static enum MHD_Result send_text(struct MHD_Connection *connection, request *r, unsigned status, const char *type,
                                 const char *text, size_t length, const char *allow) {
    struct MHD_Response *response = MHD_create_response_from_buffer(length, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!response) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(response, "Cache-Control", "no-store");
    if (allow) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
    r->status = status;
    r->response_bytes = length;
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

/* Sends json (and deletes it). */
static enum MHD_Result send_json(struct MHD_Connection *connection, request *r, unsigned status, cJSON *json,
                                 const char *allow) {
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    enum MHD_Result result = send_text(connection, r, status, "application/json", text, strlen(text), allow);
    cJSON_free(text);
    return result;
}

static enum MHD_Result send_error(struct MHD_Connection *connection, request *r, unsigned status, const char *allow,
                                  const char *fmt, ...) REEL_PRINTF(5, 6);
static enum MHD_Result send_error(struct MHD_Connection *connection, request *r, unsigned status, const char *allow,
                                  const char *fmt, ...) {
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "error", message);
    return send_json(connection, r, status, json, allow);
}

/* ---- the routes ---- */

static cJSON *class_list(const reel_trained *t) {
    cJSON *list = cJSON_CreateArray();
    for (size_t k = 0; k < t->num_classes; k++) cJSON_AddItemToArray(list, cJSON_CreateString(t->class_names[k]));
    return list;
}

static enum MHD_Result health(reel_server *s, struct MHD_Connection *connection, request *r) {
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "status", "ok");
    cJSON_AddStringToObject(json, "checkpoint", s->trained->path);
    cJSON_AddStringToObject(json, "model", s->trained->cfg.model.type);
    cJSON_AddStringToObject(json, "objective", s->is_lm ? "next_token" : "classify");
    cJSON_AddItemToObject(json, "classes", class_list(s->trained));
    cJSON_AddNumberToObject(json, "max_texts", (double)s->options.max_texts);
    cJSON_AddNumberToObject(json, "max_body", (double)s->options.max_body);
    /* what a language model reads at most, <eod>, prime and generated tokens together (0: unbounded), so a
     * client (the page) can ask for a length that fits */
    if (s->is_lm) cJSON_AddNumberToObject(json, "max_context", (double)s->trained->model->max_context);
    return send_json(connection, r, MHD_HTTP_OK, json, NULL);
}

/* JSON text is UTF-8 (RFC 8259): a body that is not would reach the model as bytes no tokenizer expects,
 * so it is refused with the offset of the first bad sequence. Returns 1 when it sent the 400. */
static int refuse_invalid_utf8(struct MHD_Connection *connection, request *r, enum MHD_Result *result) {
    const char *why = "";
    size_t at = reel_utf8_invalid_at(r->body.data, r->body.length, &why);
    if (at == r->body.length) return 0;
    *result = send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL,
                         "the body is not valid UTF-8: %s at byte offset %zu (JSON must be UTF-8)", why, at);
    return 1;
}

/* Parses the body as a JSON object; on failure sends the 400 and returns NULL. */
static cJSON *parse_object(struct MHD_Connection *connection, request *r, enum MHD_Result *result) {
    if (refuse_invalid_utf8(connection, r, result)) return NULL;
    const char *end = NULL;
    cJSON *json = r->body.length ? cJSON_ParseWithLengthOpts(r->body.data, r->body.length, &end, 0) : NULL;
    if (!json) {
        size_t at = end && r->body.data ? (size_t)(end - r->body.data) : 0;
        *result = r->body.length ? send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL,
                                              "malformed JSON at byte offset %zu of the body", at)
                                 : send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL,
                                              "empty body: expected a JSON object");
        return NULL;
    }
    /* nothing but white space may follow the value */
    for (const char *p = end; p && p < r->body.data + r->body.length; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(json);
            *result = send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL,
                                 "malformed JSON at byte offset %zu of the body: text after the value",
                                 (size_t)(p - r->body.data));
            return NULL;
        }
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        *result = send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
        return NULL;
    }
    return json;
}

static enum MHD_Result predict(reel_server *s, struct MHD_Connection *connection, request *r) {
    enum MHD_Result result;
    cJSON *json = parse_object(connection, r, &result);
    if (!json) return result;
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(json, "text");
    const cJSON *many = cJSON_GetObjectItemCaseSensitive(json, "texts");
    size_t n = 0;
    if ((one && many) || (!one && !many)) {
        cJSON_Delete(json);
        return send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL,
                          "give either \"text\" (a string) or \"texts\" (a list of strings)");
    }
    if (one && !cJSON_IsString(one)) {
        cJSON_Delete(json);
        return send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL, "\"text\" must be a string");
    }
    if (many) {
        if (!cJSON_IsArray(many)) {
            cJSON_Delete(json);
            return send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL, "\"texts\" must be a list of strings");
        }
        n = (size_t)cJSON_GetArraySize(many);
        size_t i = 0;
        for (const cJSON *item = many->child; item; item = item->next, i++)
            if (!cJSON_IsString(item)) {
                cJSON_Delete(json);
                return send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL, "\"texts\"[%zu] must be a string", i);
            }
        if (n > s->options.max_texts) {
            cJSON_Delete(json);
            return send_error(connection, r, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                              "%zu texts in one request: at most %zu", n, s->options.max_texts);
        }
    } else {
        n = 1;
    }

    double start = reel_now_seconds();
    uint32_t **ids = reel_calloc(n ? n : 1, sizeof *ids);
    size_t *capacity = reel_calloc(n ? n : 1, sizeof *capacity), *unknown = reel_calloc(n ? n : 1, sizeof *unknown);
    reel_document *docs = reel_calloc(n ? n : 1, sizeof *docs);
    size_t C = s->is_lm ? 1 : s->trained->num_classes;
    float *probs = reel_malloc((n ? n : 1) * C * sizeof *probs);
    double *nll = reel_malloc((n ? n : 1) * sizeof *nll);
    size_t *tokens = reel_malloc((n ? n : 1) * sizeof *tokens);

    pthread_mutex_lock(&s->model_lock);
    const cJSON *item = one ? one : many->child;
    for (size_t i = 0; i < n; i++, item = item->next) {
        const char *text = item->valuestring;
        docs[i].length = reel_text_encode(&s->encoder, text, strlen(text), s->options.max_tokens, &ids[i], &capacity[i],
                                          &unknown[i], NULL);
        docs[i].ids = ids[i];
    }
    if (s->is_lm) reel_score_documents(s->predictor, docs, n, nll, tokens);
    else reel_predict_classes(s->predictor, docs, n, probs);
    pthread_mutex_unlock(&s->model_lock);

    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "predictions");
    for (size_t i = 0; i < n; i++) {
        cJSON *p = cJSON_CreateObject();
        if (s->is_lm) {
            cJSON_AddNumberToObject(p, "perplexity", exp(nll[i] / (double)tokens[i]));
            cJSON_AddNumberToObject(p, "nll", nll[i]);
            cJSON_AddNumberToObject(p, "tokens", (double)tokens[i]);
        } else if (docs[i].length == 0) {
            cJSON_AddStringToObject(p, "error", "empty document: no token to read");
        } else {
            const float *prob = probs + i * C;
            size_t best = 0;
            for (size_t k = 1; k < C; k++)
                if (prob[k] > prob[best]) best = k;
            cJSON_AddStringToObject(p, "label", s->trained->class_names[best]);
            cJSON_AddNumberToObject(p, "probability", prob[best]);
            cJSON *all = cJSON_AddObjectToObject(p, "probabilities");
            for (size_t k = 0; k < C; k++) cJSON_AddNumberToObject(all, s->trained->class_names[k], prob[k]);
            cJSON_AddNumberToObject(p, "tokens", (double)docs[i].length);
        }
        cJSON_AddNumberToObject(p, "unknown", (double)unknown[i]);
        cJSON_AddItemToArray(list, p);
    }
    cJSON_AddNumberToObject(out, "model_ms", 1e3 * (reel_now_seconds() - start));
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids), free(capacity), free(unknown), free(docs), free(probs), free(nll), free(tokens);
    cJSON_Delete(json);
    return send_json(connection, r, MHD_HTTP_OK, out, NULL);
}

/* A numeric field of the request: absent keeps *value; present must be a number in [lo, hi]. */
static int number_field(const cJSON *json, const char *name, double lo, double hi, double *value, char *message,
                        size_t size) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, name);
    if (!item) return 0;
    if (!cJSON_IsNumber(item) || !(item->valuedouble >= lo && item->valuedouble <= hi)) {
        snprintf(message, size, "\"%s\" must be a number in [%g, %g]", name, lo, hi);
        return -1;
    }
    *value = item->valuedouble;
    return 0;
}

static enum MHD_Result generate(reel_server *s, struct MHD_Connection *connection, request *r) {
    enum MHD_Result result;
    cJSON *json = parse_object(connection, r, &result);
    if (!json) return result;
    const cJSON *prime_item = cJSON_GetObjectItemCaseSensitive(json, "prime");
    const cJSON *stop_item = cJSON_GetObjectItemCaseSensitive(json, "stop_at_eod");
    double length = 60, temperature = 1, top_k = 0, top_p = 1, seed = 1, samples = 1;
    char message[256] = "";
    if (prime_item && !cJSON_IsString(prime_item)) snprintf(message, sizeof message, "\"prime\" must be a string");
    else if (stop_item && !cJSON_IsBool(stop_item)) snprintf(message, sizeof message, "\"stop_at_eod\" must be true or false");
    if (message[0] || number_field(json, "length", 0, (double)s->options.max_generate, &length, message, sizeof message) ||
        number_field(json, "temperature", 0, 100, &temperature, message, sizeof message) ||
        number_field(json, "top_k", 0, 1e9, &top_k, message, sizeof message) ||
        number_field(json, "top_p", 1e-9, 1, &top_p, message, sizeof message) ||
        number_field(json, "seed", 0, 9007199254740991.0, &seed, message, sizeof message) ||
        number_field(json, "samples", 1, MAX_SAMPLES, &samples, message, sizeof message)) {
        cJSON_Delete(json);
        return send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL, "%s", message);
    }
    const char *prime = prime_item ? prime_item->valuestring : "";
    int stop_at_eod = stop_item ? cJSON_IsTrue(stop_item) : 1;
    size_t rows = (size_t)samples, steps = (size_t)length;
    reel_sampling sampling = {temperature, (size_t)top_k, top_p, (uint64_t)seed};

    pthread_mutex_lock(&s->model_lock);
    uint32_t *ids = NULL;
    size_t capacity = 0, unknown = 0;
    size_t count = reel_text_encode(&s->encoder, prime, strlen(prime), 0, &ids, &capacity, &unknown, NULL);
    /* every field is optional: without "length", a model of bounded context writes what is left of it after
     * <eod> and the prime when that is less than 60 (a given "length" past the limit is refused below) */
    size_t W = s->trained->model->max_context;
    if (!cJSON_GetObjectItemCaseSensitive(json, "length") && W && count + 1 < W && W - 1 - count < steps)
        steps = W - 1 - count;
    /* the model's context bounds what a sample reads (0: unbounded; length is bounded by max_generate) */
    reel_error err = {{0}};
    if (reel_generator_fits(s->trained->model, 0, count, "the prime", steps, "\"length\"", &err) != 0) {
        pthread_mutex_unlock(&s->model_lock);
        free(ids);
        cJSON_Delete(json);
        return send_error(connection, r, MHD_HTTP_BAD_REQUEST, NULL, "%s", err.message);
    }
    reel_generator *g = NULL;
    REEL_CHECK(reel_generator_create(&g, s->trained->model, rows, &err) == 0, NULL, "%s", err.message);
    reel_generator_prime(g, ids, count);
    uint32_t *out = reel_malloc(rows * (steps ? steps : 1) * sizeof *out);
    size_t *produced = reel_calloc(rows, sizeof *produced);
    reel_generator_run(g, &sampling, steps, stop_at_eod, out, produced);
    reel_generator_free(g);
    cJSON *answer = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(answer, "samples");
    reel_buf text = {0};
    for (size_t b = 0; b < rows; b++) {
        text.length = 0;
        size_t n = produced[b];
        if (stop_at_eod && n && out[b * steps + n - 1] == REEL_TOKEN_EOD) n--; /* the end is not text */
        reel_detokenize_after(&text, &s->trained->vocab, ids, count, out + b * steps, n);
        cJSON_AddItemToArray(list, cJSON_CreateString(text.length ? text.data : ""));
    }
    text.length = 0;
    reel_detokenize(&text, &s->trained->vocab, ids, count);
    pthread_mutex_unlock(&s->model_lock);
    cJSON_AddStringToObject(answer, "prime", text.length ? text.data : "");
    cJSON_AddNumberToObject(answer, "prime_tokens", (double)count);
    cJSON_AddNumberToObject(answer, "unknown", (double)unknown);
    reel_buf_free(&text);
    free(ids), free(out), free(produced);
    cJSON_Delete(json);
    return send_json(connection, r, MHD_HTTP_OK, answer, NULL);
}

static enum MHD_Result route(reel_server *s, struct MHD_Connection *connection, request *r, const char *url,
                             const char *method) {
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
        if (!get) return send_error(connection, r, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD", "%s %s: use GET", method, url);
        return send_text(connection, r, MHD_HTTP_OK, "text/html; charset=utf-8", reel_server_page,
                         strlen(reel_server_page), NULL);
    }
    if (strcmp(url, "/healthz") == 0) {
        if (!get) return send_error(connection, r, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD", "%s %s: use GET", method, url);
        return health(s, connection, r);
    }
    int generates = s->is_lm && !s->trained->cfg.data.reverse; /* a backward LM cannot continue a prime */
    if (strcmp(url, "/v1/predict") == 0 || (strcmp(url, "/v1/generate") == 0 && generates)) {
        if (!post) return send_error(connection, r, MHD_HTTP_METHOD_NOT_ALLOWED, "POST", "%s %s: use POST", method, url);
        if (r->too_large)
            return send_error(connection, r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "the body is larger than %zu bytes",
                              s->options.max_body);
        return url[4] == 'p' ? predict(s, connection, r) : generate(s, connection, r);
    }
    if (strcmp(url, "/v1/generate") == 0)
        return send_error(connection, r, MHD_HTTP_NOT_FOUND, NULL,
                          s->is_lm ? "/v1/generate: this model (%s) is a backward language model ([data] reverse = "
                                     "true): it predicts each token from the ones after it, so it cannot continue a prime"
                                   : "/v1/generate: this model (%s) is a classifier; generation needs a language model",
                          s->trained->cfg.model.type);
    return send_error(connection, r, MHD_HTTP_NOT_FOUND, NULL,
                      "no such path: %s (the service has /, /healthz, /v1/predict%s)", url,
                      generates ? " and /v1/generate" : "");
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    size_t *total = cls;
    *total += strlen(key) + 2 + (value ? strlen(value) : 0) + 2; /* "key: value\r\n" */
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **state) {
    reel_server *s = cls;
    request *r = *state;
    if (!r) {
        /* headers only: set the request up; a declared body over the limit is refused before it is read */
        r = reel_calloc(1, sizeof *r);
        r->start = reel_now_seconds();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        *state = r;
        size_t header_bytes = 0;
        MHD_get_connection_values(connection, MHD_HEADER_KIND, add_header_bytes, &header_bytes);
        if (header_bytes > MAX_HEADER_BYTES) {
            return send_error(connection, r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, NULL,
                              "the request's header fields take %zu bytes: at most %d", header_bytes,
                              (int)MAX_HEADER_BYTES);
        }
        const char *declared = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (declared && strtoull(declared, NULL, 10) > s->options.max_body) {
            r->too_large = 1;
            return send_error(connection, r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "the body is larger than %zu bytes",
                              s->options.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->body.length + *upload_size > s->options.max_body) r->too_large = 1; /* read on, keep nothing */
        else reel_buf_append(&r->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->status) return MHD_YES; /* answered already */
    return route(s, connection, r, url, method);
}

static void completed(void *cls, struct MHD_Connection *connection, void **state, enum MHD_RequestTerminationCode code) {
    reel_server *s = cls;
    request *r = *state;
    if (!r) return;
    if (s->options.log) {
        char client[INET6_ADDRSTRLEN] = "-";
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (info && info->client_addr) {
            const struct sockaddr *a = info->client_addr;
            if (a->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)a)->sin_addr, client, sizeof client);
            else if (a->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr, client, sizeof client);
        }
        char stamp[32];
        time_t now = time(NULL);
        struct tm utc;
        gmtime_r(&now, &utc);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
        pthread_mutex_lock(&s->log_lock);
        fprintf(s->options.log, "%s %s \"%s %s\" %u %zu %.1f ms%s\n", stamp, client, r->method, r->path, r->status,
                r->response_bytes, 1e3 * (reel_now_seconds() - r->start),
                code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
        fflush(s->options.log);
        pthread_mutex_unlock(&s->log_lock);
    }
    reel_buf_free(&r->body);
    free(r);
    *state = NULL;
}

int reel_server_start(reel_server **out, reel_trained *trained, const reel_server_options *options, reel_error *err) {
    struct sockaddr_in v4 = {0};
    struct sockaddr_in6 v6 = {0};
    const struct sockaddr *address;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
    if (inet_pton(AF_INET, options->host, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(options->port);
        address = (const struct sockaddr *)&v4;
    } else if (inet_pton(AF_INET6, options->host, &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(options->port);
        address = (const struct sockaddr *)&v6;
        flags |= MHD_USE_IPv6;
    } else {
        return reel_fail(err, "--host '%s': expected an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0 or ::1)",
                         options->host);
    }
    if (trained->model->max_batch < MAX_SAMPLES)
        return reel_fail(err, "the model is built for %zu rows; the server needs at least %d", trained->model->max_batch,
                         MAX_SAMPLES);
    reel_server *s = reel_calloc(1, sizeof *s);
    s->trained = trained;
    s->options = *options;
    s->is_lm = trained->model->output == REEL_OUTPUT_TOKEN;
    pthread_mutex_init(&s->model_lock, NULL);
    pthread_mutex_init(&s->log_lock, NULL);
    reel_text_encoder_init(&s->encoder, &trained->vocab, trained->model->vocab_size);
    s->encoder.reverse = trained->cfg.data.reverse;
    if (reel_predictor_create(&s->predictor, trained->model, trained->model->max_batch, err) != 0) {
        reel_server_stop(s);
        return -1;
    }
    s->daemon = MHD_start_daemon(flags, options->port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, address,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(options->threads ? options->threads : 1),
                                 MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)30, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_POOL_BYTES,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        reel_server_stop(s);
        return reel_fail(err, "cannot listen on %s port %u (in use, or not an address of this host)", options->host,
                         (unsigned)options->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : options->port;
    *out = s;
    return 0;
}

uint16_t reel_server_port(const reel_server *server) { return server->port; }

void reel_server_stop(reel_server *s) {
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    reel_predictor_free(s->predictor);
    reel_text_encoder_free(&s->encoder);
    pthread_mutex_destroy(&s->model_lock);
    pthread_mutex_destroy(&s->log_lock);
    free(s);
}
