/* replay: the corpus replay driver linked into every fuzz target when it is not built
 * with libFuzzer. Each target defines the two functions below; replay.c supplies main().
 * Invariant: a replay fails unless at least one seed was read and every seed met the
 * expectation its file name states. */
#ifndef FOGATE_REPLAY_H
#define FOGATE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#define REPLAY_FILE_MAX (1024 * 1024) /* a seed larger than this is cut (and fails) */

/* libFuzzer's entry point: checks the target's invariants on `size` bytes of `data`
 * (borrowed), aborting when one breaks. Always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Replays one seed: runs the target on `data` (borrowed) and checks the outcome the
 * file's base `name` asks for (e.g. accept-* / reject-*). Returns 0, or -1 after printing
 * why to stderr. */
int replay_check(const char *name, const uint8_t *data, size_t size);

#endif
