/* reel generate: text from a language-model checkpoint. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/generate.h"
#include "reel/infer.h"
#include "reel/loader.h"
#include "reel/tokenizer.h"

static void usage(FILE *out) {
    fputs("usage: reel generate CHECKPOINT.h5 [options]\n"
          "\n"
          "Writes text from a language model (a checkpoint of [model] type = rnn_lm or gpt): each sample starts\n"
          "a new document, reads the prime, then draws one token at a time from the model's softmax. The prime\n"
          "is tokenized as `reel prep` does; its words outside the model's vocabulary are listed and read as\n"
          "<unk>. The checkpoint holds its vocabulary, so no data directory is needed. A model of SentencePiece\n"
          "pieces (reel prep --tokenizer sentencepiece) encodes the prime with the piece model its checkpoint\n"
          "holds and prints text, the pieces decoded. Each sample is printed on a line: the prime, then ' | ',\n"
          "then what the model wrote.\n"
          "\n"
          "options:\n"
          "  --prime TEXT        the text to continue (default: none, the start of a document)\n"
          "  --length N          tokens to generate per sample (default 60)\n"
          "  --temperature T     divides the logits: below 1 more predictable, above 1 more varied; 0 takes the\n"
          "                      most likely token every time (default 1)\n"
          "  --top-k K           draw among the K most likely tokens only (default 0: all)\n"
          "  --top-p P           draw among the most likely tokens whose probabilities add up to P (default 1)\n"
          "  --samples N         independent samples from the same prime (default 1)\n"
          "  --seed S            the same seed gives the same text (default 1)\n"
          "  --stop-at-eod       end a sample when it ends its document (<eod>); otherwise it goes on\n"
          "  --max-context N     tokens the model reads at most, prime and generated ones together (default: the\n"
          "                      model's own limit, none for a recurrent model; a smaller N lowers it)\n"
          "  -h, --help          this text\n",
          out);
}

static int generate_main(int argc, char **argv) {
    static const struct option options[] = {
        {"prime", required_argument, NULL, 'p'},   {"length", required_argument, NULL, 'l'},
        {"temperature", required_argument, NULL, 't'}, {"top-k", required_argument, NULL, 'k'},
        {"top-p", required_argument, NULL, 'P'},   {"samples", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},    {"stop-at-eod", no_argument, NULL, 'e'},
        {"max-context", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *prime = "";
    size_t length = 60, samples = 1, max_context = 0, seed = 1; /* max_context 0: the model's */
    int stop_at_eod = 0;
    reel_sampling sampling = {1.0, 0, 1.0, 1};
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        int bad = 0;
        switch (c) {
        case 'p': prime = optarg; break;
        case 'l': bad = reel_cli_parse_size("--length", optarg, 0, SIZE_MAX, &length, &err); break;
        case 't': bad = reel_cli_parse_double("--temperature", optarg, 0, 1e6, 0, &sampling.temperature, &err); break;
        case 'k': bad = reel_cli_parse_size("--top-k", optarg, 0, SIZE_MAX, &sampling.top_k, &err); break;
        case 'P': bad = reel_cli_parse_double("--top-p", optarg, 1e-9, 1, 0, &sampling.top_p, &err); break;
        case 'n': bad = reel_cli_parse_size("--samples", optarg, 1, SIZE_MAX, &samples, &err); break;
        case 's': bad = reel_cli_parse_size("--seed", optarg, 0, SIZE_MAX, &seed, &err); break;
        case 'e': stop_at_eod = 1; break;
        case 'c': bad = reel_cli_parse_size("--max-context", optarg, 0, SIZE_MAX, &max_context, &err); break;
        case 'h': return reel_cli_usage(usage, 0);
        default: return reel_cli_usage(usage, 2);
        }
        if (bad) return reel_cli_report(&err, NULL);
    }
    if (optind != argc - 1) return reel_cli_usage(usage, 2);
    sampling.seed = seed;
    const char *checkpoint = argv[optind];
    reel_trained trained;
    reel_load_options load = {NULL, 0, samples};
    if (reel_trained_load(&trained, checkpoint, &load, &err) != 0) return reel_cli_report(&err, NULL);
    if (trained.cfg.data.reverse) {
        reel_fail(&err, "%s: a backward language model ([data] reverse = true) predicts each token from the ones after "
                  "it, so it cannot continue a prime", checkpoint);
        reel_trained_free(&trained);
        return reel_cli_report(&err, "generate with the forward model of the pair");
    }
    reel_generator *g = NULL;
    reel_error why = {{0}};
    if (reel_generator_create(&g, trained.model, samples, &why) != 0) {
        reel_fail(&err, "%s: %s", checkpoint, why.message);
        reel_trained_free(&trained);
        return reel_cli_report(&err, "train a language model with configs/imdb_lm.ini, or give its checkpoint");
    }

    /* the prime, as `reel prep` tokenizes */
    reel_tokenizer tokenizer;
    reel_tokenizer_init(&tokenizer);
    reel_vocab_index index;
    reel_vocab_index_build(&index, &trained.vocab);
    size_t count = 0, V = trained.model->vocab_size, unknown = 0;
    uint32_t *ids = NULL;
    reel_buf unknown_words = {0};
    int pieces = trained.vocab.processor != NULL;
    if (pieces) {
        /* the prime's normalised text into the checkpoint's pieces, as prep encoded the training text */
        reel_text_encoder encoder;
        reel_text_encoder_init(&encoder, &trained.vocab, V);
        size_t capacity = 0;
        count = reel_text_encode(&encoder, prime, strlen(prime), 0, &ids, &capacity, &unknown, NULL);
        reel_text_encoder_free(&encoder);
    }
    const reel_token *tokens = pieces ? NULL : reel_tokenize(&tokenizer, prime, strlen(prime), &count);
    if (!pieces) ids = malloc((count ? count : 1) * sizeof *ids);
    for (size_t i = 0; !pieces && i < count; i++) {
        int64_t id = reel_vocab_find(&index, tokens[i].text, tokens[i].length);
        if (id < 0 || (size_t)id >= V) {
            ids[i] = REEL_TOKEN_UNK;
            if (unknown++ < 20) reel_buf_printf(&unknown_words, "%s%.*s", unknown > 1 ? ", " : "", (int)tokens[i].length, tokens[i].text);
        } else {
            ids[i] = (uint32_t)id;
        }
    }
    int status = 0;
    if (reel_generator_fits(trained.model, max_context, count, "--prime", length, "--length", &err) != 0) {
        /* raising --max-context helps only when it is what set the limit, not the model's own max_context */
        size_t own = trained.model->max_context;
        int lowered = max_context && (!own || max_context < own);
        status = reel_cli_report(&err, lowered ? "shorten the prime or --length, or raise --max-context"
                                               : "shorten the prime or --length: the model reads no more than its "
                                                 "max_context tokens");
        goto done;
    }
    if (unknown)
        fprintf(stderr, "reel: note: %zu word(s) of the prime are not in the model's vocabulary and read as <unk>: %s%s\n",
                unknown, unknown_words.data, unknown > 20 ? ", ..." : "");
    reel_buf text = {0};
    reel_detokenize(&text, &trained.vocab, ids, count);
    printf("checkpoint %s; prime \"%s\" (%zu tokens); temperature %g, top-k %zu, top-p %g, seed %zu\n", checkpoint,
           text.data ? text.data : "", count, sampling.temperature, sampling.top_k, sampling.top_p, seed);
    reel_buf_free(&text);

    reel_generator_prime(g, ids, count);
    uint32_t *generated = reel_malloc(reel_size_mul(reel_size_mul(samples, length ? length : 1), sizeof *generated));
    size_t *produced = reel_calloc(samples, sizeof *produced);
    reel_generator_run(g, &sampling, length, stop_at_eod, generated, produced);
    for (size_t b = 0; b < samples; b++) {
        reel_buf line = {0};
        reel_detokenize(&line, &trained.vocab, ids, count);
        reel_buf_append(&line, count ? " |" : "|", count ? 2 : 1);
        reel_detokenize_after(&line, &trained.vocab, ids, count, generated + b * length, produced[b]);
        printf("[%zu] %s%s", b + 1, line.data, line.length && line.data[line.length - 1] == '\n' ? "" : "\n");
        reel_buf_free(&line);
    }
    free(generated), free(produced);
done:
    reel_buf_free(&unknown_words);
    free(ids);
    reel_vocab_index_free(&index);
    reel_tokenizer_free(&tokenizer);
    reel_generator_free(g);
    reel_trained_free(&trained);
    return status;
}

int reel_cmd_generate(int argc, char **argv) { return reel_comm_run_on_rank0(generate_main, argc, argv); }
