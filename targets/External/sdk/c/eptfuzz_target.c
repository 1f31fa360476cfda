/*
 * eptfuzz C SDK, protocol version 1 (targets/External/PROTOCOL.md). One file, C11,
 * libc + POSIX: framing, the message loop, the arena and its page allocator, events,
 * address conversion, and the hardening that turns a stray write into a crash.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700

#include "eptfuzz_target.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define EPTFUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EPTFUZZ_ASAN 1
#endif
#endif

#define MAX_BODY (1u << 20)

/* Command codes (harness -> target). */
enum {
    CMD_HELLO = 0x01, CMD_RESET = 0x02, CMD_SET_EPTP = 0x03, CMD_SET_CONTROLS = 0x04, CMD_JOURNAL = 0x05,
    CMD_MAP = 0x10, CMD_UNMAP = 0x11, CMD_PROTECT = 0x12, CMD_RETYPE = 0x13,
    CMD_SPLIT = 0x14, CMD_MERGE = 0x15, CMD_MEMORY = 0x16, CMD_IDENTITY_MAP = 0x17,
    CMD_INVEPT = 0x18, CMD_WALK = 0x20, CMD_WRITE = 0x21, CMD_ACK = 0x30,
};

/* Answer codes (target -> harness). */
enum {
    ANS_REPLY = 0x80, ANS_HELLO = 0x81, ANS_WALK = 0x82, ANS_NOTIFY = 0x83,
    ANS_FAULT = 0x84, ANS_ERROR = 0x85, ANS_EVENTS = 0x86,
};

enum { EVENT_ALLOC = 1, EVENT_FREE = 2, EVENT_INVEPT = 3, EVENT_WRITE = 4 };
enum { FAULT_DOUBLE_FREE = 1, FAULT_FREE_NOT_TAKEN = 2, FAULT_FAIL = 3 };

/* Operation bits of the HELLO reply. */
enum {
    OP_MAP = 1u << 0, OP_UNMAP = 1u << 1, OP_PROTECT = 1u << 2, OP_RETYPE = 1u << 3,
    OP_SPLIT = 1u << 4, OP_MERGE = 1u << 5, OP_IDENTITY_MAP = 1u << 6, OP_INVEPT = 1u << 7,
    OP_WALK5 = 1u << 8, OP_AD = 1u << 9, OP_MBEC = 1u << 10, OP_JOURNAL = 1u << 11,
};

/* What the SDK knows of each arena page in the current case. */
enum { PAGE_NEVER = 0, PAGE_HELD = 1, PAGE_FREED = 2 };

static const struct eptfuzz_target *target;
static int in_fd = -1, out_fd = -1;

static uint8_t *arena;
static uint32_t arena_pages;
static uint8_t *page_state;
static uint64_t arena_hpa;
static uint32_t usable_pages;
/* Pages at and above this were not touched in this case (RESET zeroes the ones below). */
static uint32_t high_water;
/* Every page below this is held: the allocator hands out the lowest free page. */
static uint32_t first_maybe_free;
static int own_allocator;

/* Journal mode (PROTOCOL.md): what the harness was last told of each held page, and which those are. */
static int journaling;
static unsigned operations_since_reset;
static uint8_t *shadow;          /* arena_pages pages after the arena in its file; NULL: no journal */
static uint32_t *held_pages;     /* the held pages, in no order */
static uint32_t *held_slot;      /* where each held page sits in held_pages */
static uint32_t held_count;

/* The command being answered. */
static int in_command;
static int answering_invept;
static int resource_limit_hit;

/* ------------------------------------------------------------------ buffers */

struct buffer {
    uint8_t *bytes;
    size_t length, capacity;
};

static struct buffer out;    /* the answer being built */
static struct buffer events; /* events since the last answer */
static uint32_t event_count;
static uint8_t *in_body;     /* the command being read */
/* Input is read in large pieces: a harness that sends commands ahead sends many in one write. */
static uint8_t *in_buffer;
static size_t in_start, in_end;
#define IN_BUFFER (1u << 16)

static void die(const char *message)
{
    dprintf(2, "eptfuzz: %s\n", message);
    exit(3);
}

static void put_bytes(struct buffer *b, const void *bytes, size_t n)
{
    if (n == 0)
        return;
    if (b->length + n > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 256;
        while (capacity < b->length + n)
            capacity *= 2;
        b->bytes = realloc(b->bytes, capacity);
        if (!b->bytes)
            die("out of memory");
        b->capacity = capacity;
    }
    memcpy(b->bytes + b->length, bytes, n);
    b->length += n;
}

/* Little-endian, no padding. */
static void put_uint(struct buffer *b, uint64_t value, int size)
{
    uint8_t bytes[8];
    for (int i = 0; i < size; i++)
        bytes[i] = (uint8_t)(value >> (8 * i));
    put_bytes(b, bytes, (size_t)size);
}

static void put_text(struct buffer *b, const char *text)
{
    size_t n = strlen(text);
    if (n > 0xffff)
        n = 0xffff;
    put_uint(b, n, 2);
    put_bytes(b, text, n);
}

/* ------------------------------------------------------------------ framing */

static void write_all(const uint8_t *bytes, size_t n)
{
    while (n > 0) {
        ssize_t written = write(out_fd, bytes, n);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            die("cannot write to the harness (it is gone?)");
        bytes += written;
        n -= (size_t)written;
    }
}

/* A short wait for the next command before blocking in read(): the harness usually sends it
 * within microseconds, and sleeping and waking again costs more than that (tens of
 * microseconds to wake an idle CPU of a virtual machine). It yields between checks, so a
 * harness on the same CPU still runs. */
static void wait_briefly_for_input(void)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct pollfd p = { .fd = in_fd, .events = POLLIN };
    do {
        if (poll(&p, 1, 0) != 0)
            return;
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 50000L);
}

/* 1: all read; 0: end of input before the first byte; -1: end of input midway. */
static int read_all(uint8_t *bytes, size_t n)
{
    size_t done = 0;
    while (done < n) {
        if (in_start == in_end) {
            wait_briefly_for_input();
            ssize_t got = read(in_fd, in_buffer, IN_BUFFER);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                die("cannot read from the harness");
            if (got == 0)
                return done == 0 ? 0 : -1;
            in_start = 0;
            in_end = (size_t)got;
        }
        size_t take = in_end - in_start < n - done ? in_end - in_start : n - done;
        memcpy(bytes + done, in_buffer + in_start, take);
        in_start += take;
        done += take;
    }
    return 1;
}

static void begin_answer(uint8_t code)
{
    out.length = 0;
    put_uint(&out, 0, 4); /* the length, filled in by send_answer */
    put_uint(&out, code, 1);
}

/* The answer begun in `out` goes out in one write: begin_answer kept its first four bytes for the
 * length, so the harness is woken once per answer, not once for the prefix and again for the body. */
static void send_answer(void)
{
    size_t length = out.length - 4;
    for (int i = 0; i < 4; i++)
        out.bytes[i] = (uint8_t)(length >> (8 * i));
    write_all(out.bytes, out.length);
}

/* ERROR: the target cannot go on (the harness broke the protocol, or the target is unusable). */
static _Noreturn void send_error(const char *format, ...)
{
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    dprintf(2, "eptfuzz: %s\n", message);
    begin_answer(ANS_ERROR);
    put_text(&out, message);
    send_answer();
    exit(2);
}

static _Noreturn void send_fault(int kind, const char *message)
{
    dprintf(2, "eptfuzz: %s\n", message);
    begin_answer(ANS_FAULT);
    put_uint(&out, (uint64_t)kind, 1);
    put_text(&out, message);
    send_answer();
    exit(1);
}

/* Reads one frame's body into in_body; returns its length, or -1 at end of input. */
static long read_frame(void)
{
    uint8_t prefix[4];
    int status = read_all(prefix, 4);
    if (status == 0)
        return -1;
    if (status < 0)
        die("end of input inside a frame's length");
    uint32_t length = (uint32_t)prefix[0] | (uint32_t)prefix[1] << 8 | (uint32_t)prefix[2] << 16 | (uint32_t)prefix[3] << 24;
    if (length == 0 || length > MAX_BODY)
        send_error("a frame of %u bytes (1 to %u allowed)", length, MAX_BODY);
    if (read_all(in_body, length) != 1)
        die("end of input inside a frame");
    return (long)length;
}

/* A command's payload, read field by field. */
struct reader {
    const uint8_t *bytes;
    size_t length, at;
    const char *command;
};

static uint64_t get_uint(struct reader *r, int size)
{
    if (r->at + (size_t)size > r->length)
        send_error("%s: the body is too short (%zu bytes)", r->command, r->length);
    uint64_t value = 0;
    for (int i = 0; i < size; i++)
        value |= (uint64_t)r->bytes[r->at + (size_t)i] << (8 * i);
    r->at += (size_t)size;
    return value;
}

static void get_end(const struct reader *r)
{
    if (r->at != r->length)
        send_error("%s: %zu bytes after the payload", r->command, r->length - r->at);
}

/* ------------------------------------------------------------------ events */

static void add_event(uint8_t kind, uint32_t value)
{
    if (events.length + 13 > MAX_BODY - 64)
        eptfuzz_fail("more events in one operation than a frame holds");
    put_uint(&events, kind, 1);
    put_uint(&events, value, 4);
    event_count++;
}

static void put_events(void)
{
    put_uint(&out, event_count, 4);
    put_bytes(&out, events.bytes, events.length);
    events.length = 0;
    event_count = 0;
}

/* Journal mode: events beyond this go ahead in an EVENTS answer, so that no operation outgrows a frame. */
#define EVENTS_AHEAD (256u * 1024u)

static void add_write(uint32_t index, uint64_t value)
{
    if (events.length + 13 > EVENTS_AHEAD) {
        /* Never while an answer is being built: the journal is read before one starts. */
        begin_answer(ANS_EVENTS);
        put_events();
        send_answer();
    }
    add_event(EVENT_WRITE, index);
    put_uint(&events, value, 8);
}

/* ------------------------------------------------------------------ failures */

void eptfuzz_fail(const char *format, ...)
{
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    send_fault(FAULT_FAIL, message);
}

/* ------------------------------------------------------------------ foreign memory */

/* Host memory outside the arena that the harness sent with WRITE: a small open-addressing
 * hash of 4 KiB pages, each its own read-only mapping. */
#define FOREIGN_SLOTS 4096u

struct foreign_page {
    uint64_t hpa; /* page address; 0 with page NULL = empty slot */
    uint8_t *page;
};

static struct foreign_page foreign[FOREIGN_SLOTS];

static struct foreign_page *foreign_slot(uint64_t page_hpa)
{
    uint32_t i = (uint32_t)((page_hpa >> 12) * 0x9E3779B1u) % FOREIGN_SLOTS;
    for (uint32_t n = 0; n < FOREIGN_SLOTS; n++, i = (i + 1) % FOREIGN_SLOTS) {
        if (!foreign[i].page || foreign[i].hpa == page_hpa)
            return &foreign[i];
    }
    return NULL;
}

static void foreign_write(uint64_t hpa, uint64_t value)
{
    struct foreign_page *slot = foreign_slot(hpa & ~0xFFFull);
    if (!slot)
        send_error("WRITE to more than %u pages outside the arena", FOREIGN_SLOTS);
    if (!slot->page) {
        void *page = mmap(NULL, EPTFUZZ_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            die("cannot map a page for host memory outside the arena");
        slot->page = page;
        slot->hpa = hpa & ~0xFFFull;
    }
    mprotect(slot->page, EPTFUZZ_PAGE_SIZE, PROT_READ | PROT_WRITE);
    memcpy(slot->page + (hpa & 0xFFF), &value, 8);
    mprotect(slot->page, EPTFUZZ_PAGE_SIZE, PROT_READ);
}

static void foreign_forget(void)
{
    for (uint32_t i = 0; i < FOREIGN_SLOTS; i++) {
        if (foreign[i].page)
            munmap(foreign[i].page, EPTFUZZ_PAGE_SIZE);
        foreign[i].page = NULL;
        foreign[i].hpa = 0;
    }
}

/* ------------------------------------------------------------------ the arena */

static void protect_pages(uint32_t first, uint32_t count, int protection)
{
    if (count > 0 && mprotect(arena + (size_t)first * EPTFUZZ_PAGE_SIZE, (size_t)count * EPTFUZZ_PAGE_SIZE, protection) != 0)
        die("mprotect on the arena failed");
}

/* The arena page a pointer is in, or -1. */
static long arena_index(const void *pointer)
{
    const uint8_t *p = pointer;
    if (!arena || p < arena || p >= arena + (size_t)arena_pages * EPTFUZZ_PAGE_SIZE)
        return -1;
    return (long)((size_t)(p - arena) / EPTFUZZ_PAGE_SIZE);
}

static void map_arena(const char *path, uint32_t pages)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        send_error("cannot open the arena %s: %s", path, strerror(errno));
    /* Mapped inaccessible: a page becomes read-write while the target holds it. */
    void *mapping = mmap(NULL, (size_t)pages * EPTFUZZ_PAGE_SIZE, PROT_NONE, MAP_SHARED, fd, 0);
    /* The journal's copy follows the arena in the file (PROTOCOL.md "Journal mode"). */
    struct stat st;
    void *copy = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= 2ull * pages * EPTFUZZ_PAGE_SIZE)
        copy = mmap(NULL, (size_t)pages * EPTFUZZ_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)pages * EPTFUZZ_PAGE_SIZE);
    close(fd);
    if (mapping == MAP_FAILED)
        send_error("cannot map the arena %s (%u pages): %s", path, pages, strerror(errno));
    shadow = copy == MAP_FAILED ? NULL : copy;
    arena = mapping;
    arena_pages = pages;
    page_state = calloc(pages, 1);
    held_pages = calloc(pages, sizeof *held_pages);
    held_slot = calloc(pages, sizeof *held_slot);
    if (!page_state || !held_pages || !held_slot)
        die("out of memory");
}

/* ------------------------------------------------------------------ the journal */

static void hold(uint32_t i)
{
    page_state[i] = PAGE_HELD;
    held_slot[i] = held_count;
    held_pages[held_count++] = i;
}

static void unhold(uint32_t i)
{
    uint32_t last = held_pages[--held_count];
    held_pages[held_slot[i]] = last;
    held_slot[last] = held_slot[i];
}

/* Journal mode: every word of page i that changed since the harness was last told is a WRITE event. */
static void journal_page(uint32_t i)
{
    uint64_t *live = (uint64_t *)(arena + (size_t)i * EPTFUZZ_PAGE_SIZE);
    uint64_t *known = (uint64_t *)(shadow + (size_t)i * EPTFUZZ_PAGE_SIZE);
    if (memcmp(live, known, EPTFUZZ_PAGE_SIZE) == 0)
        return;
    for (uint32_t w = 0; w < EPTFUZZ_PAGE_SIZE / 8; w++) {
        if (live[w] != known[w]) {
            add_write(i * (EPTFUZZ_PAGE_SIZE / 8) + w, live[w]);
            known[w] = live[w];
        }
    }
}

static void journal_held(void)
{
    if (!journaling)
        return;
    for (uint32_t n = 0; n < held_count; n++)
        journal_page(held_pages[n]);
}

/* RESET: every page handed out in the last case is taken back (no FREE events) and zeroed. */
static void forget_allocations(void)
{
    protect_pages(0, high_water, PROT_READ | PROT_WRITE);
    for (uint32_t i = 0; i < high_water; i++) {
        if (page_state[i] != PAGE_NEVER) {
            memset(arena + (size_t)i * EPTFUZZ_PAGE_SIZE, 0, EPTFUZZ_PAGE_SIZE);
            if (shadow)
                memset(shadow + (size_t)i * EPTFUZZ_PAGE_SIZE, 0, EPTFUZZ_PAGE_SIZE);
        }
        page_state[i] = PAGE_NEVER;
    }
    held_count = 0;
    journaling = 0;
    protect_pages(0, high_water, PROT_NONE);
    high_water = 0;
    first_maybe_free = 0;
    own_allocator = 0;
}

void *eptfuzz_page_alloc(void)
{
    if (own_allocator)
        eptfuzz_fail("eptfuzz_page_alloc in a case that uses its own allocator (eptfuzz_arena)");
    uint32_t i = first_maybe_free;
    while (i < usable_pages && page_state[i] == PAGE_HELD)
        i++;
    if (i == usable_pages) {
        resource_limit_hit = 1;
        return NULL;
    }
    uint8_t *page = arena + (size_t)i * EPTFUZZ_PAGE_SIZE;
    protect_pages(i, 1, PROT_READ | PROT_WRITE);
    memset(page, 0, EPTFUZZ_PAGE_SIZE);
    hold(i);
    first_maybe_free = i + 1;
    if (high_water < i + 1)
        high_water = i + 1;
    add_event(EVENT_ALLOC, i);
    return page;
}

/* The checks every release makes; returns the page's index. */
static uint32_t release(void *page, const char *who)
{
    char message[160];
    long i = arena_index(page);
    if (i < 0 || ((uint8_t *)page - arena) % EPTFUZZ_PAGE_SIZE != 0) {
        snprintf(message, sizeof message, "%s(%p): not an arena page", who, page);
        send_fault(FAULT_FREE_NOT_TAKEN, message);
    }
    if (page_state[i] == PAGE_FREED) {
        snprintf(message, sizeof message, "%s: arena page %ld released twice", who, i);
        send_fault(FAULT_DOUBLE_FREE, message);
    }
    if (page_state[i] != PAGE_HELD) {
        snprintf(message, sizeof message, "%s: arena page %ld released but never taken", who, i);
        send_fault(FAULT_FREE_NOT_TAKEN, message);
    }
    /* The writes it had before it went are the last the harness hears of it. */
    if (journaling)
        journal_page((uint32_t)i);
    page_state[i] = PAGE_FREED;
    unhold((uint32_t)i);
    if ((uint32_t)i < first_maybe_free)
        first_maybe_free = (uint32_t)i;
    add_event(EVENT_FREE, (uint32_t)i);
    return (uint32_t)i;
}

void eptfuzz_page_free(void *page)
{
    if (own_allocator)
        eptfuzz_fail("eptfuzz_page_free in a case that uses its own allocator (eptfuzz_arena)");
    protect_pages(release(page, "eptfuzz_page_free"), 1, PROT_NONE);
}

void eptfuzz_arena(void **base, size_t *pages)
{
    if (!in_command || high_water > 0)
        eptfuzz_fail("eptfuzz_arena is called in reset, before any page is taken");
    own_allocator = 1;
    high_water = usable_pages;
    protect_pages(0, usable_pages, PROT_READ | PROT_WRITE);
    *base = arena;
    *pages = usable_pages;
}

void eptfuzz_note_alloc(void *page)
{
    long i = arena_index(page);
    if (!own_allocator)
        eptfuzz_fail("eptfuzz_note_alloc without eptfuzz_arena");
    if (i < 0 || (uint32_t)i >= usable_pages || ((uint8_t *)page - arena) % EPTFUZZ_PAGE_SIZE != 0)
        eptfuzz_fail("eptfuzz_note_alloc(%p): not one of this case's arena pages", page);
    if (page_state[i] == PAGE_HELD)
        eptfuzz_fail("eptfuzz_note_alloc: arena page %ld taken twice", i);
    hold((uint32_t)i);
    add_event(EVENT_ALLOC, (uint32_t)i);
}

void eptfuzz_note_free(void *page)
{
    if (!own_allocator)
        eptfuzz_fail("eptfuzz_note_free without eptfuzz_arena");
    release(page, "eptfuzz_note_free");
}

uint64_t eptfuzz_virt_to_phys(const void *pointer)
{
    long i = arena_index(pointer);
    if (i >= 0)
        return arena_hpa + (uint64_t)((const uint8_t *)pointer - arena);
    for (uint32_t s = 0; s < FOREIGN_SLOTS; s++) {
        const uint8_t *page = foreign[s].page;
        if (page && (const uint8_t *)pointer >= page && (const uint8_t *)pointer < page + EPTFUZZ_PAGE_SIZE)
            return foreign[s].hpa + (uint64_t)((const uint8_t *)pointer - page);
    }
    eptfuzz_fail("eptfuzz_virt_to_phys(%p): not in the arena", pointer);
}

void *eptfuzz_phys_to_virt(uint64_t hpa)
{
    if (hpa >= arena_hpa && hpa - arena_hpa < (uint64_t)usable_pages * EPTFUZZ_PAGE_SIZE) {
        uint64_t offset = hpa - arena_hpa;
        uint32_t i = (uint32_t)(offset / EPTFUZZ_PAGE_SIZE);
        return own_allocator || page_state[i] == PAGE_HELD ? arena + offset : NULL;
    }
    struct foreign_page *slot = foreign_slot(hpa & ~0xFFFull);
    return slot && slot->page ? slot->page + (hpa & 0xFFF) : NULL;
}

int eptfuzz_page_held(const void *pointer)
{
    long i = arena_index(pointer);
    return i >= 0 && (uint32_t)i < usable_pages && page_state[i] == PAGE_HELD;
}

/* ------------------------------------------------------------------ INVEPT */

void eptfuzz_invept(int type)
{
    if (type != EPTFUZZ_INVEPT_SINGLE && type != EPTFUZZ_INVEPT_GLOBAL)
        eptfuzz_fail("eptfuzz_invept(%d): the type is 1 (single-context) or 2 (global)", type);
    if (!in_command)
        eptfuzz_fail("eptfuzz_invept outside an operation");
    /* The writes before the invalidation come before it. */
    journal_held();
    add_event(EVENT_INVEPT, (uint32_t)type);
    if (answering_invept || journaling)
        return; /* the event goes in the reply; in journal mode the harness needs no stop here */
    /* Stop here until the harness has read the arena: NOTIFY, then wait for ACK. */
    begin_answer(ANS_NOTIFY);
    put_events();
    send_answer();
    long length = read_frame();
    if (length < 0)
        exit(0);
    if (length != 1 || in_body[0] != CMD_ACK)
        send_error("command 0x%02x where ACK (0x30) belongs after NOTIFY", in_body[0]);
}

/* ------------------------------------------------------------------ hardening */

#ifndef EPTFUZZ_ASAN
static char alternate_stack[64 * 1024];

/* Async-signal-safe: appends text or a hex number to a fixed buffer. */
static size_t append(char *line, size_t at, const char *text)
{
    while (*text && at < 255)
        line[at++] = *text++;
    return at;
}

static size_t append_hex(char *line, size_t at, uint64_t value)
{
    char digits[19] = "0x";
    int n = 2;
    for (int shift = 60; shift >= 0; shift -= 4) {
        unsigned digit = (unsigned)(value >> shift) & 0xF;
        if (digit || n > 2 || shift == 0)
            digits[n++] = "0123456789abcdef"[digit];
    }
    digits[n] = 0;
    return append(line, at, digits);
}

/* One line naming the arena page a fault hit, then the default action (a crash). */
static void on_fault(int signal_number, siginfo_t *info, void *context)
{
    (void)context;
    char line[256];
    size_t at = append(line, 0, signal_number == SIGBUS ? "eptfuzz: SIGBUS at " : "eptfuzz: SIGSEGV at ");
    at = append_hex(line, at, (uint64_t)(uintptr_t)info->si_addr);
    long i = arena_index(info->si_addr);
    if (i < 0) {
        at = append(line, at, ", not in the arena");
    } else {
        at = append(line, at, ", arena page ");
        at = append_hex(line, at, (uint64_t)i);
        if (page_state[i] == PAGE_FREED)
            at = append(line, at, ", freed earlier in this case (use after free)");
        else if (page_state[i] == PAGE_NEVER)
            at = append(line, at, ", never taken in this case (outside the pages the target holds)");
        else
            at = append(line, at, ", held");
    }
    line[at++] = '\n';
    ssize_t ignored = write(2, line, at);
    (void)ignored;
    raise(signal_number); /* SA_RESETHAND: the default action now */
}

static void install_fault_handler(void)
{
    stack_t stack = { .ss_sp = alternate_stack, .ss_size = sizeof alternate_stack };
    sigaltstack(&stack, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, NULL);
    sigaction(SIGBUS, &action, NULL);
}
#else
/* AddressSanitizer reports faults itself, better than this handler could. */
static void install_fault_handler(void)
{
}
#endif

/* ------------------------------------------------------------------ commands */

static unsigned operations_of(const struct eptfuzz_target *t)
{
    unsigned ops = 0;
    ops |= t->map ? OP_MAP : 0;
    ops |= t->unmap ? OP_UNMAP : 0;
    ops |= t->protect ? OP_PROTECT : 0;
    ops |= t->retype ? OP_RETYPE : 0;
    ops |= t->split ? OP_SPLIT : 0;
    ops |= t->merge ? OP_MERGE : 0;
    ops |= t->memory_range && t->identity_map ? OP_IDENTITY_MAP : 0;
    ops |= t->invept ? OP_INVEPT : 0;
    ops |= t->features & EPTFUZZ_FEATURE_WALK5 ? OP_WALK5 : 0;
    ops |= t->features & EPTFUZZ_FEATURE_AD ? OP_AD : 0;
    ops |= t->features & EPTFUZZ_FEATURE_MBEC ? OP_MBEC : 0;
    ops |= shadow ? OP_JOURNAL : 0; /* this SDK keeps one where the arena file has room for it */
    return ops;
}

static void hello(struct reader *r)
{
    uint32_t version = (uint32_t)get_uint(r, 4);
    uint32_t pages = (uint32_t)get_uint(r, 4);
    size_t n = (size_t)get_uint(r, 2);
    if (r->at + n > r->length)
        send_error("HELLO: the arena path is cut short");
    char path[4096];
    if (n >= sizeof path)
        send_error("HELLO: an arena path of %zu bytes", n);
    memcpy(path, r->bytes + r->at, n);
    path[n] = 0;
    r->at += n;
    get_end(r);
    if (version != EPTFUZZ_PROTOCOL_VERSION)
        send_error("the harness speaks target protocol version %u; this SDK speaks version %d", version, EPTFUZZ_PROTOCOL_VERSION);
    if (arena)
        send_error("a second HELLO");
    if (!target->name || !target->reset || !target->set_eptp)
        send_error("the target lacks a name, reset or set_eptp");
    if (pages == 0)
        send_error("HELLO: an arena of 0 pages");
    map_arena(path, pages);
    install_fault_handler();

    unsigned walkers = (target->walk_gpa ? 1u : 0u) | (target->walk_gva ? 2u : 0u);
    begin_answer(ANS_HELLO);
    put_uint(&out, EPTFUZZ_PROTOCOL_VERSION, 4);
    put_uint(&out, operations_of(target), 4);
    put_uint(&out, target->page_sizes & 7u, 1);
    put_uint(&out, walkers, 1);
    put_text(&out, target->name);
    send_answer();
}

static void reply(enum eptfuzz_result result, const uint64_t *eptp)
{
    if ((unsigned)result > EPTFUZZ_RESOURCE_LIMIT)
        eptfuzz_fail("an operation returned %d, which is no result", (int)result);
    if (resource_limit_hit)
        result = EPTFUZZ_RESOURCE_LIMIT;
    journal_held();
    begin_answer(ANS_REPLY);
    put_uint(&out, (uint64_t)result, 1);
    put_events();
    if (eptp)
        put_uint(&out, *eptp, 8);
    send_answer();
}

static enum eptfuzz_result reset(struct reader *r)
{
    uint64_t hpa = get_uint(r, 8);
    uint32_t usable = (uint32_t)get_uint(r, 4);
    struct eptfuzz_cpu cpu;
    cpu.maxphyaddr = (unsigned)get_uint(r, 1);
    cpu.flags = (unsigned)get_uint(r, 2);
    get_end(r);
    if (usable > arena_pages)
        send_error("RESET: %u usable pages in an arena of %u", usable, arena_pages);
    if (hpa & 0xFFF)
        send_error("RESET: arena_hpa 0x%llx is not page-aligned", (unsigned long long)hpa);
    forget_allocations();
    foreign_forget();
    arena_hpa = hpa;
    usable_pages = usable;
    return target->reset(&cpu);
}

/* Calls an operation, or answers Unsupported when the target lacks it. */
#define CALL(function, ...) (target->function ? target->function(__VA_ARGS__) : EPTFUZZ_UNSUPPORTED)

static const char *operation_name(uint8_t code)
{
    switch (code) {
    case CMD_RESET: return "RESET";
    case CMD_SET_EPTP: return "SET_EPTP";
    case CMD_SET_CONTROLS: return "SET_CONTROLS";
    case CMD_JOURNAL: return "JOURNAL";
    case CMD_MAP: return "MAP";
    case CMD_UNMAP: return "UNMAP";
    case CMD_PROTECT: return "PROTECT";
    case CMD_RETYPE: return "RETYPE";
    case CMD_SPLIT: return "SPLIT";
    case CMD_MERGE: return "MERGE";
    case CMD_MEMORY: return "MEMORY";
    case CMD_IDENTITY_MAP: return "IDENTITY_MAP";
    default: return "INVEPT";
    }
}

static void operation(uint8_t code, struct reader *r)
{
    r->command = operation_name(code);
    if (code != CMD_RESET && code != CMD_JOURNAL)
        operations_since_reset++;
    uint64_t a, b, c;
    unsigned p, t, ipat;
    enum eptfuzz_result result = EPTFUZZ_UNSUPPORTED;
    uint64_t eptp = 0;
    switch (code) {
    case CMD_RESET:
        result = reset(r);
        operations_since_reset = 0;
        break;
    case CMD_SET_EPTP:
        t = (unsigned)get_uint(r, 1);
        p = (unsigned)get_uint(r, 1);
        a = get_uint(r, 1);
        get_end(r);
        result = target->set_eptp(t, p, (int)a, &eptp);
        reply(result, &eptp);
        return;
    case CMD_JOURNAL:
        a = get_uint(r, 1);
        get_end(r);
        if (a > 1)
            send_error("JOURNAL %llu (0 off, 1 on)", (unsigned long long)a);
        /* Turned on right after RESET, when the harness knows every page as zero: the pages
         * reset took are reported whole. Off: the writes so far are the last reported. */
        if (a == 1 && operations_since_reset > 0)
            send_error("JOURNAL on after an operation: only right after RESET");
        if (a == 1 && !shadow)
            send_error("JOURNAL on, but the arena file holds no journal copy (2 x arena_pages pages)");
        if (a == 1) {
            journaling = 1;
            journal_held();
        } else {
            journal_held();
            journaling = 0;
        }
        result = EPTFUZZ_OK;
        break;
    case CMD_SET_CONTROLS:
        a = get_uint(r, 1);
        get_end(r);
        result = target->set_controls ? target->set_controls((int)a) : a == 0 ? EPTFUZZ_OK : EPTFUZZ_UNSUPPORTED;
        break;
    case CMD_MAP:
        a = get_uint(r, 8);
        b = get_uint(r, 8);
        c = get_uint(r, 8);
        p = (unsigned)get_uint(r, 1);
        t = (unsigned)get_uint(r, 1);
        ipat = (unsigned)get_uint(r, 1);
        get_end(r);
        result = CALL(map, a, b, c, p, t, (int)ipat);
        break;
    case CMD_UNMAP:
        a = get_uint(r, 8);
        b = get_uint(r, 8);
        get_end(r);
        result = CALL(unmap, a, b);
        break;
    case CMD_PROTECT:
        a = get_uint(r, 8);
        b = get_uint(r, 8);
        p = (unsigned)get_uint(r, 1);
        get_end(r);
        result = CALL(protect, a, b, p);
        break;
    case CMD_RETYPE:
        a = get_uint(r, 8);
        b = get_uint(r, 8);
        t = (unsigned)get_uint(r, 1);
        p = (unsigned)get_uint(r, 1);
        get_end(r);
        result = CALL(retype, a, b, t, (int)p);
        break;
    case CMD_SPLIT:
        a = get_uint(r, 8);
        get_end(r);
        result = CALL(split, a);
        break;
    case CMD_MERGE:
        a = get_uint(r, 8);
        b = get_uint(r, 8);
        get_end(r);
        result = CALL(merge, a, b);
        break;
    case CMD_MEMORY:
        a = get_uint(r, 8);
        b = get_uint(r, 8);
        t = (unsigned)get_uint(r, 1);
        get_end(r);
        result = CALL(memory_range, a, b, t);
        break;
    case CMD_IDENTITY_MAP:
        a = get_uint(r, 8);
        b = get_uint(r, 8);
        get_end(r);
        result = CALL(identity_map, a, b);
        break;
    case CMD_INVEPT:
        t = (unsigned)get_uint(r, 1);
        get_end(r);
        answering_invept = 1;
        result = CALL(invept, (int)t);
        answering_invept = 0;
        break;
    }
    reply(result, NULL);
}

static void walk(struct reader *r)
{
    unsigned space = (unsigned)get_uint(r, 1);
    uint64_t address = get_uint(r, 8);
    get_end(r);
    int (*lookup)(uint64_t, struct eptfuzz_walk *) = space == 0 ? target->walk_gpa : space == 1 ? target->walk_gva : NULL;
    if (!lookup)
        send_error("WALK of address space %u, which this target does not answer", space);
    struct eptfuzz_walk found = { 0, 0, 0 };
    int translated = lookup(address, &found);
    if (translated && found.page_size != 1ull << 12 && found.page_size != 1ull << 21 && found.page_size != 1ull << 30)
        eptfuzz_fail("walk of 0x%llx answered page size %llu (4096, 2 MiB or 1 GiB)", (unsigned long long)address, (unsigned long long)found.page_size);
    begin_answer(ANS_WALK);
    put_uint(&out, translated ? 0 : 1, 1);
    put_uint(&out, translated ? found.hpa : 0, 8);
    put_uint(&out, translated ? found.page_size : 0, 8);
    put_uint(&out, translated ? found.permissions & 0xF : 0, 1);
    send_answer();
}

static void write_outside(struct reader *r)
{
    uint64_t hpa = get_uint(r, 8);
    uint64_t value = get_uint(r, 8);
    get_end(r);
    if (hpa & 7)
        send_error("WRITE to 0x%llx, which is not 8-byte aligned", (unsigned long long)hpa);
    if (hpa >= arena_hpa && hpa - arena_hpa < (uint64_t)usable_pages * EPTFUZZ_PAGE_SIZE)
        send_error("WRITE to 0x%llx, inside the arena", (unsigned long long)hpa);
    foreign_write(hpa, value);
    reply(EPTFUZZ_OK, NULL);
}

static void take_standard_streams(void)
{
    fflush(stdout);
    in_fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
    out_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || out_fd < 0)
        die("cannot take standard input and output for the protocol");
    dup2(2, 1);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, 0);
        if (null != 0)
            close(null);
    }
}

int eptfuzz_main(const struct eptfuzz_target *t)
{
    target = t;
    take_standard_streams();
    signal(SIGPIPE, SIG_DFL);
    in_body = malloc(MAX_BODY);
    in_buffer = malloc(IN_BUFFER);
    if (!in_body || !in_buffer)
        die("out of memory");
    for (;;) {
        long length = read_frame();
        if (length < 0)
            return 0; /* the harness closed standard input */
        struct reader r = { in_body, (size_t)length, 1, "command" };
        uint8_t code = in_body[0];
        if (code != CMD_HELLO && !arena)
            send_error("command 0x%02x before HELLO", code);
        in_command = 1;
        resource_limit_hit = 0;
        events.length = 0;
        event_count = 0;
        switch (code) {
        case CMD_HELLO:
            r.command = "HELLO";
            hello(&r);
            break;
        case CMD_WALK:
            r.command = "WALK";
            walk(&r);
            break;
        case CMD_WRITE:
            r.command = "WRITE";
            write_outside(&r);
            break;
        case CMD_RESET: case CMD_SET_EPTP: case CMD_SET_CONTROLS: case CMD_JOURNAL: case CMD_MAP: case CMD_UNMAP:
        case CMD_PROTECT: case CMD_RETYPE: case CMD_SPLIT: case CMD_MERGE: case CMD_MEMORY:
        case CMD_IDENTITY_MAP: case CMD_INVEPT:
            operation(code, &r);
            break;
        default:
            send_error("unknown command 0x%02x", code);
        }
        in_command = 0;
    }
}
