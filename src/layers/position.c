#include "reel/layers.h"

void reel_position_forward(float *out, const float *tok, const float *wpe, size_t pos0, size_t B, size_t T, size_t C) {
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            const float *row = wpe + (pos0 + t) * C;
            size_t at = (b * T + t) * C;
            for (size_t c = 0; c < C; c++) out[at + c] = tok[at + c] + row[c];
        }
}

void reel_position_backward(float *dtok, float *dwpe, const float *dout, size_t pos0, size_t B, size_t T, size_t C) {
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            float *row = dwpe + (pos0 + t) * C;
            size_t at = (b * T + t) * C;
            for (size_t c = 0; c < C; c++) row[c] += dout[at + c];
            if (dtok)
                for (size_t c = 0; c < C; c++) dtok[at + c] += dout[at + c];
        }
}
