/* A flat scratch directory for one cmocka test program: define SCRATCH_TEMPLATE ("/tmp/name_XXXXXX")
 * before including, and pass setup_dir / remove_dir as the group setup and teardown. Removing the entries
 * and then the directory cleans up even after a failed test left files behind. */
#ifndef REEL_TEST_SCRATCH_DIR_H
#define REEL_TEST_SCRATCH_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir[] = SCRATCH_TEMPLATE;

static int setup_dir(void **state) {
    (void)state;
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    DIR *dir = opendir(tmp_dir);
    if (!dir) return -1;
    for (struct dirent *entry; (entry = readdir(dir));) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", tmp_dir, entry->d_name);
        unlink(path);
    }
    closedir(dir);
    return rmdir(tmp_dir);
}

#endif
