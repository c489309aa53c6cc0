/* HMAC-SHA256 survey tokens with OpenSSL; see token.h. */
#include "token.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util.h"

#define MAC_LEN 32
#define MAC_B64_LEN 43 /* ceil(32 * 8 / 6), no padding */
#define EXPIRY_DIGITS_MAX 19

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Base64url of the 32-byte MAC, no padding, NUL-terminated. */
static void encode_mac(const unsigned char mac[MAC_LEN], char out[MAC_B64_LEN + 1])
{
    size_t o = 0, i = 0;
    for (; i + 3 <= MAC_LEN; i += 3) {
        uint32_t v = (uint32_t)mac[i] << 16 | (uint32_t)mac[i + 1] << 8 | mac[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    uint32_t v = (uint32_t)mac[i] << 16 | (uint32_t)mac[i + 1] << 8; /* 32 = 30 + 2 bytes */
    out[o++] = b64url[v >> 18 & 63];
    out[o++] = b64url[v >> 12 & 63];
    out[o++] = b64url[v >> 6 & 63];
    out[o] = '\0';
}

/* The encoded MAC of (survey_id, expires_ms); -1 on invalid arguments or a crypto failure. */
static int compute(const char *secret, const char *survey_id, int64_t expires_ms,
                   char out[MAC_B64_LEN + 1])
{
    if (!secret || !*secret || !survey_id || !*survey_id || expires_ms < 0) return -1;
    size_t idlen = strnlen(survey_id, SB_STR_MAX + 1);
    if (idlen > SB_STR_MAX) return -1;
    char msg[SB_STR_MAX + 32];
    int len = snprintf(msg, sizeof msg, "v1|%s|%" PRId64, survey_id, expires_ms);
    if (len < 0 || (size_t)len >= sizeof msg) return -1;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, (size_t)len,
              mac, &maclen) ||
        maclen != MAC_LEN)
        return -1;
    encode_mac(mac, out);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

int sb_token_sign(const char *secret, const char *survey_id, int64_t expires_ms, char *out,
                  size_t outlen)
{
    char mac[MAC_B64_LEN + 1];
    if (!out || outlen < SB_TOKEN_MAX) return -1;
    if (compute(secret, survey_id, expires_ms, mac) < 0) return -1;
    snprintf(out, outlen, "%" PRId64 ".%s", expires_ms, mac);
    return 0;
}

int sb_token_verify(const char *secret, const char *survey_id, const char *token, int64_t now_ms,
                    int64_t *expires_ms)
{
    if (!token) return SB_TOKEN_BAD;
    size_t len = strnlen(token, SB_TOKEN_MAX);
    if (len >= SB_TOKEN_MAX) return SB_TOKEN_BAD;

    /* "<digits>.<mac>": canonical decimal (no sign, no leading zero), fits in int64. */
    size_t nd = 0;
    int64_t exp = 0;
    while (nd < len && token[nd] >= '0' && token[nd] <= '9') {
        int d = token[nd] - '0';
        if (nd >= EXPIRY_DIGITS_MAX || exp > (INT64_MAX - d) / 10) return SB_TOKEN_BAD;
        exp = exp * 10 + d;
        nd++;
    }
    if (nd == 0 || (nd > 1 && token[0] == '0')) return SB_TOKEN_BAD;
    if (token[nd] != '.' || len - nd - 1 != MAC_B64_LEN) return SB_TOKEN_BAD;

    char want[MAC_B64_LEN + 1];
    if (compute(secret, survey_id, exp, want) < 0) return SB_TOKEN_BAD;
    /* Comparing the canonical encodings rejects the non-canonical spellings of the last
     * character as well; CRYPTO_memcmp reads all 43 bytes whatever differs. */
    int diff = CRYPTO_memcmp(want, token + nd + 1, MAC_B64_LEN);
    OPENSSL_cleanse(want, sizeof want);
    if (diff != 0) return SB_TOKEN_BAD;
    if (expires_ms) *expires_ms = exp;
    return now_ms > exp ? SB_TOKEN_EXPIRED : SB_TOKEN_OK;
}
