#include "reel/layers.h"

void reel_relu_forward(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void reel_relu_backward(float *dinp, const float *dout, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++)
        if (inp[i] > 0.0f) dinp[i] += dout[i];
}
