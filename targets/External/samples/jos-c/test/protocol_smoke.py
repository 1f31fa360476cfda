#!/usr/bin/env python3
"""A standalone protocol driver for the C SDK and the jos-c sample (no eptfuzz needed).

Speaks targets/External/PROTOCOL.md over pipes with a /dev/shm arena, and checks the
answers of a few hand-written scenarios: HELLO, RESET, SET_EPTP, MAP, WALK, UNMAP (with
its NOTIFY/ACK), the identity map, results and their precedence, FAULT, and crashes.

    python3 protocol_smoke.py BUILD_DIR     (BUILD_DIR holds jos-c and the bug-* variants)
"""
import os
import struct
import subprocess
import sys
import tempfile

PAGE = 4096
OK, UNSUPPORTED, UNALIGNED, OUT_OF_RANGE, INVALID_PERMISSION, DUPLICATED, NOT_EXIST = range(7)
R, W, X = 1, 2, 4
UC, WB = 0, 6
FLAGS_DEFAULT = 0x1 | 0x2 | 0x4 | 0x80 | 0x100  # exec-only, 2M, 1G, eptp UC, eptp WB


class Target:
    def __init__(self, path, arena_pages=256):
        fd, self.arena_path = tempfile.mkstemp(prefix="eptfuzz-smoke-", dir="/dev/shm")
        os.ftruncate(fd, arena_pages * PAGE)
        self.arena_fd = fd
        self.arena_pages = arena_pages
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.held = set()
        self.inveptd = 0

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait(timeout=5)
        os.close(self.arena_fd)
        os.unlink(self.arena_path)
        return rc

    def send(self, body):
        self.proc.stdin.write(struct.pack("<I", len(body)) + body)
        self.proc.stdin.flush()

    def receive(self):
        head = self.proc.stdout.read(4)
        if len(head) < 4:
            return None
        (n,) = struct.unpack("<I", head)
        return self.proc.stdout.read(n)

    def hello(self):
        path = self.arena_path.encode()
        self.send(struct.pack("<BIIH", 0x01, 1, self.arena_pages, len(path)) + path)
        body = self.receive()
        assert body[0] == 0x81, body
        version, ops, sizes, walkers, n = struct.unpack_from("<IIBBH", body, 1)
        return version, ops, sizes, walkers, body[13:13 + n].decode()

    def events(self, body, at):
        (count,) = struct.unpack_from("<I", body, at)
        at += 4
        for _ in range(count):
            kind, value = struct.unpack_from("<BI", body, at)
            at += 5
            if kind == 1:
                assert value not in self.held, f"ALLOC of held page {value}"
                self.held.add(value)
            elif kind == 2:
                assert value in self.held, f"FREE of page {value} not held"
                self.held.discard(value)
            elif kind == 3:
                self.inveptd += 1
        return at

    def operation(self, body):
        """Sends an operation; answers NOTIFY with ACK; returns (result, extra bytes) or the FAULT/None."""
        self.send(body)
        while True:
            answer = self.receive()
            if answer is None:
                return ("died", None)
            if answer[0] == 0x83:
                self.events(answer, 1)
                self.send(bytes([0x30]))
                continue
            if answer[0] == 0x84:
                kind, n = struct.unpack_from("<BH", answer, 1)
                return ("fault", (kind, answer[4:4 + n].decode()))
            assert answer[0] == 0x80, answer
            at = self.events(answer, 2)
            return (answer[1], answer[at:])

    def reset(self, maxphyaddr=46, flags=FLAGS_DEFAULT, usable=None):
        usable = self.arena_pages if usable is None else usable
        self.held.clear()
        self.arena_hpa = (1 << maxphyaddr) - usable * PAGE
        return self.operation(struct.pack("<BQIBH", 0x02, self.arena_hpa, usable, maxphyaddr, flags))[0]

    def set_eptp(self, mt=WB, walk=4, ad=0):
        result, extra = self.operation(struct.pack("<BBBB", 0x03, mt, walk, ad))
        return result, struct.unpack("<Q", extra)[0]

    def map(self, gpa, hpa, size, perm, mt=WB, ipat=0):
        return self.operation(struct.pack("<BQQQBBB", 0x10, gpa, hpa, size, perm, mt, ipat))[0]

    def unmap(self, gpa, size):
        return self.operation(struct.pack("<BQQ", 0x11, gpa, size))[0]

    def protect(self, gpa, size, perm):
        return self.operation(struct.pack("<BQQB", 0x12, gpa, size, perm))[0]

    def memory(self, start, end, mt):
        return self.operation(struct.pack("<BQQB", 0x16, start, end, mt))[0]

    def identity_map(self, offset=0, offset_from=0):
        return self.operation(struct.pack("<BQQ", 0x17, offset, offset_from))[0]

    def walk(self, gpa):
        self.send(struct.pack("<BBQ", 0x20, 0, gpa))
        body = self.receive()
        if body is None:
            return "died"
        assert body[0] == 0x82, body
        status, hpa, size, perm = struct.unpack_from("<BQQB", body, 1)
        return None if status == 1 else (hpa, size, perm)

    def arena_word(self, hpa):
        os.lseek(self.arena_fd, hpa - self.arena_hpa, os.SEEK_SET)
        return struct.unpack("<Q", os.read(self.arena_fd, 8))[0]

    def stderr(self):
        return self.proc.stderr.read().decode(errors="replace")


failures = []


def check(name, got, want):
    if got != want:
        failures.append(f"{name}: got {got!r}, want {want!r}")


def scenario_basics(path):
    t = Target(path)
    version, ops, sizes, walkers, name = t.hello()
    check("hello", (version, ops, sizes, walkers, name), (1, 0b11000111, 7, 1, "jos-c"))
    check("reset", t.reset(), OK)
    result, eptp = t.set_eptp()
    check("set_eptp", result, OK)
    check("eptp root", eptp & ~0xFFF, t.arena_hpa)
    check("eptp bits", eptp & 0xFFF, 0x1E)
    check("root held", t.held, {0})
    check("map 4K", t.map(0x1000, 0x5000, PAGE, R | W), OK)
    check("tables", len(t.held), 4)
    check("walk 4K", t.walk(0x1234), (0x5234, PAGE, R | W))
    check("walk unmapped", t.walk(0x2000), None)
    check("map dup", t.map(0x1000, 0x9000, PAGE, R), DUPLICATED)
    check("map 2M over PT", t.map(0, 0x200000, 1 << 21, R), DUPLICATED)
    check("map 2M", t.map(0x200000, 0x40000000, 1 << 21, R | X, UC), OK)
    check("walk 2M", t.walk(0x212345), (0x40012345, 1 << 21, R | X))
    # Precedence: Unsupported, Unaligned, OutOfRange, InvalidPermission, then Duplicated.
    check("size 8K", t.map(0x400000, 0, 2 * PAGE, R), UNSUPPORTED)
    check("unaligned", t.map(0x401000, 0, 1 << 21, W), UNALIGNED)
    check("out of range", t.map(1 << 48, 0, PAGE, W), OUT_OF_RANGE)
    check("hpa range end", t.map(0x3000, (1 << 46) - PAGE, PAGE, R), OK)
    check("write-only", t.map(0x4000, 0, PAGE, W), INVALID_PERMISSION)
    check("reserved type", t.map(0x4000, 0, PAGE, R, 2), INVALID_PERMISSION)
    check("perm none", t.map(0x5000, 0, PAGE, 0, UC), OK)
    check("walk perm none", t.walk(0x5000), None)
    check("unmap perm none", t.unmap(0x5000, PAGE), OK)
    # Partial unmap of the 2M page: split, INVEPT, the rest stays.
    before = t.inveptd
    check("unmap 4K of 2M", t.unmap(0x201000, PAGE), OK)
    check("invept after unmap", t.inveptd, before + 1)
    check("walk rest", t.walk(0x202000), (0x40002000, PAGE, R | X))
    check("walk hole", t.walk(0x201000), None)
    check("unmap not exist", t.unmap(0x200000, 1 << 21), NOT_EXIST)
    check("still there", t.walk(0x200000), (0x40000000, PAGE, R | X))
    check("protect", t.protect(0x200000, PAGE, R), OK)
    check("walk protected", t.walk(0x200000), (0x40000000, PAGE, R))
    # Unmapping everything frees every table but the root.
    check("unmap rest 1", t.unmap(0x200000, PAGE), OK)
    check("unmap rest 2", t.unmap(0x202000, (1 << 21) - 2 * PAGE), OK)
    check("unmap 4K", t.unmap(0x1000, PAGE), OK)
    check("unmap 4K b", t.unmap(0x3000, PAGE), OK)
    check("only root", t.held, {0})
    # A new case starts empty.
    check("reset 2", t.reset(), OK)
    check("eptp 2", t.set_eptp()[0], OK)
    check("walk after reset", t.walk(0x1234), None)
    check("exit status", t.close(), 0)


def scenario_identity(path):
    t = Target(path, arena_pages=64)
    t.hello()
    t.reset()
    t.set_eptp()
    check("memory low", t.memory(0, 0xA0000, WB), OK)
    check("memory vga", t.memory(0xA0000, 0x100000, UC), OK)
    check("memory high", t.memory(0x100000, 0x40000000, WB), OK)
    check("memory overlap", t.memory(0x3000, 0x5000, WB), DUPLICATED)
    check("memory reserved type", t.memory(1 << 40, (1 << 40) + PAGE, 3), INVALID_PERMISSION)
    check("identity", t.identity_map(), OK)
    check("walk low", t.walk(0x9F000), (0x9F000, PAGE, R | W | X))
    check("walk vga", t.walk(0xB8000), (0xB8000, PAGE, R | W | X))
    check("walk 2M", t.walk(0x234567), (0x234567, 1 << 21, R | W | X))
    check("identity twice", t.identity_map(), DUPLICATED)
    check("reset", t.reset(), OK)
    t.set_eptp()
    check("memory 1G", t.memory(0, 1 << 31, WB), OK)
    check("offset map", t.identity_map(1 << 30, 1 << 21), OK)
    check("walk below", t.walk(0x1234), (0x1234, 1 << 21, R | W | X))
    check("walk above", t.walk(0x200000), (0x40200000, 1 << 21, R | W | X))
    check("walk 1G", t.walk(0x40000000), (0x80000000, 1 << 30, R | W | X))
    check("offset out of range", t.reset(), OK)
    t.set_eptp()
    t.memory(0, 1 << 30, WB)
    check("hpa beyond", t.identity_map(1 << 46, 0), OUT_OF_RANGE)
    check("exit status", t.close(), 0)


def scenario_resource_limit(path):
    t = Target(path, arena_pages=8)
    t.hello()
    t.reset(usable=4)
    t.set_eptp()
    check("map fits", t.map(0x1000, 0, PAGE, R), OK)
    check("map needs more", t.map(1 << 39, 0, PAGE, R), 8)
    t.close()


def expect_death(path, variant, steps, want_in_stderr, want_fault=None):
    t = Target(os.path.join(path, variant))
    t.hello()
    t.reset()
    t.set_eptp()
    outcome = None
    for step in steps:
        outcome = step(t)
        if outcome in ("died",) or (isinstance(outcome, tuple) and outcome[0] in ("died", "fault")):
            break
    stderr = t.stderr()
    rc = t.proc.wait(timeout=5)
    if want_fault is not None:
        check(f"{variant} fault", outcome[0] == "fault" and outcome[1][0], want_fault)
    else:
        check(f"{variant} died by a signal or exit", rc != 0, True)
    check(f"{variant} stderr names it", any(w in stderr for w in want_in_stderr.split("|")), True)
    os.close(t.arena_fd)
    os.unlink(t.arena_path)


def main():
    build = sys.argv[1]
    sample = os.path.join(build, "jos-c")
    scenario_basics(sample)
    scenario_identity(sample)
    scenario_resource_limit(sample)
    if os.path.exists(os.path.join(build, "bug-DOUBLE_FREE")):
        unmap_all = [lambda t: t.map(0x1000, 0, PAGE, R), lambda t: t.operation(struct.pack("<BQQ", 0x11, 0x1000, PAGE))]
        expect_death(build, "bug-DOUBLE_FREE", unmap_all, "released twice", want_fault=1)
        expect_death(build, "bug-USE_AFTER_FREE", unmap_all, "SEGV")
        # A raw edit clears bit 7 of the 2 MiB PDE (arena page 2, entry 1): a present
        # non-leaf entry whose "table" is guest memory, not an arena page.
        edit = [lambda t: t.map(0x200000, 0x200000, 1 << 21, R),
                lambda t: os.pwrite(t.arena_fd, struct.pack("<Q", 0x200000 | 0x800 | (WB << 3) | R), 2 * PAGE + 8) and None,
                lambda t: t.operation(struct.pack("<BQQ", 0x11, 0x200000, PAGE))]
        expect_death(build, "bug-LOOKUP_NULL", edit, "SEGV|null pointer")
        sample_edit = Target(sample)
        sample_edit.hello(), sample_edit.reset(), sample_edit.set_eptp()
        for step in edit[:2]:
            step(sample_edit)
        check("sample walks a raw-edited entry", sample_edit.walk(0x200000), None)
        check("sample exit", sample_edit.close(), 0)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("protocol smoke: all checks passed")


if __name__ == "__main__":
    main()
