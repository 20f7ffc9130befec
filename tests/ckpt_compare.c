/* ckpt_compare A.h5 B.h5 [--exact | --tol REL]: compares every float dataset under /model and /optimizer
 * of two checkpoints, and the /train_state attributes. Prints the largest differences per tensor.
 * Exit 0 when equal (bit for bit with --exact; else |a-b| <= REL * max(|a|,|b|) + REL * rms(tensor)
 * for every value), 1 otherwise. Used by the multi-rank and resume tests. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hid_t other;
    int exact;
    double tolerance;
    int mismatches;
    size_t tensors;
} walk_state;

static float *read_all(hid_t file, const char *name, hssize_t *count) {
    hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dataset < 0) return NULL;
    hid_t space = H5Dget_space(dataset);
    *count = H5Sget_simple_extent_npoints(space);
    float *values = malloc((size_t)(*count > 0 ? *count : 1) * sizeof *values);
    if (H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        free(values);
        values = NULL;
    }
    H5Sclose(space);
    H5Dclose(dataset);
    return values;
}

static herr_t compare_dataset(hid_t root, const char *name, const H5O_info_t *info, void *data) {
    walk_state *state = data;
    if (info->type != H5O_TYPE_DATASET || strcmp(name, "config") == 0) return 0;
    /* tensors only: text datasets (the configuration, the vocabulary) are not compared */
    hid_t dataset = H5Dopen2(root, name, H5P_DEFAULT), type = H5Dget_type(dataset);
    int is_float = H5Tget_class(type) == H5T_FLOAT;
    H5Tclose(type);
    H5Dclose(dataset);
    if (!is_float) return 0;
    hssize_t count_a = 0, count_b = 0;
    float *a = read_all(root, name, &count_a), *b = read_all(state->other, name, &count_b);
    state->tensors++;
    if (!a || !b || count_a != count_b) {
        printf("  /%s: missing or different size in the second file\n", name);
        state->mismatches++;
    } else {
        double max_abs = 0, sum_squares = 0;
        size_t differing = 0, bad = 0;
        for (hssize_t i = 0; i < count_a; i++) sum_squares += (double)a[i] * a[i];
        double rms = count_a ? sqrt(sum_squares / (double)count_a) : 0;
        for (hssize_t i = 0; i < count_a; i++) {
            double diff = fabs((double)a[i] - b[i]);
            if (memcmp(&a[i], &b[i], sizeof(float)) != 0) differing++;
            if (diff > max_abs) max_abs = diff;
            double allowed = state->tolerance * (fmax(fabs(a[i]), fabs(b[i])) + rms);
            if (state->exact ? memcmp(&a[i], &b[i], sizeof(float)) != 0 : diff > allowed) bad++;
        }
        if (bad || differing)
            printf("  /%-40s %zu of %lld values differ, max |a-b| %.3g (rms %.3g)%s\n", name, differing,
                   (long long)count_a, max_abs, rms, bad ? "  <-- beyond tolerance" : "");
        if (bad) state->mismatches++;
    }
    free(a);
    free(b);
    return 0;
}

static int compare_attributes(hid_t a, hid_t b) {
    const char *names[] = {"global_step", "epoch", "step_in_epoch", "samples_seen"};
    hid_t ga = H5Gopen2(a, "train_state", H5P_DEFAULT), gb = H5Gopen2(b, "train_state", H5P_DEFAULT);
    int mismatches = 0;
    for (size_t i = 0; i < 4; i++) {
        uint64_t va = 0, vb = 0;
        hid_t attr_a = H5Aopen(ga, names[i], H5P_DEFAULT), attr_b = H5Aopen(gb, names[i], H5P_DEFAULT);
        H5Aread(attr_a, H5T_NATIVE_UINT64, &va);
        H5Aread(attr_b, H5T_NATIVE_UINT64, &vb);
        H5Aclose(attr_a);
        H5Aclose(attr_b);
        if (va != vb) {
            printf("  /train_state %s: %llu vs %llu\n", names[i], (unsigned long long)va, (unsigned long long)vb);
            mismatches++;
        }
    }
    H5Gclose(ga);
    H5Gclose(gb);
    return mismatches;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ckpt_compare A.h5 B.h5 [--exact | --tol REL]\n");
        return 2;
    }
    walk_state state = {0};
    state.exact = argc > 3 && strcmp(argv[3], "--exact") == 0;
    state.tolerance = argc > 4 && strcmp(argv[3], "--tol") == 0 ? atof(argv[4]) : 0;
    if (!state.exact && state.tolerance <= 0) {
        fprintf(stderr, "ckpt_compare: give --exact or --tol REL\n");
        return 2;
    }
    hid_t a = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT), b = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (a < 0 || b < 0) {
        fprintf(stderr, "ckpt_compare: cannot open %s\n", a < 0 ? argv[1] : argv[2]);
        return 2;
    }
    state.other = b;
    printf("comparing %s with %s (%s)\n", argv[1], argv[2], state.exact ? "bit for bit" : "with tolerance");
    H5Ovisit2(a, H5_INDEX_NAME, H5_ITER_INC, compare_dataset, &state, H5O_INFO_BASIC);
    state.mismatches += compare_attributes(a, b);
    H5Fclose(a);
    H5Fclose(b);
    printf("%zu tensors compared: %s\n", state.tensors, state.mismatches ? "DIFFERENT" : "equal");
    return state.mismatches || state.tensors == 0 ? 1 : 0;
}
