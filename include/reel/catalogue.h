/* reel/catalogue.h: the configuration engine with the registries' model types and objectives.
 *
 * reel/config.h is below the models and objectives and takes their key tables as a catalogue
 * (reel_config_catalogue). This header, above both registries, builds that catalogue from them and keeps
 * the calls every front end and test makes short: each wrapper passes reel_catalogue(). A configuration
 * loaded through them can name exactly the registered types.
 */
#ifndef REEL_CATALOGUE_H
#define REEL_CATALOGUE_H

#include <stdio.h>

#include "reel/check.h"
#include "reel/config.h"

/* The registered model types (with their old names and default objectives) and objectives; static,
 * built on the first call. */
const reel_config_catalogue *reel_catalogue(void);

/* reel_config_defaults_with, _load_file_with, _load_string_with and _print_schema_with (reel/config.h)
 * with reel_catalogue(). */
void reel_config_defaults(reel_config *cfg);
int reel_config_load_file(reel_config *cfg, const char *path, reel_error *err);
int reel_config_load_string(reel_config *cfg, const char *text, const char *source_name, reel_error *err);
void reel_config_print_schema(FILE *out);

#endif
