/*
 * utf8 — text from outside made fit for a message.
 *
 * Messages quote what was wrong with an input (a model's reply, a request,
 * an error body); they go to logs, to the model when it is asked again, to
 * the terminal and to Telegram, which refuses text that is not UTF-8. These
 * helpers keep a quote or a cut message valid UTF-8 on one line, whatever
 * bytes the input held.
 */
#ifndef ORCH_CORE_UTF8_H
#define ORCH_CORE_UTF8_H

#include <stddef.h>

/* The length of the well-formed UTF-8 sequence at s[0..n): 1 to 4, or 0
 * when there is none there (a stray byte, a cut sequence, an overlong form,
 * a surrogate, past U+10FFFF). */
size_t utf8_seq(const char *s, size_t n);

/* Copies at most `max` bytes of s[0..n) into out[cap] (NUL-terminated) as
 * one line of valid UTF-8: control characters become spaces, bytes that
 * are not UTF-8 become '?', and no character is cut. */
void utf8_excerpt(char *out, size_t cap, const char *s, size_t n, size_t max);

/* Ends the C string `s` at a character boundary, dropping a UTF-8 sequence
 * that a cut (snprintf into a fixed buffer) left incomplete at its end. */
void utf8_fit(char *s);

#endif
