// reel/pieces.h over SentencePiece's C++ API: the only C++ in reel. Nothing here throws into C: every
// call into the library is wrapped, and its status becomes a reel_error.
extern "C" {
#include "reel/check.h" // C declarations (reel_fail), which reel/pieces.h includes outside its extern "C"
}
#include "reel/pieces.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

// The library's own log threshold (0 info, 1 warning, 2 error): exported by libsentencepiece but not
// declared in the headers Debian installs. Its trainer logs its whole command line at info level before
// it reads --minloglevel, which would print on every `reel prep`; reel reports through reel_error.
namespace sentencepiece {
namespace logging {
void SetMinLogLevel(int v);
}
}  // namespace sentencepiece

struct reel_pieces {
    sentencepiece::SentencePieceProcessor processor;
};

namespace {

// Hands SentencePiece's trainer the texts of a reel_pieces_next_text callback, one sentence each.
class CallbackTexts : public sentencepiece::SentenceIterator {
  public:
    CallbackTexts(reel_pieces_next_text next, void *ctx) : next_(next), ctx_(ctx) { Next(); }
    bool done() const override { return done_; }
    void Next() override {
        const char *text = nullptr;
        size_t length = 0;
        done_ = !next_(ctx_, &text, &length);
        if (!done_) value_.assign(text, length);
    }
    const std::string &value() const override { return value_; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

  private:
    reel_pieces_next_text next_;
    void *ctx_;
    bool done_ = false;
    std::string value_;
};

}  // namespace

extern "C" int reel_pieces_train(char **model, size_t *model_bytes, reel_pieces_next_text next, void *ctx,
                                 const reel_pieces_options *options, reel_error *err) {
    *model = nullptr;
    *model_bytes = 0;
    if (options->vocab_size < 3 + 256 + 1)
        return reel_fail(err, "a piece vocabulary of %zu: with byte fallback it needs the 3 reserved ids, the 256 "
                         "bytes and at least one piece (%d or more)", options->vocab_size, 3 + 256 + 1);
    // The reserved ids are reel's (reel/vocab.h), no beginning-of-sentence piece, the end of a document
    // as SentencePiece's end of sentence. identity: reel normalises before; remove_extra_whitespaces off
    // and byte_fallback on make decode(encode(text)) == text.
    std::string args = "--model_type=" + std::string(options->kind == REEL_PIECES_BPE ? "bpe" : "unigram") +
                       " --vocab_size=" + std::to_string(options->vocab_size) +
                       " --pad_id=0 --unk_id=1 --bos_id=-1 --eos_id=2 --pad_piece=<pad> --unk_piece=<unk>"
                       " --eos_piece=<eod> --byte_fallback=true --normalization_rule_name=identity"
                       " --remove_extra_whitespaces=false --character_coverage=0.9995"
                       " --max_sentence_length=65536 --train_extremely_large_corpus=false" +
                       " --num_threads=" + std::to_string(options->threads ? options->threads : 1) +
                       " --input_sentence_size=" + std::to_string(options->max_texts) +
                       " --shuffle_input_sentence=true --minloglevel=2";
    try {
        // the trainer's sampling of sentences draws from the library's one generator: seeded here, so the
        // same texts and seed give the same model (a process-wide setting; reel trains one model at a time)
        sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(options->seed));
        sentencepiece::logging::SetMinLogLevel(2);
        CallbackTexts texts(next, ctx);
        std::string serialized;
        sentencepiece::util::Status status = sentencepiece::SentencePieceTrainer::Train(args, &texts, &serialized);
        if (!status.ok()) return reel_fail(err, "training the piece model failed: %s", status.ToString().c_str());
        char *copy = static_cast<char *>(std::malloc(serialized.size() ? serialized.size() : 1));
        if (!copy) return reel_fail(err, "out of memory for a piece model of %zu bytes", serialized.size());
        std::memcpy(copy, serialized.data(), serialized.size());
        *model = copy;
        *model_bytes = serialized.size();
        return 0;
    } catch (const std::exception &e) {
        return reel_fail(err, "training the piece model failed: %s", e.what());
    }
}

extern "C" int reel_pieces_load(reel_pieces **out, const char *model, size_t model_bytes, reel_error *err) {
    *out = nullptr;
    reel_pieces *pieces = new (std::nothrow) reel_pieces;
    if (!pieces) return reel_fail(err, "out of memory for a piece model");
    try {
        sentencepiece::util::Status status =
            pieces->processor.LoadFromSerializedProto(std::string(model, model_bytes));
        if (!status.ok()) {
            delete pieces;
            return reel_fail(err, "not a SentencePiece model (%zu bytes): %s", model_bytes, status.ToString().c_str());
        }
        // reel's reserved ids must be where reel expects them
        const char *reserved[3] = {"<pad>", "<unk>", "<eod>"};
        for (int id = 0; id < 3; id++)
            if (pieces->processor.GetPieceSize() <= id || pieces->processor.IdToPiece(id) != reserved[id]) {
                delete pieces;
                return reel_fail(err, "the piece model's id %d is not %s: not a model reel trained", id, reserved[id]);
            }
    } catch (const std::exception &e) {
        delete pieces;
        return reel_fail(err, "loading the piece model failed: %s", e.what());
    }
    *out = pieces;
    return 0;
}

extern "C" void reel_pieces_free(reel_pieces *pieces) { delete pieces; }

extern "C" size_t reel_pieces_count(const reel_pieces *pieces) {
    return static_cast<size_t>(pieces->processor.GetPieceSize());
}

extern "C" const char *reel_pieces_spelling(const reel_pieces *pieces, size_t id) {
    return pieces->processor.IdToPiece(static_cast<int>(id)).c_str();
}

extern "C" size_t reel_pieces_encode(const reel_pieces *pieces, const char *text, size_t length, uint32_t **ids,
                                     size_t *capacity, reel_error *err) {
    try {
        std::vector<int> found;
        sentencepiece::util::Status status = pieces->processor.Encode(std::string(text, length), &found);
        if (!status.ok()) {
            reel_fail(err, "encoding %zu bytes into pieces failed: %s", length, status.ToString().c_str());
            return static_cast<size_t>(-1);
        }
        if (found.size() > *capacity || !*ids) {
            size_t grown = found.size() > 16 ? found.size() : 16;
            uint32_t *bigger = static_cast<uint32_t *>(std::realloc(*ids, grown * sizeof **ids));
            if (!bigger) {
                reel_fail(err, "out of memory for %zu piece ids", found.size());
                return static_cast<size_t>(-1);
            }
            *ids = bigger;
            *capacity = grown;
        }
        for (size_t i = 0; i < found.size(); i++) (*ids)[i] = static_cast<uint32_t>(found[i]);
        return found.size();
    } catch (const std::exception &e) {
        reel_fail(err, "encoding into pieces failed: %s", e.what());
        return static_cast<size_t>(-1);
    }
}

extern "C" int reel_pieces_decode(const reel_pieces *pieces, const uint32_t *ids, size_t count, char **text,
                                  size_t *length, size_t *capacity, reel_error *err) {
    size_t size = reel_pieces_count(pieces);
    std::vector<int> pieces_ids(count);
    for (size_t i = 0; i < count; i++) {
        if (ids[i] >= size) return reel_fail(err, "piece id %u at position %zu is past the model's %zu", ids[i], i, size);
        pieces_ids[i] = static_cast<int>(ids[i]);
    }
    try {
        std::string decoded;
        sentencepiece::util::Status status = pieces->processor.Decode(pieces_ids, &decoded);
        if (!status.ok()) return reel_fail(err, "decoding %zu pieces failed: %s", count, status.ToString().c_str());
        size_t needed = *length + decoded.size() + 1;
        if (needed > *capacity || !*text) {
            char *bigger = static_cast<char *>(std::realloc(*text, needed));
            if (!bigger) return reel_fail(err, "out of memory for %zu bytes of text", needed);
            *text = bigger;
            *capacity = needed;
        }
        std::memcpy(*text + *length, decoded.data(), decoded.size());
        *length += decoded.size();
        (*text)[*length] = '\0';
        return 0;
    } catch (const std::exception &e) {
        return reel_fail(err, "decoding pieces failed: %s", e.what());
    }
}
