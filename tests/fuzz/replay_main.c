/* replay_main.c - runs a libFuzzer target's seed corpus and regression
 * inputs once each, without libFuzzer: make test builds every target with
 * the project's compiler (and under SAN=1 with ASan + UBSan) linked to this
 * main, as build/<...>/tests/test_<target>.
 *
 * Reads every file of tests/fuzz/corpus/<target>/ and the files named
 * tests/fuzz/regressions/<target>-...
 * (from the repository root, where make test runs).  A target that finds
 * a problem aborts, which run.sh reports as a crash; otherwise prints
 * "test_<target>: N passed, 0 failed".  FUZZ_RESET_EVERY=1 makes stateful
 * targets start every input from their seeded database.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET"
#endif

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 1 << 16, n = 0, r;
    unsigned char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *p = realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL)
        return -1;
    /* An exact-size copy, so ASan sees any read past the input. */
    unsigned char *exact = malloc(n ? n : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int run_dir(const char *dir, const char *prefix, long *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || (prefix && strncmp(e->d_name, prefix, strlen(prefix)) != 0))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (run_file(path) != 0) {
            fprintf(stderr, "cannot read %s\n", path);
            closedir(d);
            return -1;
        }
        (*count)++;
    }
    closedir(d);
    return 0;
}

int main(void)
{
    long n = 0;
    setenv("FUZZ_RESET_EVERY", "1", 1);
    if (run_dir("tests/fuzz/corpus/" FUZZ_TARGET, NULL, &n) != 0 || n == 0) {
        fprintf(stderr, "no seed corpus for " FUZZ_TARGET " (run from the repository root)\n");
        printf("test_" FUZZ_TARGET ": 0 passed, 1 failed\n");
        return 1;
    }
    if (run_dir("tests/fuzz/regressions", FUZZ_TARGET "-", &n) != 0) {
        printf("test_" FUZZ_TARGET ": %ld passed, 1 failed\n", n);
        return 1;
    }
    printf("test_" FUZZ_TARGET ": %ld passed, 0 failed\n", n);
    return 0;
}
