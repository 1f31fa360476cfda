//! The command loop (PROTOCOL.md, "Commands"): decode, call the adapter, answer.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::process;

use crate::addr::{Gpa, Gva, Pa};
use crate::channel::{self, Frame, ANSWER_HELLO, ANSWER_NOTIFY, ANSWER_REPLY, ANSWER_WALK};
use crate::memory::{self, EVENT_INVEPT};
use crate::page::OutOfPages;
use crate::target::Target;
use crate::types::{ApiError, ApiResult, EptpRequest, GuestPaging, InveptType, MemoryType, Permissions, Processor, Walkers};

/// The protocol version this SDK speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The status a process ends with after a panic in the code under test (Rust's own).
pub const EXIT_PANIC: i32 = 101;

const HELLO: u8 = 0x01;
const RESET: u8 = 0x02;
const SET_EPTP: u8 = 0x03;
const SET_CONTROLS: u8 = 0x04;
const JOURNAL: u8 = 0x05;
const MAP: u8 = 0x10;
const UNMAP: u8 = 0x11;
const PROTECT: u8 = 0x12;
const RETYPE: u8 = 0x13;
const SPLIT: u8 = 0x14;
const MERGE: u8 = 0x15;
const MEMORY: u8 = 0x16;
const IDENTITY_MAP: u8 = 0x17;
const INVEPT: u8 = 0x18;
const WALK: u8 = 0x20;
const WRITE: u8 = 0x21;
const SET_GUEST: u8 = 0x22;
const ACK: u8 = 0x30;

/// FAULT kind 3: a broken invariant of the adapter's own (a crash finding).
const FAULT_ADAPTER: u8 = 3;

thread_local! {
    /// True while an operation runs: the only time `invept` may stop to notify the harness.
    static IN_OPERATION: Cell<bool> = const { Cell::new(false) };
    /// True while the INVEPT command runs: `invept` then puts its event in the reply.
    static IN_INVEPT_COMMAND: Cell<bool> = const { Cell::new(false) };
}

/// Runs `target` as an eptfuzz target: takes standard input and output for the protocol and
/// answers commands until the harness closes standard input. Never returns.
///
/// A panic in the target prints its message on standard error (the harness keeps the tail for
/// the finding) and ends the process with status 101.
pub fn run<T: Target>(mut target: T) -> ! {
    if let Err(e) = channel::open_std() {
        channel::fatal(&format!("cannot take standard input and output: {}", e));
    }
    install_panic_hook();

    let mut body = Vec::with_capacity(256);
    let mut events = Vec::with_capacity(64);
    channel::read_frame(&mut body);
    hello(&target, &body);

    let mut session = Session { eptp: 0, reset: false, operated: false, walkers: target.capabilities().walkers };
    loop {
        channel::read_frame(&mut body);
        session.command(&mut target, &body, &mut events);
    }
}

/// Answers `HELLO`: maps the arena and says who this target is.
fn hello<T: Target>(target: &T, body: &[u8]) {
    let mut r = Body::new(body);
    if r.u8() != HELLO {
        channel::fatal(&format!("the first command is {:#04x}, not HELLO", body.first().copied().unwrap_or(0)));
    }
    let version = r.u32();
    let pages = r.u32();
    let path = r.text();
    r.end();
    if version != PROTOCOL_VERSION {
        channel::fatal(&format!("the harness speaks protocol version {}, this SDK speaks {}", version, PROTOCOL_VERSION));
    }
    if let Err(e) = memory::attach(&path, pages) {
        channel::fatal(&e);
    }
    let caps = match guarded(|| Ok(target.capabilities())) {
        Ok(caps) => caps,
        Err(_) => channel::fatal("capabilities() ran out of arena pages"),
    };
    // Bit 11: this SDK keeps a journal (PROTOCOL.md "Journal mode") where the arena file has room.
    let journal = if memory::can_journal() { 1 << 11 } else { 0 };
    Frame::new(ANSWER_HELLO)
        .u32(PROTOCOL_VERSION)
        .u32(caps.operations.0 | journal)
        .u8(caps.page_sizes.0)
        .u8(caps.walkers.0)
        .text(&caps.name)
        .send();
}

struct Session {
    /// The EPTP of the last successful SET_EPTP (answered again after a failed one).
    eptp: u64,
    reset: bool,
    /// An operation ran since RESET: too late to turn the journal on.
    operated: bool,
    /// The walkers the HELLO reply declared: a WALK of another space breaks the protocol.
    walkers: Walkers,
}

impl Session {
    fn command<T: Target>(&mut self, target: &mut T, body: &[u8], events: &mut Vec<(u8, u32)>) {
        let mut r = Body::new(body);
        let code = r.u8();
        if code != RESET && code != WRITE && !self.reset {
            channel::fatal(&format!("command {:#04x} before the first RESET", code));
        }
        if matches!(code, SET_EPTP | SET_CONTROLS | MAP..=INVEPT) {
            self.operated = true;
        }
        match code {
            RESET => {
                let arena_hpa = r.u64();
                let usable = r.u32();
                let max_phys_addr = r.u8();
                let flags = r.u16();
                r.end();
                if let Err(e) = memory::begin_reset(arena_hpa, usable) {
                    channel::fatal(&e);
                }
                let cpu = Processor::from_flags(max_phys_addr, flags);
                let result = operation(|| target.reset(&cpu));
                memory::end_reset();
                self.eptp = 0;
                self.reset = true;
                self.operated = false;
                reply(result, events, None);
            }
            JOURNAL => {
                let on = r.flag();
                r.end();
                if on && self.operated {
                    channel::fatal("JOURNAL on after an operation: only right after RESET");
                }
                if let Err(e) = memory::set_journal(on) {
                    channel::fatal(&e);
                }
                reply(Ok(()), events, None);
            }
            SET_EPTP => {
                let request = EptpRequest { memory_type: MemoryType(r.u8()), walk_length: r.u8(), accessed_dirty: r.flag() };
                r.end();
                let mut root = Pa::new(0);
                let result = operation(|| target.set_eptp(&request).map(|pa| root = pa));
                if result.is_ok() {
                    self.eptp = request.eptp(root.into_u64());
                }
                reply(result, events, Some(self.eptp));
            }
            SET_CONTROLS => {
                let mbec = r.flag();
                r.end();
                reply(operation(|| target.set_controls(mbec)), events, None);
            }
            MAP => {
                let (gpa, hpa, size) = (Gpa::new(r.u64()), Pa::new(r.u64()), r.u64());
                let (permissions, memory_type, ignore_pat) = (Permissions::from_bits(r.u8()), MemoryType(r.u8()), r.flag());
                r.end();
                reply(operation(|| target.map(gpa, hpa, size, permissions, memory_type, ignore_pat)), events, None);
            }
            UNMAP => {
                let (gpa, size) = (Gpa::new(r.u64()), r.u64());
                r.end();
                reply(operation(|| target.unmap(gpa, size)), events, None);
            }
            PROTECT => {
                let (gpa, size, permissions) = (Gpa::new(r.u64()), r.u64(), Permissions::from_bits(r.u8()));
                r.end();
                reply(operation(|| target.protect(gpa, size, permissions)), events, None);
            }
            RETYPE => {
                let (gpa, size, memory_type, ignore_pat) = (Gpa::new(r.u64()), r.u64(), MemoryType(r.u8()), r.flag());
                r.end();
                reply(operation(|| target.retype(gpa, size, memory_type, ignore_pat)), events, None);
            }
            SPLIT => {
                let gpa = Gpa::new(r.u64());
                r.end();
                reply(operation(|| target.split(gpa)), events, None);
            }
            MERGE => {
                let (gpa, size) = (Gpa::new(r.u64()), r.u64());
                r.end();
                reply(operation(|| target.merge(gpa, size)), events, None);
            }
            MEMORY => {
                let (start, end, memory_type) = (Gpa::new(r.u64()), Gpa::new(r.u64()), MemoryType(r.u8()));
                r.end();
                reply(operation(|| target.memory(start, end, memory_type)), events, None);
            }
            IDENTITY_MAP => {
                let (offset, offset_from) = (r.u64(), Gpa::new(r.u64()));
                r.end();
                reply(operation(|| target.identity_map(offset, offset_from)), events, None);
            }
            INVEPT => {
                let kind = match r.u8() {
                    1 => InveptType::SingleContext,
                    2 => InveptType::Global,
                    other => channel::fatal(&format!("INVEPT of type {}", other)),
                };
                r.end();
                IN_INVEPT_COMMAND.with(|c| c.set(true));
                let result = operation(|| target.invept(kind));
                IN_INVEPT_COMMAND.with(|c| c.set(false));
                reply(result, events, None);
            }
            WALK => {
                let space = r.u8();
                let address = r.u64();
                r.end();
                let found = match space {
                    0 if self.walkers.0 & Walkers::GUEST_PHYSICAL.0 != 0 => guarded(|| Ok(target.walk_gpa(Gpa::new(address)))),
                    1 if self.walkers.0 & Walkers::GUEST_LINEAR.0 != 0 => guarded(|| Ok(target.walk_gva(Gva::new(address)))),
                    other => channel::fatal(&format!("WALK of address space {}, which this target does not answer", other)),
                };
                check_foreign_memory();
                if let Ok(Some(t)) = found {
                    if !matches!(t.page_size, 0x1000 | 0x20_0000 | 0x4000_0000) {
                        fail(&format!("walk of {:#x} answered page size {} (4096, 2 MiB or 1 GiB)", address, t.page_size));
                    }
                }
                let mut frame = Frame::new(ANSWER_WALK);
                match found {
                    Ok(Some(t)) => frame.u8(0).u64(t.hpa).u64(t.page_size).u8(t.permissions.bits()),
                    // Out of pages while walking: the walk found nothing it could answer with.
                    Ok(None) | Err(_) => frame.u8(1).u64(0).u64(0).u8(0),
                };
                frame.send();
            }
            WRITE => {
                let (hpa, value) = (r.u64(), r.u64());
                r.end();
                if let Err(e) = memory::write_foreign(hpa, value) {
                    channel::fatal(&e);
                }
                Frame::new(ANSWER_REPLY).u8(0).u32(0).send();
            }
            SET_GUEST => {
                let enabled = r.flag();
                let cr3 = r.u64();
                let flags = r.u8();
                r.end();
                if flags & !7 != 0 {
                    channel::fatal(&format!("SET_GUEST flags {:#x}: only bits 0-2 (WP, NXE, SMEP) exist", flags));
                }
                let guest = GuestPaging { enabled, cr3, write_protect: flags & 1 != 0, nxe: flags & 2 != 0, smep: flags & 4 != 0 };
                let _ = guarded(|| {
                    target.set_guest(&guest);
                    Ok(())
                });
                // A state change, not an operation: result 0 and no events (pending ones wait for the next reply).
                Frame::new(ANSWER_REPLY).u8(0).u32(0).send();
            }
            ACK => channel::fatal("ACK without a NOTIFY"),
            other => channel::fatal(&format!("unknown command {:#04x}", other)),
        }
    }
}

/// Runs one operation of the adapter with `invept` allowed.
/// Once the arena ran out of pages in it, the answer is ResourceLimit whatever the adapter said.
fn operation<F: FnOnce() -> ApiResult>(f: F) -> ApiResult {
    IN_OPERATION.with(|c| c.set(true));
    memory::take_ran_out();
    let result = guarded(f);
    IN_OPERATION.with(|c| c.set(false));
    if memory::take_ran_out() {
        Err(ApiError::ResourceLimit)
    } else {
        result
    }
}

/// Runs adapter code: the arena running out of pages becomes `ResourceLimit`; any other panic ends
/// the process (its message is already on standard error).
fn guarded<R, F: FnOnce() -> Result<R, ApiError>>(f: F) -> Result<R, ApiError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) if payload.is::<OutOfPages>() => Err(ApiError::ResourceLimit),
        Err(_) => process::exit(EXIT_PANIC),
    }
}

/// Keeps the default panic message for the code under test's panics and stays quiet for the
/// allocator's "out of pages", which is an answer, not a crash.
fn install_panic_hook() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<OutOfPages>() {
            default(info);
        }
    }));
}

/// A target writes only its table pages: a write to other host memory is a FAULT (kind 3).
fn check_foreign_memory() {
    if let Some(message) = memory::foreign_write() {
        channel::fault(FAULT_ADAPTER, &message);
    }
}

fn reply(result: ApiResult, events: &mut Vec<(u8, u32)>, eptp: Option<u64>) {
    check_foreign_memory();
    memory::journal_held();
    let mut words = Vec::new();
    memory::take_events_and_words(events, &mut words);
    let code = match result {
        Ok(()) => 0,
        Err(e) => e as u8,
    };
    let mut frame = Frame::new(ANSWER_REPLY);
    frame.u8(code).events(events, &words);
    if let Some(eptp) = eptp {
        frame.u64(eptp);
    }
    frame.send();
}

/// Invalidates cached translations derived from this EPT (the target's INVEPT instruction).
///
/// Writes before and after the invalidation reach the translators in order: in journal mode the
/// writes so far become WRITE events ahead of this INVEPT event; otherwise the operation stops
/// here (NOTIFY, with the events so far and this INVEPT) while the harness reads the arena.
/// Call it only from an operation.
pub fn invept(kind: InveptType) {
    if memory::is_private() {
        // Unit tests (crate::testing): nobody to notify; the event is kept for take_events.
        memory::push_event(EVENT_INVEPT, kind as u32);
        return;
    }
    if !IN_OPERATION.with(|c| c.get()) {
        crate::fail("invept() called outside an operation (in a WALK or before HELLO)");
    }
    // The writes before the invalidation come before it.
    memory::journal_held();
    memory::push_event(EVENT_INVEPT, kind as u32);
    if IN_INVEPT_COMMAND.with(|c| c.get()) || memory::journaling() {
        // The INVEPT command itself, or journal mode: the event goes in the reply.
        return;
    }
    let mut events = Vec::new();
    memory::take_events(&mut events);
    Frame::new(ANSWER_NOTIFY).events(&events, &[]).send();
    let mut body = Vec::new();
    channel::read_frame(&mut body);
    if body.len() != 1 || body[0] != ACK {
        channel::fatal(&format!("expected ACK after NOTIFY, got command {:#04x}", body.first().copied().unwrap_or(0)));
    }
}

/// Reports that the adapter found one of its own invariants broken (FAULT kind 3, a crash
/// finding) and ends the process.
pub fn fail(message: &str) -> ! {
    channel::fault(FAULT_ADAPTER, message)
}

/// A command body being read; a body too short or too long breaks the protocol.
struct Body<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn new(bytes: &'a [u8]) -> Body<'a> {
        Body { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        if self.bytes.len() - self.at < n {
            channel::fatal(&format!("command {:#04x}: the body ends after {} bytes", self.bytes.first().copied().unwrap_or(0), self.bytes.len()));
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        slice
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn flag(&mut self) -> bool {
        match self.u8() {
            0 => false,
            1 => true,
            other => channel::fatal(&format!("a flag of {} (0 or 1 expected)", other)),
        }
    }

    fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2));
        u16::from_le_bytes(b)
    }

    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4));
        u32::from_le_bytes(b)
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8));
        u64::from_le_bytes(b)
    }

    fn text(&mut self) -> String {
        let n = self.u16() as usize;
        match std::str::from_utf8(self.take(n)) {
            Ok(s) => s.to_string(),
            Err(_) => channel::fatal("a text field that is not UTF-8"),
        }
    }

    fn end(&self) {
        if self.at != self.bytes.len() {
            channel::fatal(&format!("command {:#04x}: {} bytes left over", self.bytes[0], self.bytes.len() - self.at));
        }
    }
}
