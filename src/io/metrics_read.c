/* Reading a metrics file back (reel/metrics.h): reel plot and reel runs. */
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "reel/metrics.h"
#include "reel/util.h"

static const char *const groups[2] = {"train", "eval"};

/* Reads every dataset of one group; rows = the shortest (a killed writer may leave one column longer). */
static int read_group(reel_metrics_data *out, hid_t file, int t, const char *path, reel_error *err) {
    if (H5Lexists(file, groups[t], H5P_DEFAULT) <= 0) return 0;
    hid_t group = H5Gopen2(file, groups[t], H5P_DEFAULT);
    H5G_info_t info;
    if (group < 0 || H5Gget_info(group, &info) < 0) {
        if (group >= 0) H5Gclose(group);
        return reel_fail(err, "%s: cannot read the group /%s: the file is damaged", path, groups[t]);
    }
    out->series[t] = reel_calloc(info.nlinks ? info.nlinks : 1, sizeof *out->series[t]);
    size_t rows = SIZE_MAX;
    int status = 0;
    for (hsize_t i = 0; i < info.nlinks && status == 0; i++) {
        reel_series_data *s = &out->series[t][out->num_series[t]];
        if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, s->name, sizeof s->name, H5P_DEFAULT) < 0) {
            status = reel_fail(err, "%s: cannot list /%s", path, groups[t]);
            break;
        }
        hid_t dataset = H5Dopen2(group, s->name, H5P_DEFAULT);
        hid_t space = dataset >= 0 ? H5Dget_space(dataset) : H5I_INVALID_HID;
        hsize_t dims[1] = {0};
        if (space < 0 || H5Sget_simple_extent_ndims(space) != 1 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
            char shown[REEL_QUOTE_MAX]; /* the file's dataset name, escaped */
            status = reel_fail(err, "%s: /%s/%s is not a series (a 1-D dataset)", path, groups[t],
                               reel_escape_string(shown, sizeof shown, s->name));
        } else if (dims[0] > reel_h5_stored_elements(dataset) || dims[0] > SIZE_MAX / sizeof *s->values) {
            char shown[REEL_QUOTE_MAX];
            status = reel_fail(err, "%s: /%s/%s claims %llu rows, but the file stores at most %llu: the file is "
                               "damaged", path, groups[t], reel_escape_string(shown, sizeof shown, s->name),
                               (unsigned long long)dims[0], (unsigned long long)reel_h5_stored_elements(dataset));
        } else {
            /* not reel_malloc: a damaged file's series is reported, not taken for running out of memory */
            s->values = malloc((size_t)(dims[0] ? dims[0] : 1) * sizeof *s->values);
            char shown[REEL_QUOTE_MAX];
            if (!s->values)
                status = reel_fail(err, "%s: /%s/%s has %llu rows, more than there is memory for", path, groups[t],
                                   reel_escape_string(shown, sizeof shown, s->name), (unsigned long long)dims[0]);
            else if (dims[0] && H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->values) < 0)
                status = reel_fail(err, "%s: cannot read /%s/%s: the file is damaged", path, groups[t],
                                   reel_escape_string(shown, sizeof shown, s->name));
            if ((size_t)dims[0] < rows) rows = (size_t)dims[0];
            if (s->values) out->num_series[t]++;
        }
        if (space >= 0) H5Sclose(space);
        if (dataset >= 0) H5Dclose(dataset);
    }
    if (group >= 0) REEL_H5_CHECK(H5Gclose(group));
    out->rows[t] = rows == SIZE_MAX ? 0 : rows;
    return status;
}

int reel_metrics_read(reel_metrics_data *out, const char *path, reel_error *err) {
    memset(out, 0, sizeof *out);
    reel_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    REEL_H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST));
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    if (fapl >= 0) REEL_H5_CHECK(H5Pclose(fapl));
    if (file < 0) {
        char reason[256];
        reel_h5_reason(reason, sizeof reason);
        return reel_fail(err, "%s: cannot open the metrics file (%s)", path, reason);
    }
    char format[64] = "";
    if (reel_h5_read_string_attr(file, "format", format, sizeof format) != 0 || strcmp(format, "reel-metrics") != 0) {
        if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
        return reel_fail(err, "%s: not a reel metrics file (no root attribute format = 'reel-metrics')", path);
    }
    if (reel_h5_read_string_attr(file, "objective", out->objective, sizeof out->objective) != 0 || !out->objective[0])
        snprintf(out->objective, sizeof out->objective, "classify"); /* files from before objectives */
    int status = read_group(out, file, 0, path, err);
    if (status == 0) status = read_group(out, file, 1, path, err);
    if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
    H5Eclear2(H5E_DEFAULT);
    if (status != 0) reel_metrics_data_free(out);
    return status;
}

const double *reel_metrics_series(const reel_metrics_data *data, reel_metrics_table table, const char *name) {
    for (size_t i = 0; i < data->num_series[table]; i++)
        if (strcmp(data->series[table][i].name, name) == 0) return data->series[table][i].values;
    return NULL;
}

void reel_metrics_data_free(reel_metrics_data *data) {
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < data->num_series[t]; i++) free(data->series[t][i].values);
        free(data->series[t]);
    }
    memset(data, 0, sizeof *data);
}
