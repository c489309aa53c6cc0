/* What every unit test program shares. */
#ifndef SB_UNIT_H
#define SB_UNIT_H

#include <check.h>
#include <stdlib.h>

/* Runs the suite (every test in its own process, Check's default) and returns the
 * program's exit status. */
static inline int sb_unit_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
