//! The sample driven over the real protocol by a small harness of its own: pipes, a /dev/shm
//! arena, the harness's side of every command (PROTOCOL.md), and the table bytes read back from
//! the arena file.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const ARENA_PAGES: u32 = 64;
const ARENA_HPA: u64 = 0x3f_ff00_0000;
const ALLOC: u8 = 1;
const INVEPT: u8 = 3;
const RWX: u8 = 7;
const WB: u8 = 6;

// Result codes.
const OK: u8 = 0;
const UNSUPPORTED: u8 = 1;
const UNALIGNED: u8 = 2;
const OUT_OF_RANGE: u8 = 3;
const INVALID_PERMISSION: u8 = 4;
const DUPLICATED: u8 = 5;
const NOT_EXIST: u8 = 6;
const RESOURCE_LIMIT: u8 = 8;

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Harness {
    child: Child,
    input: ChildStdin,
    output: ChildStdout,
    arena: File,
    path: PathBuf,
}

#[derive(Debug, PartialEq)]
struct Reply {
    result: u8,
    /// Events of the NOTIFYs and of the REPLY, in order.
    events: Vec<(u8, u32)>,
    /// How many NOTIFYs came before the REPLY.
    notifies: usize,
    extra: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Walk {
    Translated { hpa: u64, size: u64, permissions: u8 },
    NotMapped,
}

fn le(bytes: &[u8], at: usize, n: usize) -> u64 {
    let mut v = 0u64;
    for i in 0..n {
        v |= (bytes[at + i] as u64) << (8 * i);
    }
    v
}

impl Harness {
    fn start() -> Harness {
        let dir = if PathBuf::from("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let path = dir.join(format!("keos-rust-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst)));
        let arena = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        arena.set_len(ARENA_PAGES as u64 * 4096).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_keos-rust-ept"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        Harness { child, input, output, arena, path }
    }

    fn send(&mut self, body: &[u8]) {
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(body);
        self.input.write_all(&frame).unwrap();
        self.input.flush().unwrap();
    }

    fn receive(&mut self) -> Vec<u8> {
        let mut length = [0u8; 4];
        self.output.read_exact(&mut length).unwrap();
        let mut body = vec![0u8; u32::from_le_bytes(length) as usize];
        self.output.read_exact(&mut body).unwrap();
        body
    }

    fn hello(&mut self) -> Vec<u8> {
        let path = self.path.to_str().unwrap().as_bytes().to_vec();
        let mut body = vec![0x01];
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&ARENA_PAGES.to_le_bytes());
        body.extend_from_slice(&(path.len() as u16).to_le_bytes());
        body.extend_from_slice(&path);
        self.send(&body);
        self.receive()
    }

    /// An operation: answers every NOTIFY with ACK, collects the events, returns the REPLY.
    fn operation(&mut self, body: &[u8]) -> Reply {
        self.send(body);
        let mut events = Vec::new();
        let mut notifies = 0;
        loop {
            let answer = self.receive();
            let (count_at, is_reply) = match answer[0] {
                0x83 => (1, false),
                0x80 => (2, true),
                other => panic!("answer {:#x} to an operation: {:?}", other, answer),
            };
            let count = le(&answer, count_at, 4) as usize;
            for i in 0..count {
                let at = count_at + 4 + i * 5;
                events.push((answer[at], le(&answer, at + 1, 4) as u32));
            }
            if is_reply {
                let extra = answer[count_at + 4 + count * 5..].to_vec();
                return Reply { result: answer[1], events, notifies, extra };
            }
            notifies += 1;
            self.send(&[0x30]);
        }
    }

    fn reset(&mut self, usable: u32, flags: u16) -> Reply {
        let mut body = vec![0x02];
        body.extend_from_slice(&ARENA_HPA.to_le_bytes());
        body.extend_from_slice(&usable.to_le_bytes());
        body.push(46);
        body.extend_from_slice(&flags.to_le_bytes());
        self.operation(&body)
    }

    /// RESET (every capability) and the default SET_EPTP; returns the EPTP.
    fn start_case(&mut self) -> u64 {
        assert_eq!(self.reset(ARENA_PAGES, 0x1ff).result, OK);
        let reply = self.operation(&[0x03, WB, 4, 0]);
        assert_eq!(reply.result, OK);
        le(&reply.extra, 0, 8)
    }

    fn map(&mut self, gpa: u64, hpa: u64, size: u64, permissions: u8) -> Reply {
        let mut body = vec![0x10];
        for v in [gpa, hpa, size].iter() {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(&[permissions, WB, 0]);
        self.operation(&body)
    }

    fn unmap(&mut self, gpa: u64, size: u64) -> Reply {
        let mut body = vec![0x11];
        body.extend_from_slice(&gpa.to_le_bytes());
        body.extend_from_slice(&size.to_le_bytes());
        self.operation(&body)
    }

    fn walk(&mut self, space: u8, address: u64) -> Walk {
        let mut body = vec![0x20, space];
        body.extend_from_slice(&address.to_le_bytes());
        self.send(&body);
        let answer = self.receive();
        assert_eq!(answer[0], 0x82);
        match answer[1] {
            0 => Walk::Translated { hpa: le(&answer, 2, 8), size: le(&answer, 10, 8), permissions: answer[18] },
            1 => Walk::NotMapped,
            other => panic!("WALK status {}", other),
        }
    }

    fn entry(&self, hpa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.arena.read_exact_at(&mut b, hpa - ARENA_HPA).unwrap();
        u64::from_le_bytes(b)
    }

    /// What a raw `edit` does: the harness writes the arena itself.
    fn poke(&self, hpa: u64, value: u64) {
        self.arena.write_all_at(&value.to_le_bytes(), hpa - ARENA_HPA).unwrap();
    }

    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.input);
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let _ = fs::remove_file(&self.path);
        (status.code(), stderr)
    }
}

fn page(i: u64) -> u64 {
    ARENA_HPA + i * 4096
}

#[test]
fn hello_declares_map_unmap_invept_of_4k_pages_and_its_walkers() {
    let mut h = Harness::start();
    let answer = h.hello();
    assert_eq!(answer[0], 0x81);
    assert_eq!(le(&answer, 1, 4), 1, "version");
    assert_eq!(le(&answer, 5, 4), 0b1000_0011, "operations: map, unmap, invept");
    assert_eq!(answer[9], 1, "page sizes: 4K");
    let walkers = if cfg!(feature = "guest-linear-walker") { 3 } else { 1 };
    assert_eq!(answer[10], walkers, "walkers: guest-physical (and guest-linear with the feature)");
    assert_eq!(&answer[13..], b"keos-rust");
    assert_eq!(h.finish().0, Some(0), "end of input: exit 0");
}

#[test]
fn map_builds_tables_in_the_arena_and_walk_translates() {
    let mut h = Harness::start();
    h.hello();
    let eptp = h.start_case();
    assert_eq!(eptp, page(0) | 0x1e, "root is arena page 0; WB, 4 levels");

    let reply = h.map(0x1000, 0x10_0000, 4096, RWX);
    assert_eq!(reply.result, OK);
    assert_eq!(reply.events, vec![(ALLOC, 1), (ALLOC, 2), (ALLOC, 3)]);
    assert_eq!(h.entry(page(0)), page(1) | 7, "PML4E");
    assert_eq!(h.entry(page(1)), page(2) | 7, "PDPTE");
    assert_eq!(h.entry(page(2)), page(3) | 7, "PDE");
    assert_eq!(h.entry(page(3) + 8), 0x10_0000 | 7 | (6 << 3) | (1 << 11), "PTE: rwx, WB, in use");

    assert_eq!(h.walk(0, 0x1008), Walk::Translated { hpa: 0x10_0008, size: 4096, permissions: 7 });
    assert_eq!(h.walk(0, 0x2000), Walk::NotMapped);
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn errors_come_in_the_case_languages_order() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    assert_eq!(h.map(0x1000, 0x10_0000, 4096, RWX).result, OK);
    assert_eq!(h.map(0x1000, 0x20_0000, 4096, RWX).result, DUPLICATED);
    assert_eq!(h.map(0x2001, 0x20_0000, 4096, RWX).result, UNALIGNED);
    assert_eq!(h.map(0x2000, 0x20_0800, 4096, 2).result, UNALIGNED, "Unaligned before InvalidPermission");
    assert_eq!(h.map(0x2000, 0x20_0000, 2 << 20, RWX).result, UNSUPPORTED, "map of 2 MiB");
    assert_eq!(h.map(0x2000, 0x20_0000, 4096, 8).result, OK, "user execute with MBEC");
    assert_eq!(h.map(1 << 48, 0x20_0000, 4096, RWX).result, OUT_OF_RANGE);
    assert_eq!(h.map(0x3000, 1 << 46, 4096, RWX).result, OUT_OF_RANGE);
    assert_eq!(h.map(0x3000, 0x20_0000, 4096, 2).result, INVALID_PERMISSION, "write without read");
    assert_eq!(h.map(0x3000, 0x20_0000, 4096, 4).result, OK, "execute-only with the capability");
    assert_eq!(h.unmap(0x5000, 4096).result, NOT_EXIST);
    assert_eq!(h.unmap(0x5000, 0).result, UNALIGNED);
    assert_eq!(h.unmap(0x5800, 4096).result, UNALIGNED);
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn unmap_clears_the_leaf_and_invalidates_before_replying() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    h.map(0x1000, 0x10_0000, 4096, RWX);
    let reply = h.unmap(0x1000, 4096);
    assert_eq!(reply.result, OK);
    assert_eq!(reply.notifies, 1);
    assert_eq!(reply.events, vec![(INVEPT, 2)], "a global INVEPT");
    assert_eq!(h.entry(page(3) + 8), 0);
    assert_eq!(h.walk(0, 0x1000), Walk::NotMapped);
    assert_eq!(h.unmap(0x1000, 4096).result, NOT_EXIST);
    assert_eq!(h.map(0x1000, 0x30_0000, 4096, 1).result, OK, "the page can be mapped again");
    assert_eq!(h.walk(0, 0x1fff), Walk::Translated { hpa: 0x30_0fff, size: 4096, permissions: 1 });
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn a_range_unmap_is_all_or_nothing() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    h.map(0x1000, 0x10_0000, 4096, RWX);
    h.map(0x3000, 0x30_0000, 4096, RWX);
    assert_eq!(h.unmap(0x1000, 3 * 4096).result, NOT_EXIST, "0x2000 is not mapped");
    assert_eq!(h.walk(0, 0x1000), Walk::Translated { hpa: 0x10_0000, size: 4096, permissions: 7 });
    h.map(0x2000, 0x20_0000, 4096, RWX);
    let reply = h.unmap(0x1000, 3 * 4096);
    assert_eq!(reply.result, OK);
    assert_eq!(reply.notifies, 3);
    for gpa in [0x1000u64, 0x2000, 0x3000].iter() {
        assert_eq!(h.walk(0, *gpa), Walk::NotMapped);
    }
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn large_pages_made_by_raw_edits_translate_and_refuse_4k_maps() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    // Tables down to the page directory of GPA 0..1 GiB, then a 2 MiB leaf at PDE 1 and a
    // 1 GiB leaf at PDPTE 1, written by the harness as a boot loader would.
    h.map(0x1000, 0x10_0000, 4096, RWX);
    h.poke(page(2) + 8, 0x4000_0000 | 0x80 | 3 | (6 << 3));
    h.poke(page(1) + 8, 0x80_0000_0000 | 0x80 | 1 | (6 << 3));
    assert_eq!(h.walk(0, 0x2f_f123), Walk::Translated { hpa: 0x400f_f123, size: 2 << 20, permissions: 3 });
    assert_eq!(h.walk(0, 0x7654_3210), Walk::Translated { hpa: 0x80_3654_3210, size: 1 << 30, permissions: 1 });
    assert_eq!(h.map(0x20_1000, 0x50_0000, 4096, RWX).result, DUPLICATED, "inside the 2 MiB page");
    assert_eq!(h.map(0x4000_0000, 0x50_0000, 4096, RWX).result, DUPLICATED, "inside the 1 GiB page");
    assert_eq!(h.unmap(0x20_0000, 4096).result, NOT_EXIST, "a large page is not split");
    // A table entry whose permissions a raw edit took away: every access below it is limited.
    h.poke(page(0), page(1) | 1);
    assert_eq!(h.walk(0, 0x2f_f123), Walk::Translated { hpa: 0x400f_f123, size: 2 << 20, permissions: 1 });
    h.poke(page(0), page(1));
    assert_eq!(h.walk(0, 0x1000), Walk::NotMapped, "a PML4E without permissions is not present");
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn reset_forgets_every_table_without_events_and_zeroes_the_arena() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    h.map(0x1000, 0x10_0000, 4096, RWX);
    let reply = h.reset(ARENA_PAGES, 0x1ff);
    assert_eq!(reply.events, vec![]);
    for i in 0..4 {
        assert_eq!(h.entry(page(i)), 0);
        assert_eq!(h.entry(page(i) + 8), 0);
    }
    let reply = h.operation(&[0x03, WB, 4, 0]);
    assert_eq!(reply.events, vec![(ALLOC, 0)], "the root is page 0 again");
    assert_eq!(h.walk(0, 0x1000), Walk::NotMapped);
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn running_out_of_arena_pages_is_resource_limit_not_a_crash() {
    let mut h = Harness::start();
    h.hello();
    assert_eq!(h.reset(3, 0x1ff).result, OK);
    assert_eq!(h.operation(&[0x03, WB, 4, 0]).result, OK);
    let reply = h.map(0x1000, 0x10_0000, 4096, RWX);
    assert_eq!(reply.result, RESOURCE_LIMIT);
    assert_eq!(reply.events, vec![(ALLOC, 1), (ALLOC, 2)]);
    // The next case has room again.
    h.start_case();
    assert_eq!(h.map(0x1000, 0x10_0000, 4096, RWX).result, OK);
    let (status, stderr) = h.finish();
    assert_eq!(status, Some(0));
    assert!(!stderr.contains("panicked"), "{}", stderr);
}

#[test]
fn the_eptp_of_a_refused_request_is_the_last_good_one() {
    let mut h = Harness::start();
    h.hello();
    let eptp = h.start_case();
    let reply = h.operation(&[0x03, WB, 5, 0]);
    assert_eq!(reply.result, UNSUPPORTED);
    assert_eq!(le(&reply.extra, 0, 8), eptp);
    let reply = h.operation(&[0x03, 0, 4, 0]);
    assert_eq!(le(&reply.extra, 0, 8), page(0) | 0x18, "UC");
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn invept_command_is_answered_with_its_event() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    let reply = h.operation(&[0x18, 2]);
    assert_eq!((reply.result, reply.events, reply.notifies), (OK, vec![(INVEPT, 2)], 0));
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn write_fills_host_memory_the_target_reads() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    let mut body = vec![0x21];
    body.extend_from_slice(&0x10_0008u64.to_le_bytes());
    body.extend_from_slice(&0x1234u64.to_le_bytes());
    let reply = h.operation(&body);
    assert_eq!((reply.result, reply.events), (OK, vec![]));
    assert_eq!(h.finish().0, Some(0));
}

#[test]
fn another_protocol_version_is_an_error_naming_both() {
    let mut h = Harness::start();
    let mut body = vec![0x01];
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(&ARENA_PAGES.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    h.send(&body);
    let answer = h.receive();
    assert_eq!(answer[0], 0x85);
    let message = String::from_utf8(answer[3..].to_vec()).unwrap();
    assert!(message.contains('2') && message.contains('1'), "{}", message);
    let (status, _) = h.finish();
    assert_eq!(status, Some(2));
}

#[test]
fn a_walk_of_an_unknown_space_is_an_error() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    let mut body = vec![0x20, 2];
    body.extend_from_slice(&0x1000u64.to_le_bytes());
    h.send(&body);
    assert_eq!(h.receive()[0], 0x85);
    assert_eq!(h.finish().0, Some(2));
}

#[test]
fn end_of_input_inside_a_frame_is_not_a_clean_stop() {
    let mut h = Harness::start();
    h.hello();
    h.input.write_all(&[9, 0, 0, 0, 0x10]).unwrap();
    let (status, stderr) = h.finish();
    assert_eq!(status, Some(3));
    assert!(stderr.contains("inside a frame"), "{}", stderr);
}

#[test]
fn a_page_mapped_with_nothing_at_host_address_0_is_still_mapped() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    let mut body = vec![0x10];
    for v in [0u64, 0, 4096].iter() {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&[0, 0, 0]); // perm=none mt=UC ipat=0
    assert_eq!(h.operation(&body).result, OK);
    assert_eq!(h.walk(0, 0), Walk::NotMapped, "no permission: not present for the processor");
    assert_eq!(h.map(0, 0x5000, 4096, RWX).result, DUPLICATED);
    assert_eq!(h.unmap(0, 4096).result, OK);
    assert_eq!(h.finish().0, Some(0));
}

#[cfg(feature = "guest-linear-walker")]
impl Harness {
    fn write(&mut self, hpa: u64, value: u64) {
        let mut body = vec![0x21];
        body.extend_from_slice(&hpa.to_le_bytes());
        body.extend_from_slice(&value.to_le_bytes());
        assert_eq!(self.operation(&body).result, OK);
    }

    fn set_guest(&mut self, paging: u8, cr3: u64, flags: u8) -> Reply {
        let mut body = vec![0x22, paging];
        body.extend_from_slice(&cr3.to_le_bytes());
        body.push(flags);
        self.operation(&body)
    }
}

#[cfg(feature = "guest-linear-walker")]
#[test]
fn guest_linear_walks_follow_the_guests_tables_set_with_set_guest() {
    let mut h = Harness::start();
    h.hello();
    h.start_case();
    // Guest tables at GPA 0x10_0000.. mapped to HPA 0x5010_0000..; a guest 2 MiB page at
    // gva 0x7f_8000_0000 -> gpa 0x60_0000, which the EPT maps (4 KiB) at HPA 0x7000_0000.
    for i in 0..3u64 {
        assert_eq!(h.map(0x10_0000 + i * 0x1000, 0x5010_0000 + i * 0x1000, 4096, RWX).result, OK);
    }
    assert_eq!(h.map(0x61_2000, 0x7001_2000, 4096, 3).result, OK);
    h.write(0x5010_0000, 0x10_1000 | 3);
    h.write(0x5010_1000 + 510 * 8, 0x10_2000 | 3);
    h.write(0x5010_2000, 0x60_0000 | 3 | 0x80);
    assert_eq!(h.walk(1, 0x7f_8001_2345), Walk::NotMapped, "paging off: gva = gpa, and nothing is mapped there");
    let reply = h.set_guest(1, 0x10_0000, 1);
    assert_eq!((reply.result, reply.events), (OK, vec![]));
    assert_eq!(h.walk(1, 0x7f_8001_2345), Walk::Translated { hpa: 0x7001_2345, size: 4096, permissions: 3 });
    assert_eq!(h.walk(1, 0x7f_8000_0000), Walk::NotMapped, "the EPT does not map gpa 0x60_0000");
    assert_eq!(h.walk(1, 0x7f_8020_0000), Walk::NotMapped, "guest PDE 1 not present");
    assert_eq!(h.set_guest(0, 0, 0).result, OK);
    assert_eq!(h.walk(1, 0x61_2008), Walk::Translated { hpa: 0x7001_2008, size: 4096, permissions: 3 });
    assert_eq!(h.finish().0, Some(0));
}
