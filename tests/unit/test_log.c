/* Unit tests for the JSON-lines logger. */
#include "check.h"
#include "log.h"

#include <stdlib.h>

static json_t *log_one(enum log_level lvl, const char *msg, json_t *fields)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    log_set_stream(mem);
    log_json(lvl, msg, fields);
    fclose(mem);
    log_set_stream(NULL);
    json_t *line = len ? json_loads(buf, 0, NULL) : NULL;
    CHECK(len == 0 || buf[len - 1] == '\n');
    free(buf);
    return line;
}

int main(void)
{
    json_t *line = log_one(LOG_LVL_INFO, "hello", json_pack("{s:s,s:i}", "rid", "r1", "status", 200));
    CHECK(line != NULL);
    CHECK_STR(json_string_value(json_object_get(line, "msg")), "hello");
    CHECK_STR(json_string_value(json_object_get(line, "level")), "info");
    CHECK_STR(json_string_value(json_object_get(line, "rid")), "r1");
    CHECK(json_integer_value(json_object_get(line, "status")) == 200);
    CHECK(json_string_length(json_object_get(line, "ts")) == 24);
    json_decref(line);

    /* A field may not overwrite the fixed keys. */
    line = log_one(LOG_LVL_WARN, "m", json_pack("{s:s}", "level", "forged"));
    CHECK_STR(json_string_value(json_object_get(line, "level")), "warn");
    json_decref(line);

    log_set_level(LOG_LVL_ERROR);
    CHECK(log_one(LOG_LVL_INFO, "dropped", NULL) == NULL);
    log_set_level(LOG_LVL_INFO);

    enum log_level lvl;
    CHECK(log_level_parse("debug", &lvl) == 0 && lvl == LOG_LVL_DEBUG);
    CHECK(log_level_parse("loud", &lvl) == -1);
    return check_done();
}
