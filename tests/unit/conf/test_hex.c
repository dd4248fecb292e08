/* Unit tests for the shared hex digit and hex string decoder (conf/hex.c). */
#include "check.h"
#include "hex.h"

#include <string.h>

static void test_digit(void)
{
    CHECK(hex_digit('0') == 0 && hex_digit('9') == 9);
    CHECK(hex_digit('a') == 10 && hex_digit('f') == 15);
    CHECK(hex_digit('A') == 10 && hex_digit('F') == 15);
    CHECK(hex_digit('g') == -1 && hex_digit('G') == -1);
    CHECK(hex_digit('/') == -1 && hex_digit(':') == -1 && hex_digit('@') == -1);
    CHECK(hex_digit('`') == -1 && hex_digit(0) == -1 && hex_digit(0xff) == -1);
}

static void test_decode(void)
{
    unsigned char out[4] = {0};
    CHECK(hex_decode("00fFa5C3", 8, out, 4) == 0);
    CHECK(out[0] == 0x00 && out[1] == 0xff && out[2] == 0xa5 && out[3] == 0xc3);
    CHECK(hex_decode("00ffa5c", 7, out, 4) == -1);   /* too short */
    CHECK(hex_decode("00ffa5c3d", 9, out, 4) == -1); /* too long */
    CHECK(hex_decode("00ffa5cg", 8, out, 4) == -1);  /* not a digit */
    CHECK(hex_decode("00 fa5c3", 8, out, 4) == -1);
    CHECK(hex_decode(NULL, 0, out, 0) == -1);
    CHECK(hex_decode("", 0, out, 0) == 0);
    /* only len bytes are read: a digit past len does not count */
    CHECK(hex_decode("abcd", 2, out, 1) == 0 && out[0] == 0xab);
}

int main(void)
{
    test_digit();
    test_decode();
    return check_done();
}
