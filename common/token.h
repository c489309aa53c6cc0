/* Survey tokens (SPEC §4): an HMAC-SHA256, keyed with the configured secret, over the survey id
 * and its expiry. A response is accepted only with the token of the survey it answers. */
#ifndef SB_TOKEN_H
#define SB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define SB_TOKEN_MAX 96 /* buffer size that holds any token and its NUL */

enum { SB_TOKEN_OK = 0, SB_TOKEN_BAD = -1, SB_TOKEN_EXPIRED = -2 };

/* Writes the token of survey_id valid until expires_ms:
 *   "<expires_ms in decimal>.<base64url, no padding, of HMAC-SHA256(secret,
 *    "v1|" survey_id "|" expires_ms)>"
 * e.g. "1700000000000.<43 characters>". The expiry sits inside the MAC so that whoever holds a
 * token cannot extend its life by editing the number in front, and so a token can be checked
 * for both authenticity and age without a store lookup; "v1|" leaves room for a later format.
 * Returns 0, or -1 when secret is NULL or empty, survey_id is NULL, empty or longer than
 * SB_STR_MAX bytes, expires_ms is negative, or outlen < SB_TOKEN_MAX. */
int sb_token_sign(const char *secret, const char *survey_id, int64_t expires_ms, char *out,
                  size_t outlen);

/* Checks token against survey_id. Returns SB_TOKEN_OK; SB_TOKEN_BAD when the token is
 * malformed (not "<canonical decimal>.<43 base64url characters>", or longer than
 * SB_TOKEN_MAX - 1 bytes), the MAC does not match (compared in constant time over its whole
 * length), or an argument is invalid as for sb_token_sign(); SB_TOKEN_EXPIRED when the MAC is
 * valid but now_ms > expiry (a response at exactly the expiry is accepted). *expires_ms, when
 * not NULL, is set to the token's expiry whenever the MAC is valid (OK or EXPIRED). */
int sb_token_verify(const char *secret, const char *survey_id, const char *token, int64_t now_ms,
                    int64_t *expires_ms);

#endif
