/*
 * eptfuzz-libfuzzer: the libFuzzer driver of eptfuzz's .NET entry point (EptFuzz.LibFuzzer.dll).
 *
 * libFuzzer runs in this process; the entry point runs in a child .NET process that SharpFuzz's
 * libFuzzer runner (Fuzzer.LibFuzzer.Run) drives. They talk as that runner expects:
 *   - one System V shared memory segment, its id in __LIBFUZZER_SHM_ID: first the 64 KiB trace
 *     map that SharpFuzz's instrumentation counts edges into, then the input (at most 1 MiB);
 *   - two pipes, their descriptor numbers in __LIBFUZZER_CONTROL_PIPE_ID (driver to runner) and
 *     __LIBFUZZER_STATUS_PIPE_ID (runner to driver), each message a native 32-bit integer;
 *   - the runner says 0 once it is ready; then for each input the driver sends its length and
 *     the runner answers 0 (nothing found) or non-zero (an exception escaped: a finding, whose
 *     .ept file the entry point has already written).
 * The trace map is copied into libFuzzer's extra counters after every input: that is the
 * coverage libFuzzer sees. The child is started on the first input, not at initialisation, so
 * the parents of -jobs and -merge=1 (which run no input themselves) start no .NET process.
 *
 * Own flags (libFuzzer ignores flags that start with "--"):
 *   --findings=DIR      where the entry point writes .ept findings (default: the directory of
 *                       -artifact_prefix, else the current directory)
 *   --reduce_time=SEC   how long the entry point reduces a finding before it reports it (default 10)
 *   --known=FILE        a known-divergences file: listed signatures are not findings
 *   --target_path=P     the program to start, and
 *   --target_arg=A      an argument for it, repeatable (default: the entry point next to this
 *                       driver, see choose_default_target)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum
{
    MAP_BYTES = 1 << 16,   /* SharpFuzz's trace map: 16-bit edge indices */
    INPUT_BYTES = 1 << 20, /* the runner's input window after the map */
    CONTROL_FD = 198,      /* the descriptor numbers the child sees */
    STATUS_FD = 199,
    MAX_TARGET_ARGS = 16,
    EXIT_INFRASTRUCTURE = 3, /* README: exit codes */
};

/* libFuzzer reads every byte of this section as an extra coverage counter. */
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t counters[MAP_BYTES];

static const char *target_path = "dotnet";
static const char *target_args[MAX_TARGET_ARGS];
static int target_arg_count;
static char default_target[PATH_MAX];
static char findings[PATH_MAX] = ".";
static const char *reduce_time;
static const char *known;

static pid_t runner;
static int control_fd = -1;
static int status_fd = -1;
static int shm_id = -1;
static uint8_t *shared;

static void fail(const char *what)
{
    fprintf(stderr, "eptfuzz-libfuzzer: %s\n", what);
    _exit(EXIT_INFRASTRUCTURE);
}

static void fail_sys(const char *call)
{
    fprintf(stderr, "eptfuzz-libfuzzer: %s failed: %s\n", call, strerror(errno));
    _exit(EXIT_INFRASTRUCTURE);
}

/* The value of "--name=value" when param is that flag, else NULL. */
static const char *flag_value(const char *param, const char *name)
{
    size_t n = strlen(name);
    return strncmp(param, name, n) == 0 && param[n] == '=' ? param + n + 1 : NULL;
}

static void copy_path(char *to, const char *from)
{
    if (strlen(from) >= PATH_MAX)
    {
        fail("a path is longer than PATH_MAX");
    }
    strcpy(to, from);
}

/* Whether program is an executable file in a directory of PATH. */
static int on_path(const char *program)
{
    const char *path = getenv("PATH");
    char candidate[PATH_MAX];
    while (path && *path)
    {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (n > 0 && snprintf(candidate, sizeof candidate, "%.*s/%s", (int)n, path, program) < (int)sizeof candidate && access(candidate, X_OK) == 0)
        {
            return 1;
        }
        path = end ? end + 1 : NULL;
    }
    return 0;
}

/*
 * The entry point next to this driver: "dotnet EptFuzz.LibFuzzer.dll" where dotnet is on PATH
 * (a build output), else the EptFuzz.LibFuzzer executable itself (a self-contained publish, as a
 * ClusterFuzzLite runner without .NET needs).
 */
static void choose_default_target(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
    {
        fail_sys("readlink(/proc/self/exe)");
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *(slash ? slash + 1 : self) = '\0';

    static char apphost[PATH_MAX];
    if (snprintf(default_target, sizeof default_target, "%sEptFuzz.LibFuzzer.dll", self) >= (int)sizeof default_target
        || snprintf(apphost, sizeof apphost, "%sEptFuzz.LibFuzzer", self) >= (int)sizeof apphost)
    {
        fail("the entry point's path is longer than PATH_MAX");
    }

    if (access(default_target, R_OK) == 0 && on_path("dotnet"))
    {
        target_args[target_arg_count++] = default_target;
    }
    else if (access(apphost, X_OK) == 0)
    {
        target_path = apphost;
    }
    else
    {
        fprintf(stderr, "eptfuzz-libfuzzer: no entry point next to this driver: %s with dotnet on PATH, or the executable %s (build harness/LibFuzzer, or name it with --target_path= and --target_arg=)\n", default_target, apphost);
        _exit(EXIT_INFRASTRUCTURE);
    }
}

static void parse_flags(int argc, char **argv)
{
    int findings_given = 0;
    for (int i = 1; i < argc; i++)
    {
        const char *v;
        if ((v = flag_value(argv[i], "--findings")))
        {
            copy_path(findings, v);
            findings_given = 1;
        }
        else if ((v = flag_value(argv[i], "--reduce_time")))
        {
            reduce_time = v;
        }
        else if ((v = flag_value(argv[i], "--known")))
        {
            known = v;
        }
        else if ((v = flag_value(argv[i], "--target_path")))
        {
            target_path = v;
        }
        else if ((v = flag_value(argv[i], "--target_arg")))
        {
            if (target_arg_count == MAX_TARGET_ARGS)
            {
                fail("too many --target_arg flags");
            }
            target_args[target_arg_count++] = v;
        }
        else if ((v = flag_value(argv[i], "-artifact_prefix")) && !findings_given)
        {
            /* "out/crash-" and "out/" both mean the folder out/. */
            const char *slash = strrchr(v, '/');
            if (slash)
            {
                size_t n = slash == v ? 1 : (size_t)(slash - v); /* without the slash, but "/" stays */
                if (n >= PATH_MAX)
                {
                    fail("-artifact_prefix is longer than PATH_MAX");
                }
                memcpy(findings, v, n);
                findings[n] = '\0';
            }
        }
    }

    if (target_arg_count == 0 && strcmp(target_path, "dotnet") == 0)
    {
        choose_default_target();
    }
}
/* The child's argv: target_path, the target arguments, then extra (NULL-terminated). */
static void exec_target(const char *const *extra)
{
    const char *argv[1 + MAX_TARGET_ARGS + 4];
    int n = 0;
    argv[n++] = target_path;
    for (int i = 0; i < target_arg_count; i++)
    {
        argv[n++] = target_args[i];
    }
    for (; extra && *extra; extra++)
    {
        argv[n++] = *extra;
    }
    argv[n] = NULL;
    execvp(target_path, (char *const *)argv);
    fprintf(stderr, "eptfuzz-libfuzzer: cannot start %s: %s\n", target_path, strerror(errno));
    _exit(127);
}

static int write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0)
    {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
        {
            continue;
        }
        if (n <= 0)
        {
            return 0;
        }
        p += n;
        size -= (size_t)n;
    }
    return 1;
}

static int read_all(int fd, void *data, size_t size)
{
    char *p = data;
    while (size > 0)
    {
        ssize_t n = read(fd, p, size);
        if (n < 0 && errno == EINTR)
        {
            continue;
        }
        if (n <= 0)
        {
            return 0;
        }
        p += n;
        size -= (size_t)n;
    }
    return 1;
}

static void set_env(const char *name, const char *value)
{
    if (value && setenv(name, value, 1) != 0)
    {
        fail_sys("setenv");
    }
}

static void remove_segment(void)
{
    if (shm_id >= 0)
    {
        shmctl(shm_id, IPC_RMID, NULL);
        shm_id = -1;
    }
}

/* How the runner ended, for a message; reaps it. */
static void describe_end(char *text, size_t size, int *exit_code)
{
    int status = 0;
    *exit_code = -1;
    if (waitpid(runner, &status, 0) < 0)
    {
        snprintf(text, size, "could not be waited for (%s)", strerror(errno));
    }
    else if (WIFEXITED(status))
    {
        *exit_code = WEXITSTATUS(status);
        snprintf(text, size, "exited with code %d", *exit_code);
    }
    else if (WIFSIGNALED(status))
    {
        snprintf(text, size, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    }
    else
    {
        snprintf(text, size, "ended (status 0x%x)", status);
    }
}

static void start_runner(void)
{
    int control[2], status[2];
    if (pipe(control) != 0 || pipe(status) != 0)
    {
        fail_sys("pipe");
    }

    shm_id = shmget(IPC_PRIVATE, MAP_BYTES + INPUT_BYTES, IPC_CREAT | IPC_EXCL | 0600);
    if (shm_id < 0)
    {
        fail_sys("shmget");
    }
    atexit(remove_segment);
    shared = shmat(shm_id, NULL, 0);
    if (shared == (void *)-1)
    {
        remove_segment();
        fail_sys("shmat");
    }

    runner = fork();
    if (runner < 0)
    {
        remove_segment();
        fail_sys("fork");
    }

    if (runner == 0)
    {
        /* The runner must not outlive the driver (a libFuzzer timeout exits this process). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(control[0], CONTROL_FD) < 0 || dup2(status[1], STATUS_FD) < 0)
        {
            fail_sys("dup2");
        }
        close(control[0]);
        close(control[1]);
        close(status[0]);
        close(status[1]);

        char id[16];
        snprintf(id, sizeof id, "%d", shm_id);
        set_env("__LIBFUZZER_SHM_ID", id);
        set_env("__LIBFUZZER_CONTROL_PIPE_ID", "198");
        set_env("__LIBFUZZER_STATUS_PIPE_ID", "199");
        set_env("EPTFUZZ_FINDINGS", findings);
        set_env("EPTFUZZ_REDUCE_TIME", reduce_time);
        set_env("EPTFUZZ_KNOWN", known);
        exec_target(NULL);
    }

    close(control[0]);
    close(status[1]);
    control_fd = control[1];
    status_fd = status[0];

    int32_t ready;
    if (!read_all(status_fd, &ready, sizeof ready))
    {
        char how[128];
        int code;
        describe_end(how, sizeof how, &code);
        remove_segment();
        fprintf(stderr, "eptfuzz-libfuzzer: the entry point (%s) %s before it was ready\n", target_path, how);
        _exit(code > 0 ? code : EXIT_INFRASTRUCTURE);
    }

    /* Both processes are attached: the segment goes away when both detach, however they end. */
    remove_segment();
}

/*
 * The runner died on an input (a crash of the .NET process itself, which no exception handler
 * saw): the entry point could not write the finding, so the input is decoded to an .ept file by
 * a second, fresh entry point process before libFuzzer records the crash.
 */
__attribute__((noreturn)) static void runner_died(const uint8_t *data, size_t size)
{
    char how[128];
    int code;
    describe_end(how, sizeof how, &code);
    if (code == EXIT_INFRASTRUCTURE || code == 2)
    {
        /* The entry point said why (infrastructure, or bad settings): not a finding. */
        fprintf(stderr, "eptfuzz-libfuzzer: the entry point %s\n", how);
        _exit(code);
    }

    char input[PATH_MAX + 64], output[PATH_MAX + 64];
    snprintf(input, sizeof input, "%s/.runner-died-%d.input", findings, (int)runner);
    snprintf(output, sizeof output, "%s/finding-runner-died-%d-%ld.ept", findings, (int)runner, (long)time(NULL));
    FILE *f = fopen(input, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
    {
        fprintf(stderr, "eptfuzz-libfuzzer: the entry point %s on this input; writing %s failed: %s\n", how, input, strerror(errno));
        abort();
    }

    pid_t decoder = fork();
    if (decoder == 0)
    {
        const char *extra[] = {"decode", input, output, NULL};
        exec_target(extra);
    }
    int status = 0;
    int decoded = decoder > 0 && waitpid(decoder, &status, 0) == decoder && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    unlink(input);
    if (decoded)
    {
        fprintf(stderr, "eptfuzz-libfuzzer: finding: the entry point %s on this input; its case is written to %s (replay: ./eptfuzz replay %s)\n", how, output, output);
    }
    else
    {
        fprintf(stderr, "eptfuzz-libfuzzer: the entry point %s on this input, and decoding it to %s failed; libFuzzer's crash- file holds the input ('dotnet EptFuzz.LibFuzzer.dll decode FILE' decodes it)\n", how, output);
    }
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    parse_flags(*argc, *argv);
    /* A runner that dies must show up as a failed write, not kill the driver. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!runner)
    {
        start_runner();
    }

    /* The decoder reads a few hundred bytes of choices; anything past the window is ignored anyway. */
    if (size > INPUT_BYTES)
    {
        size = INPUT_BYTES;
    }

    memset(shared, 0, MAP_BYTES);
    memcpy(shared + MAP_BYTES, data, size);
    int32_t length = (int32_t)size;
    int32_t status;
    if (!write_all(control_fd, &length, sizeof length) || !read_all(status_fd, &status, sizeof status))
    {
        runner_died(data, size);
    }

    memcpy(counters, shared, MAP_BYTES);
    if (status != 0)
    {
        /* The entry point printed the finding's line and wrote its .ept file: libFuzzer records the crash. */
        abort();
    }
    return 0;
}
