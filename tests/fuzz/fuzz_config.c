/* The configuration reader on any text: it either loads (and then the resolved configuration it prints
 * loads again to the same text) or fails with a message; it never crashes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "reel/catalogue.h"
#include "reel/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    static reel_config cfg, again;
    reel_error err = {{0}};
    if (reel_config_load_string(&cfg, text, "fuzz.ini", &err) == 0) {
        char *ini = reel_config_to_ini(&cfg);
        reel_error second = {{0}};
        FUZZ_ASSERT(reel_config_load_string(&again, ini, "resolved", &second) == 0);
        char *ini_again = reel_config_to_ini(&again);
        FUZZ_ASSERT(strcmp(ini, ini_again) == 0);
        free(ini);
        free(ini_again);
    } else {
        FUZZ_ASSERT(err.message[0] != '\0');
    }
    free(text);
    return 0;
}
