/* confref: writes the config key reference (conf/CONFIG.md) generated from the key table.
 * Usage: conf_reference [OUTPUT]   (stdout without OUTPUT) */
#include <stdio.h>

#include "conf.h"

int main(int argc, char **argv)
{
    FILE *out = argc > 1 ? fopen(argv[1], "w") : stdout;

    if (!out) {
        perror(argv[1]);
        return 1;
    }
    int rc = conf_print_reference(out);
    if (out != stdout && fclose(out) != 0)
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "conf_reference: write failed\n");
    return rc < 0 ? 1 : 0;
}
