/* connstats: the client side's counters and the fixed label sets they are kept under. */
#include "connstats.h"

#include <string.h>

static const char *const methods[CONNSTATS_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
};

static const int codes[CONNSTATS_CODES - 1] = {
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409,
    410, 411, 412, 413, 414, 415, 416, 417, 422, 429, 431, 500, 501, 502, 503, 504,
};

static const char *const code_names[CONNSTATS_CODES] = {
    "200", "201", "202", "204", "206", "301", "302", "304", "307", "308", "400", "401",
    "403", "404", "405", "408", "409", "410", "411", "412", "413", "414", "415", "416",
    "417", "422", "429", "431", "500", "501", "502", "503", "504", "other",
};

/* The codes conn, http1 and h1body refuse with (proxy/front only). */
static const char *const malformed[CONNSTATS_MALFORMED] = {
    "bad_request_line", "bad_target", "target_not_origin_form", "version_not_supported",
    "method_not_implemented", "header_too_large", "too_many_headers", "bad_header_name",
    "space_before_colon", "obs_fold", "nul_byte", "bare_cr", "bare_lf", "control_char",
    "malformed_request", "bad_content_length", "duplicate_content_length",
    "transfer_encoding_unsupported", "te_with_content_length", "missing_host",
    "request_head_timeout", "body_too_large", "bad_body", "body_timeout", "body_cut_off",
    "other",
};

static const char *const refuse_names[CONNSTATS_REFUSE_N] = {
    "max_connections", "draining", "out_of_memory", "idle_shed", "accept_paused",
    "max_connections_per_ip" };

unsigned connstats_code_index(int status)
{
    for (unsigned i = 0; i < CONNSTATS_CODES - 1; i++)
        if (codes[i] == status)
            return i;
    return CONNSTATS_CODES - 1;
}

unsigned connstats_method_index(const char *method)
{
    for (unsigned i = 0; method && i < CONNSTATS_METHODS - 1; i++)
        if (strcmp(methods[i], method) == 0)
            return i;
    return CONNSTATS_METHODS - 1;
}

void connstats_request(struct connstats *s, unsigned route, const char *method, int status,
                       int64_t duration_us, uint64_t bytes_in, uint64_t bytes_out)
{
#ifdef FOGATE_NO_METRICS
    return; /* measuring what counting costs: not even the label lookups */
#endif
    if (route >= CONNSTATS_ROUTES)
        route = 0;
    statcell_inc(&s->requests[route][connstats_method_index(method)]
                             [connstats_code_index(status)]);
    stathist_observe(&s->duration[route], duration_us);
    statcell_add(&s->bytes_in, bytes_in);
    statcell_add(&s->bytes_out, bytes_out);
}

void connstats_malformed(struct connstats *s, const char *code)
{
    unsigned i = 0;

    while (i < CONNSTATS_MALFORMED - 1 && strcmp(malformed[i], code) != 0)
        i++;
    statcell_inc(&s->malformed[i]);
}

const char *connstats_method_name(unsigned i)
{
    return i < CONNSTATS_METHODS ? methods[i] : "other";
}

const char *connstats_code_name(unsigned i)
{
    return i < CONNSTATS_CODES ? code_names[i] : "other";
}

const char *connstats_malformed_name(unsigned i)
{
    return i < CONNSTATS_MALFORMED ? malformed[i] : "other";
}

const char *connstats_refuse_name(unsigned i)
{
    return i < CONNSTATS_REFUSE_N ? refuse_names[i] : "other";
}
