/* Survey tokens: a known answer computed with the openssl CLI, round trips, and every way a
 * token can be forged, altered, malformed or too old. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"
#include "util.h"

#include "unit.h"

static const char *const SECRET = "secret";
static char tok[SB_TOKEN_MAX];

/* printf 'v1|s-1|1700000000000' | openssl dgst -sha256 -hmac secret -binary | basenc --base64url
 *   -> u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4=  (padding dropped) */
#define KAT "1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4"

START_TEST(known_answer)
{
    ck_assert_int_eq(sb_token_sign(SECRET, "s-1", 1700000000000LL, tok, sizeof tok), 0);
    ck_assert_str_eq(tok, KAT);
    int64_t exp = 0;
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", KAT, 1600000000000LL, &exp), SB_TOKEN_OK);
    ck_assert_int_eq(exp, 1700000000000LL);
}
END_TEST

START_TEST(round_trip)
{
    static const int64_t exps[] = {0, 1, 1700000000000LL, INT64_MAX};
    for (size_t i = 0; i < sizeof exps / sizeof *exps; i++) {
        ck_assert_int_eq(sb_token_sign("k3y", "01J9Z-survey", exps[i], tok, sizeof tok), 0);
        int64_t exp = -5;
        ck_assert_int_eq(sb_token_verify("k3y", "01J9Z-survey", tok, 0, &exp), SB_TOKEN_OK);
        ck_assert_int_eq(exp, exps[i]);
    }
    /* The text: decimal expiry, a dot, 43 base64url characters. */
    ck_assert_int_eq(sb_token_sign("k3y", "x", INT64_MAX, tok, sizeof tok), 0);
    ck_assert_uint_eq(strlen(tok), 19 + 1 + 43);
    ck_assert(strncmp(tok, "9223372036854775807.", 20) == 0);
    ck_assert_uint_eq(strspn(tok + 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789-_"),
                      43);
    /* NULL expires_ms is fine. */
    ck_assert_int_eq(sb_token_verify("k3y", "x", tok, 0, NULL), SB_TOKEN_OK);
}
END_TEST

START_TEST(any_changed_character_is_bad)
{
    ck_assert_int_eq(sb_token_sign(SECRET, "s-1", 1700000000000LL, tok, sizeof tok), 0);
    size_t len = strlen(tok);
    for (size_t i = 0; i < len; i++) {
        char t[SB_TOKEN_MAX];
        strcpy(t, tok);
        /* A different character of the same class, so only the MAC can catch it. */
        if (t[i] >= '0' && t[i] <= '8')
            t[i]++;
        else if (t[i] == '9')
            t[i] = '1';
        else if (t[i] == '.')
            t[i] = '_';
        else
            t[i] = t[i] == 'A' ? 'B' : 'A';
        ck_assert_msg(sb_token_verify(SECRET, "s-1", t, 0, NULL) == SB_TOKEN_BAD, "pos %zu: %s", i,
                      t);
    }
}
END_TEST

START_TEST(non_canonical_last_character_is_bad)
{
    /* The 43rd character carries 4 bits of MAC and 2 unused bits ('4' = 111000); a spelling
     * that decodes to the same bytes with the unused bits set must not verify either. */
    ck_assert_int_eq(sb_token_sign(SECRET, "s-1", 1700000000000LL, tok, sizeof tok), 0);
    ck_assert_int_eq(tok[strlen(tok) - 1], '4');
    tok[strlen(tok) - 1] = '5';
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", tok, 0, NULL), SB_TOKEN_BAD);
    tok[strlen(tok) - 1] = '7';
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", tok, 0, NULL), SB_TOKEN_BAD);
}
END_TEST

START_TEST(other_survey_or_secret_is_bad)
{
    ck_assert_int_eq(sb_token_verify(SECRET, "s-2", KAT, 0, NULL), SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1 ", KAT, 0, NULL), SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify(SECRET, "S-1", KAT, 0, NULL), SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify("Secret", "s-1", KAT, 0, NULL), SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify("secret2", "s-1", KAT, 0, NULL), SB_TOKEN_BAD);
}
END_TEST

START_TEST(tampered_expiry_is_bad)
{
    int64_t exp = 42;
    /* Extending, shortening, or re-spelling the expiry breaks the MAC. */
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1",
                                     "1800000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4", 0,
                                     &exp),
                     SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1",
                                     "1700000000001.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4", 0,
                                     &exp),
                     SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1",
                                     "01700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
                                     0, &exp),
                     SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1",
                                     "+1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
                                     0, &exp),
                     SB_TOKEN_BAD);
    ck_assert_int_eq(exp, 42); /* untouched when BAD */
}
END_TEST

START_TEST(expired)
{
    int64_t exp = 0;
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", KAT, 1700000000000LL, &exp), SB_TOKEN_OK);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", KAT, 1700000000001LL, &exp), SB_TOKEN_EXPIRED);
    ck_assert_int_eq(exp, 1700000000000LL);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", KAT, INT64_MAX, NULL), SB_TOKEN_EXPIRED);
    /* A forged token is BAD even when also expired. */
    ck_assert_int_eq(sb_token_verify(SECRET, "s-2", KAT, INT64_MAX, NULL), SB_TOKEN_BAD);
}
END_TEST

START_TEST(malformed_is_bad)
{
    static const char *const bad[] = {
        "",
        ".",
        "1700000000000",
        "u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
        ".u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
        "1700000000000.",
        "17000000000x0.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
        "-1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
        " 1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
        "1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4=",
        "1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ",
        "1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4 ",
        "1700000000000..u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
        "1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4.x",
        "1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4\n",
        "1700000000000.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzj+4", /* base64, not base64url */
        "9223372036854775808.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4", /* > INT64_MAX */
        "12345678901234567890.u8T9Cz2Gjt8VxCXOdltCe5gA39nI3x7x0qZeTOEzjJ4",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(sb_token_verify(SECRET, "s-1", bad[i], 0, NULL) == SB_TOKEN_BAD, "%s",
                      bad[i]);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", NULL, 0, NULL), SB_TOKEN_BAD);

    /* Overlong: a valid token followed by padding up to and beyond SB_TOKEN_MAX. */
    char big[4096];
    memset(big, '0', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", big, 0, NULL), SB_TOKEN_BAD);
    snprintf(big, sizeof big, "%s%0*d", KAT, SB_TOKEN_MAX, 0);
    ck_assert_int_eq(sb_token_verify(SECRET, "s-1", big, 0, NULL), SB_TOKEN_BAD);
}
END_TEST

START_TEST(invalid_arguments)
{
    ck_assert_int_eq(sb_token_sign(NULL, "s-1", 1, tok, sizeof tok), -1);
    ck_assert_int_eq(sb_token_sign("", "s-1", 1, tok, sizeof tok), -1);
    ck_assert_int_eq(sb_token_sign(SECRET, NULL, 1, tok, sizeof tok), -1);
    ck_assert_int_eq(sb_token_sign(SECRET, "", 1, tok, sizeof tok), -1);
    ck_assert_int_eq(sb_token_sign(SECRET, "s-1", -1, tok, sizeof tok), -1);
    ck_assert_int_eq(sb_token_sign(SECRET, "s-1", 1, tok, SB_TOKEN_MAX - 1), -1);
    ck_assert_int_eq(sb_token_sign(SECRET, "s-1", 1, NULL, SB_TOKEN_MAX), -1);
    char id[SB_STR_MAX + 2];
    memset(id, 'i', sizeof id - 1);
    id[sizeof id - 1] = '\0'; /* SB_STR_MAX + 1 bytes */
    ck_assert_int_eq(sb_token_sign(SECRET, id, 1, tok, sizeof tok), -1);
    id[SB_STR_MAX] = '\0'; /* exactly SB_STR_MAX bytes */
    ck_assert_int_eq(sb_token_sign(SECRET, id, 1, tok, sizeof tok), 0);
    ck_assert_int_eq(sb_token_verify(SECRET, id, tok, 0, NULL), SB_TOKEN_OK);

    ck_assert_int_eq(sb_token_verify(NULL, "s-1", KAT, 0, NULL), SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify("", "s-1", KAT, 0, NULL), SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify(SECRET, NULL, KAT, 0, NULL), SB_TOKEN_BAD);
    ck_assert_int_eq(sb_token_verify(SECRET, "", KAT, 0, NULL), SB_TOKEN_BAD);
}
END_TEST

/* Each thread keeps a MAC context keyed with the last secret it used: switching secrets,
 * including to one that is a prefix or an extension of the cached one, must re-key it.
 * printf 'v1|s-1|1700000000000' | openssl dgst -sha256 -hmac secre -binary | basenc --base64url
 *   -> 56ozysiaMeG-n-u0i84QZNrdjA6uXNKDTvOZvh4Ya7E=
 * the same with -hmac secrets
 *   -> _1w5kcwiPhSx2HcxzC2-PgJjXiNjohgOWGWazAwYc8c= */
#define KAT_SECRE "1700000000000.56ozysiaMeG-n-u0i84QZNrdjA6uXNKDTvOZvh4Ya7E"
#define KAT_SECRETS "1700000000000._1w5kcwiPhSx2HcxzC2-PgJjXiNjohgOWGWazAwYc8c"

START_TEST(secret_switches)
{
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(sb_token_sign(SECRET, "s-1", 1700000000000LL, tok, sizeof tok), 0);
        ck_assert_str_eq(tok, KAT);
        ck_assert_int_eq(sb_token_sign("secre", "s-1", 1700000000000LL, tok, sizeof tok), 0);
        ck_assert_str_eq(tok, KAT_SECRE);
        ck_assert_int_eq(sb_token_verify("secrets", "s-1", KAT_SECRETS, 0, NULL), SB_TOKEN_OK);
        ck_assert_int_eq(sb_token_verify("secrets", "s-1", KAT, 0, NULL), SB_TOKEN_BAD);
        ck_assert_int_eq(sb_token_verify(SECRET, "s-1", KAT_SECRETS, 0, NULL), SB_TOKEN_BAD);
        ck_assert_int_eq(sb_token_verify(SECRET, "s-1", KAT, 0, NULL), SB_TOKEN_OK);
        /* a failed call (invalid argument) leaves the next one correct */
        ck_assert_int_eq(sb_token_sign("", "s-1", 1, tok, sizeof tok), -1);
    }
}
END_TEST

/* Four threads sign and verify at the same time, each with its own context (valgrind checks
 * that every thread's context is freed when the thread ends). */
static void *sign_many(void *arg)
{
    const char *secret = arg;
    const char *want = !strcmp(secret, "secre") ? KAT_SECRE : !strcmp(secret, "secrets") ? KAT_SECRETS : KAT;
    char t[SB_TOKEN_MAX];
    for (int i = 0; i < 200; i++) {
        if (sb_token_sign(secret, "s-1", 1700000000000LL, t, sizeof t) != 0 || strcmp(t, want))
            return (void *)1;
        if (sb_token_verify(secret, "s-1", want, 0, NULL) != SB_TOKEN_OK) return (void *)1;
    }
    return NULL;
}

START_TEST(threads)
{
    const char *secrets[] = {SECRET, "secre", "secrets", "secre"};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, sign_many, (void *)secrets[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = (void *)1;
        ck_assert_int_eq(pthread_join(th[i], &rc), 0);
        ck_assert_ptr_null(rc);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("token");
    tcase_add_test(tc, known_answer);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, any_changed_character_is_bad);
    tcase_add_test(tc, non_canonical_last_character_is_bad);
    tcase_add_test(tc, other_survey_or_secret_is_bad);
    tcase_add_test(tc, tampered_expiry_is_bad);
    tcase_add_test(tc, expired);
    tcase_add_test(tc, malformed_is_bad);
    tcase_add_test(tc, invalid_arguments);
    tcase_add_test(tc, secret_switches);
    tcase_add_test(tc, threads);
    suite_add_tcase(s, tc);

    return sb_unit_run(s);
}
