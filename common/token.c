/* HMAC-SHA256 survey tokens with OpenSSL; see token.h. */
#include "token.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

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

/* HMAC key set-up (hashing the padded key) costs as much as the MAC of a short message, and
 * the dispatcher signs, and the aggregator verifies, one token per survey with the same
 * secret. Each thread therefore keeps one MAC context keyed with the last secret it used;
 * re-initialising it without a key restarts from the stored key state. A pthread key frees
 * a thread's context when the thread ends (the main thread's lives until exit). */
typedef struct mac_cache {
    EVP_MAC_CTX *ctx;
    char *secret; /* copy of the secret the context is keyed with */
    size_t secret_len;
} mac_cache_t;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static _Thread_local mac_cache_t *cache; /* fast path; also registered under cache_key */

static void cache_drop(mac_cache_t *c)
{
    if (!c) return;
    EVP_MAC_CTX_free(c->ctx);
    if (c->secret) {
        OPENSSL_cleanse(c->secret, c->secret_len);
        free(c->secret);
    }
    c->ctx = NULL;
    c->secret = NULL;
    c->secret_len = 0;
}

static void cache_destroy(void *p)
{
    mac_cache_t *c = p;
    cache_drop(c);
    free(c);
    if (cache == c) cache = NULL;
}

static void cache_init_key(void)
{
    if (pthread_key_create(&cache_key, cache_destroy) != 0) abort();
}

/* This thread's MAC context, keyed with secret (len bytes) and ready for update; NULL on a
 * crypto or allocation failure. */
static EVP_MAC_CTX *mac_ctx(const char *secret, size_t len)
{
    mac_cache_t *c = cache;
    if (!c) {
        pthread_once(&cache_once, cache_init_key);
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        if (pthread_setspecific(cache_key, c) != 0) {
            free(c);
            return NULL;
        }
        cache = c;
    }
    if (c->ctx && c->secret_len == len && CRYPTO_memcmp(c->secret, secret, len) == 0)
        return EVP_MAC_init(c->ctx, NULL, 0, NULL) ? c->ctx : NULL;
    cache_drop(c);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) return NULL;
    c->ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    c->secret = malloc(len);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!c->ctx || !c->secret ||
        !EVP_MAC_init(c->ctx, (const unsigned char *)secret, len, params)) {
        cache_drop(c);
        return NULL;
    }
    memcpy(c->secret, secret, len);
    c->secret_len = len;
    return c->ctx;
}

/* Writes v >= 0 in decimal; returns the length. */
static size_t put_dec(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* The encoded MAC of (survey_id, expires_ms); -1 on invalid arguments or a crypto failure. */
static int compute(const char *secret, const char *survey_id, int64_t expires_ms,
                   char out[MAC_B64_LEN + 1])
{
    if (!secret || !*secret || !survey_id || !*survey_id || expires_ms < 0) return -1;
    size_t idlen = strnlen(survey_id, SB_STR_MAX + 1);
    if (idlen > SB_STR_MAX) return -1;
    char msg[SB_STR_MAX + 32]; /* "v1|" id "|" at most 19 digits */
    size_t len = 0;
    memcpy(msg, "v1|", 3), len = 3;
    memcpy(msg + len, survey_id, idlen), len += idlen;
    msg[len++] = '|';
    len += put_dec(msg + len, expires_ms);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx = mac_ctx(secret, strlen(secret));
    if (!ctx || !EVP_MAC_update(ctx, (const unsigned char *)msg, len) ||
        !EVP_MAC_final(ctx, mac, &maclen, sizeof mac) || maclen != MAC_LEN)
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
    size_t n = put_dec(out, expires_ms); /* at most 19 digits + '.' + 43 + NUL < SB_TOKEN_MAX */
    out[n++] = '.';
    memcpy(out + n, mac, MAC_B64_LEN + 1);
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
