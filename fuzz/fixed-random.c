/* Preloaded by scripts/fuzz-coverage-diff.sh, with the fuzz crate's
 * fixed-hash-keys feature. std seeds each thread's hash map keys from
 * getrandom(2), which it looks up as a weak symbol so that it can be
 * interposed (its own comment names this use: turning randomness off for
 * consistent measurements). With fixed bytes, and each input on a fresh thread,
 * an input takes the same hash map paths every time it runs, so coverage
 * measured from a corpus is a repeatable number. */
#include <string.h>
#include <sys/types.h>

ssize_t getrandom(void *buffer, size_t length, unsigned int flags) {
  (void)flags;
  memset(buffer, 0x5a, length);
  return (ssize_t)length;
}
