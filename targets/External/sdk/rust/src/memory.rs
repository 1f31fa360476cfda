//! Host memory as the target sees it: the shared arena (table pages, seen by the harness) and a
//! private copy of everything else (PROTOCOL.md, "The arena"). Also the page allocator over the
//! arena and the events it reports.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::io::AsRawFd;

use crate::channel;
use crate::sys;

pub const PAGE_SIZE: u64 = 4096;

/// Event kinds (PROTOCOL.md, "Events").
pub const EVENT_ALLOC: u8 = 1;
pub const EVENT_FREE: u8 = 2;
pub const EVENT_INVEPT: u8 = 3;
/// Journal mode: one changed word (value: page × 512 + word; its new value follows).
pub const EVENT_WRITE: u8 = 4;

/// FAULT kinds the allocator reports itself.
pub const FAULT_RELEASED_TWICE: u8 = 1;
pub const FAULT_NEVER_TAKEN: u8 = 2;

// What the allocator knows about an arena page in the current case.
const NEVER_TAKEN: u8 = 0;
const HELD: u8 = 1;
const RELEASED: u8 = 2;

/// A page of host memory outside the arena, aligned like a page so that a pointer into it gives
/// its page by masking (as [`physical_of`] does).
#[repr(C, align(4096))]
struct ForeignPage([u64; 512]);

/// A foreign page as the target sees it, and as the harness last wrote it.
struct Foreign {
    live: Box<ForeignPage>,
    written: Box<ForeignPage>,
}

struct State {
    /// The arena mapping (null before HELLO) and its size in pages.
    base: *mut u8,
    arena_pages: u32,
    /// Host-physical address of arena page 0, from RESET.
    arena_hpa: u64,
    /// Pages the target may take in this case: the first `usable` of the arena.
    usable: u32,
    page_state: Vec<u8>,
    /// No page below this index is free.
    lowest_free: u32,
    /// Host memory outside the arena, by page address; all zero where nothing was written.
    foreign: HashMap<u64, Foreign>,
    foreign_by_pointer: HashMap<usize, u64>,
    /// Foreign pages whose pointer the target was given, in the order it got them.
    exposed: Vec<u64>,
    /// Arena pages the target does not hold whose pointer it was given during this command, with
    /// what they held then.
    exposed_arena: Vec<(u32, Box<ForeignPage>)>,
    /// Events since the last answer, in order.
    events: Vec<(u8, u32)>,
    /// The new values of the WRITE events among them, in order.
    event_words: Vec<u64>,
    /// The journal copy of the arena (PROTOCOL.md "Journal mode"): null where the arena file has none.
    shadow: *mut u8,
    journaling: bool,
    /// The pages held now, in no order, and where each sits in that list.
    held: Vec<u32>,
    held_slot: Vec<u32>,
    /// During RESET, tables the target drops are forgotten, not released.
    forgetting: bool,
    /// The arena is private (unit tests): there is no harness to notify.
    private: bool,
    /// An allocation failed since the last `take_ran_out`.
    ran_out: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        base: std::ptr::null_mut(),
        arena_pages: 0,
        arena_hpa: 0,
        usable: 0,
        page_state: Vec::new(),
        lowest_free: 0,
        foreign: HashMap::new(),
        foreign_by_pointer: HashMap::new(),
        exposed: Vec::new(),
        exposed_arena: Vec::new(),
        events: Vec::new(),
        event_words: Vec::new(),
        shadow: std::ptr::null_mut(),
        journaling: false,
        held: Vec::new(),
        held_slot: Vec::new(),
        forgetting: false,
        private: false,
        ran_out: false,
    });
}

/// Maps the arena file (HELLO). The mapping lives as long as the process.
pub fn attach(path: &str, pages: u32) -> Result<(), String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open the arena {}: {}", path, e))?;
    let bytes = pages as usize * PAGE_SIZE as usize;
    let actual = file.metadata().map_err(|e| format!("cannot stat the arena {}: {}", path, e))?.len();
    if actual < bytes as u64 {
        return Err(format!("the arena {} has {} bytes, HELLO says {} pages", path, actual, pages));
    }
    let base = sys::map_shared(file.as_raw_fd(), bytes, 0).map_err(|e| format!("cannot map the arena {}: {}", path, e))?;
    // The journal copy follows the arena in the file, where the harness made room for it.
    let shadow = if actual >= 2 * bytes as u64 {
        sys::map_shared(file.as_raw_fd(), bytes, bytes as u64).map_err(|e| format!("cannot map the arena's journal copy {}: {}", path, e))?
    } else {
        std::ptr::null_mut()
    };
    // The mapping keeps the file's pages; the descriptor is no longer needed.
    drop(file);
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.base = base;
        s.shadow = shadow;
        s.arena_pages = pages;
        s.page_state = vec![NEVER_TAKEN; pages as usize];
        s.held_slot = vec![0; pages as usize];
    });
    Ok(())
}

/// Gives this process an arena of its own, in private memory (for unit tests without a harness).
pub fn attach_private(pages: u32) {
    let bytes = pages as usize * PAGE_SIZE as usize;
    let layout = std::alloc::Layout::from_size_align(bytes.max(1), PAGE_SIZE as usize).expect("arena layout");
    // SAFETY: a non-zero size; the memory is never freed (an arena lives as long as the process).
    let base = unsafe { std::alloc::alloc_zeroed(layout) };
    if base.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.base = base;
        s.arena_pages = pages;
        s.page_state = vec![NEVER_TAKEN; pages as usize];
        s.held_slot = vec![0; pages as usize];
        s.private = true;
    });
}

pub fn is_private() -> bool {
    STATE.with(|s| s.borrow().private)
}

/// Starts a case (RESET): every page handed out is zeroed and forgotten without events, host
/// memory outside the arena is forgotten, and drops of old tables are ignored until
/// [`end_reset`].
pub fn begin_reset(arena_hpa: u64, usable: u32) -> Result<(), String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.base.is_null() {
            return Err("RESET before HELLO".to_string());
        }
        if usable > s.arena_pages {
            return Err(format!("RESET allows {} pages, the arena has {}", usable, s.arena_pages));
        }
        if arena_hpa & (PAGE_SIZE - 1) != 0 {
            return Err(format!("RESET arena_hpa {:#x} is not page-aligned", arena_hpa));
        }
        let (base, shadow) = (s.base, s.shadow);
        for (i, state) in s.page_state.iter_mut().enumerate() {
            if *state != NEVER_TAKEN {
                // SAFETY: i < arena_pages, inside the mapping (and its journal copy, when there is one).
                unsafe {
                    std::ptr::write_bytes(base.add(i * PAGE_SIZE as usize), 0, PAGE_SIZE as usize);
                    if !shadow.is_null() {
                        std::ptr::write_bytes(shadow.add(i * PAGE_SIZE as usize), 0, PAGE_SIZE as usize);
                    }
                }
                *state = NEVER_TAKEN;
            }
        }
        s.held.clear();
        s.journaling = false;
        s.arena_hpa = arena_hpa;
        s.usable = usable;
        s.lowest_free = 0;
        s.foreign.clear();
        s.foreign_by_pointer.clear();
        s.exposed.clear();
        s.exposed_arena.clear();
        s.events.clear();
        s.event_words.clear();
        s.forgetting = true;
        Ok(())
    })
}

pub fn arena_pages() -> u32 {
    STATE.with(|s| s.borrow().arena_pages)
}

pub fn end_reset() {
    STATE.with(|s| s.borrow_mut().forgetting = false);
}

/// Takes the lowest free usable arena page, zeroed, and reports it (ALLOC). None when all are taken.
pub fn allocate() -> Option<u64> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.base.is_null() {
            panic!("eptfuzz-target: a page was asked for before the harness's HELLO");
        }
        let mut i = s.lowest_free;
        while i < s.usable && s.page_state[i as usize] == HELD {
            i += 1;
        }
        if i >= s.usable {
            s.lowest_free = i;
            s.ran_out = true;
            return None;
        }
        hold(&mut s, i);
        s.lowest_free = i + 1;
        // SAFETY: i < usable <= arena_pages.
        unsafe { std::ptr::write_bytes(s.base.add(i as usize * PAGE_SIZE as usize), 0, PAGE_SIZE as usize) };
        s.events.push((EVENT_ALLOC, i));
        Some(s.arena_hpa + i as u64 * PAGE_SIZE)
    })
}

/// Gives an arena page back (FREE). A page given back twice, or one never taken, is a FAULT.
pub fn release(pa: u64) {
    let fault = STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.forgetting {
            return None;
        }
        let index = match arena_index(&s, pa) {
            Some(i) if pa & (PAGE_SIZE - 1) == 0 => i,
            _ => {
                return Some((FAULT_NEVER_TAKEN, format!("released {:#x}, which is not an arena page", pa)));
            }
        };
        match s.page_state[index as usize] {
            HELD => {
                // The writes it had before it went are the last the harness hears of it.
                if s.journaling {
                    journal_page(&mut s, index);
                }
                unhold(&mut s, index);
                s.page_state[index as usize] = RELEASED;
                if index < s.lowest_free {
                    s.lowest_free = index;
                }
                s.events.push((EVENT_FREE, index));
                None
            }
            RELEASED => Some((FAULT_RELEASED_TWICE, format!("released page {:#x} (arena page {}) twice", pa, index))),
            _ => Some((FAULT_NEVER_TAKEN, format!("released page {:#x} (arena page {}), which was never taken", pa, index))),
        }
    });
    if let Some((kind, message)) = fault {
        channel::fault(kind, &message);
    }
}

/// Whether an allocation failed since the last call.
pub fn take_ran_out() -> bool {
    STATE.with(|s| std::mem::replace(&mut s.borrow_mut().ran_out, false))
}

pub fn push_event(kind: u8, value: u32) {
    STATE.with(|s| s.borrow_mut().events.push((kind, value)));
}

/// The events since the last answer; the list is emptied. (The values of WRITE events are dropped:
/// for unit tests, which never turn the journal on.)
pub fn take_events(into: &mut Vec<(u8, u32)>) {
    let mut words = Vec::new();
    take_events_and_words(into, &mut words);
}

/// The events since the last answer and the new values of the WRITE events among them, in order.
pub fn take_events_and_words(into: &mut Vec<(u8, u32)>, words: &mut Vec<u64>) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        into.clear();
        into.append(&mut s.events);
        words.clear();
        words.append(&mut s.event_words);
    });
}

fn hold(s: &mut State, index: u32) {
    s.page_state[index as usize] = HELD;
    s.held_slot[index as usize] = s.held.len() as u32;
    s.held.push(index);
}

fn unhold(s: &mut State, index: u32) {
    let slot = s.held_slot[index as usize] as usize;
    let last = s.held.pop().expect("a held page is in the list");
    if last != index {
        s.held[slot] = last;
        s.held_slot[last as usize] = slot as u32;
    }
}

/// Whether journal mode is on.
pub fn journaling() -> bool {
    STATE.with(|s| s.borrow().journaling)
}

/// Whether the arena file has a journal copy (the HELLO reply says so).
pub fn can_journal() -> bool {
    STATE.with(|s| !s.borrow().shadow.is_null())
}

/// Journal mode on (right after RESET: the pages RESET took are reported whole) or off (the
/// writes so far are the last reported). Err where the arena file has no journal copy.
pub fn set_journal(on: bool) -> Result<(), String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if on && s.shadow.is_null() {
            return Err("JOURNAL on, but the arena file holds no journal copy (2 x arena_pages pages)".to_string());
        }
        if on {
            s.journaling = true;
            journal_held_pages(&mut s);
        } else {
            journal_held_pages(&mut s);
            s.journaling = false;
        }
        Ok(())
    })
}

/// Journal mode: every word of a held page that changed since the harness was last told becomes a
/// WRITE event (before an INVEPT event, and before every answer's events).
pub fn journal_held() {
    STATE.with(|s| journal_held_pages(&mut s.borrow_mut()));
}

fn journal_held_pages(s: &mut State) {
    if !s.journaling {
        return;
    }
    for n in 0..s.held.len() {
        let index = s.held[n];
        journal_page(s, index);
    }
}

/// Journal events beyond this many bytes go ahead of the reply.
const EVENTS_AHEAD: usize = 256 * 1024;

fn journal_page(s: &mut State, index: u32) {
    let offset = index as usize * PAGE_SIZE as usize;
    // SAFETY: index < arena_pages; both mappings hold arena_pages page-aligned pages, and neither
    // is a Rust object (the code under test writes the arena through raw pointers only).
    let (live, known) = unsafe {
        (
            std::slice::from_raw_parts(s.base.add(offset) as *const u64, 512),
            std::slice::from_raw_parts_mut(s.shadow.add(offset) as *mut u64, 512),
        )
    };
    if live == &known[..] {
        return;
    }
    for word in 0..512 {
        if live[word] != known[word] {
            if s.events.len() * 5 + s.event_words.len() * 8 > EVENTS_AHEAD {
                // An operation that writes this much sends events ahead of its reply (EVENTS), so
                // that no answer outgrows a frame.
                let (events, words) = (std::mem::take(&mut s.events), std::mem::take(&mut s.event_words));
                channel::Frame::new(channel::ANSWER_EVENTS).events(&events, &words).send();
            }
            s.events.push((EVENT_WRITE, index * 512 + word as u32));
            s.event_words.push(live[word]);
            known[word] = live[word];
        }
    }
}

fn arena_index(s: &State, pa: u64) -> Option<u32> {
    if pa >= s.arena_hpa && pa - s.arena_hpa < s.arena_pages as u64 * PAGE_SIZE {
        Some(((pa - s.arena_hpa) / PAGE_SIZE) as u32)
    } else {
        None
    }
}

/// Where host-physical `pa` lives in this process: the arena, or the private copy.
pub fn pointer_of(pa: u64) -> *mut u8 {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(index) = arena_index(&s, pa).filter(|_| !s.base.is_null()) {
            if s.page_state[index as usize] != HELD && !s.exposed_arena.iter().any(|(i, _)| *i == index) {
                let copy = Box::new(ForeignPage(*arena_words(&s, index)));
                s.exposed_arena.push((index, copy));
            }
            // SAFETY: inside the mapping (checked just above).
            return unsafe { s.base.add((pa - s.arena_hpa) as usize) };
        }
        let page = pa & !(PAGE_SIZE - 1);
        let offset = (pa - page) as usize;
        let (pointer, _) = foreign_page(&mut s, page);
        if !s.exposed.contains(&page) {
            s.exposed.push(page);
        }
        // SAFETY: offset < 4096, inside the page.
        unsafe { pointer.add(offset) }
    })
}

/// The page of host memory at `page` outside the arena, made (all zero) on first use; true when new.
fn foreign_page(s: &mut State, page: u64) -> (*mut u8, bool) {
    if let Some(p) = s.foreign.get_mut(&page) {
        return (p.live.0.as_mut_ptr() as *mut u8, false);
    }
    let mut live = Box::new(ForeignPage([0u64; 512]));
    // A boxed page does not move when the map grows: the pointer stays valid until RESET.
    let pointer = live.0.as_mut_ptr() as *mut u8;
    s.foreign.insert(page, Foreign { live, written: Box::new(ForeignPage([0u64; 512])) });
    s.foreign_by_pointer.insert(pointer as usize, page);
    (pointer, true)
}

/// Arena page `index` as words.
fn arena_words(s: &State, index: u32) -> &[u64; 512] {
    // SAFETY: index < arena_pages (callers checked), a page-aligned 4096-byte page of the mapping.
    unsafe { &*(s.base.add(index as usize * PAGE_SIZE as usize) as *const [u64; 512]) }
}

/// Whether `pa` lies in an arena page the target holds (taken and not given back).
pub fn holds(pa: u64) -> bool {
    STATE.with(|s| {
        let s = s.borrow();
        !s.base.is_null() && arena_index(&s, pa).map_or(false, |i| s.page_state[i as usize] == HELD)
    })
}

/// The first word the target changed in memory it may not write, as a message; None when it
/// changed none. A target writes only its table pages (PROTOCOL.md "The arena"): not arena pages
/// it does not hold (checked for those it reached during this command; a page it took since is
/// its own), not host memory outside the arena (checked against what the harness wrote there).
pub fn foreign_write() -> Option<String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let exposed_arena = std::mem::take(&mut s.exposed_arena);
        for (index, before) in &exposed_arena {
            if s.page_state[*index as usize] == HELD {
                continue;
            }
            let now = arena_words(&s, *index);
            if let Some(i) = (0..512).find(|&i| now[i] != before.0[i]) {
                let what = if s.page_state[*index as usize] == RELEASED { "released earlier" } else { "never taken" };
                return Some(format!(
                    "wrote arena page {} ({}) at HPA {:#x}: {:#x}, was {:#x}",
                    index,
                    what,
                    s.arena_hpa + *index as u64 * PAGE_SIZE + i as u64 * 8,
                    now[i],
                    before.0[i]
                ));
            }
        }
        for page in &s.exposed {
            let f = &s.foreign[page];
            for i in 0..512 {
                if f.live.0[i] != f.written.0[i] {
                    return Some(format!(
                        "wrote host memory outside its table pages: HPA {:#x} holds {:#x}, the harness wrote {:#x}",
                        page + i as u64 * 8,
                        f.live.0[i],
                        f.written.0[i]
                    ));
                }
            }
        }
        None
    })
}

/// The host-physical address behind a pointer that [`pointer_of`] gave.
pub fn physical_of(pointer: usize) -> u64 {
    STATE.with(|s| {
        let s = s.borrow();
        let base = s.base as usize;
        let arena_bytes = s.arena_pages as usize * PAGE_SIZE as usize;
        if !s.base.is_null() && pointer >= base && pointer - base < arena_bytes {
            return s.arena_hpa + (pointer - base) as u64;
        }
        let page = pointer & !(PAGE_SIZE as usize - 1);
        match s.foreign_by_pointer.get(&page) {
            Some(pa) => pa + (pointer - page) as u64,
            None => panic!("eptfuzz-target: {:#x} is not a pointer that Pa::into_kva gave", pointer),
        }
    })
}

/// The harness's `WRITE`: a word of host memory outside the arena.
pub fn write_foreign(hpa: u64, value: u64) -> Result<(), String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if hpa & 7 != 0 {
            return Err(format!("WRITE to {:#x}, which is not 8-byte aligned", hpa));
        }
        if arena_index(&s, hpa).is_some() {
            return Err(format!("WRITE to {:#x}, which is inside the arena", hpa));
        }
        let page = hpa & !(PAGE_SIZE - 1);
        let word = ((hpa - page) / 8) as usize;
        foreign_page(&mut s, page);
        let f = s.foreign.get_mut(&page).expect("made just above");
        f.live.0[word] = value;
        f.written.0[word] = value;
        Ok(())
    })
}
