//! The two descriptors the harness talks over, and frames (PROTOCOL.md, "Transport"): `u32 length`
//! then the body, little-endian, at most 1 MiB.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::io::FromRawFd;
use std::process;

use crate::sys;

pub const MAX_BODY: usize = 1 << 20;

/// Answer codes (PROTOCOL.md, "Answers").
pub const ANSWER_REPLY: u8 = 0x80;
pub const ANSWER_HELLO: u8 = 0x81;
pub const ANSWER_WALK: u8 = 0x82;
pub const ANSWER_NOTIFY: u8 = 0x83;
pub const ANSWER_FAULT: u8 = 0x84;
pub const ANSWER_ERROR: u8 = 0x85;
pub const ANSWER_EVENTS: u8 = 0x86;

/// Exit statuses: end of input 0 (the protocol's rule); the others are this SDK's choice.
pub const EXIT_FAULT: i32 = 1;
pub const EXIT_ERROR: i32 = 2;
pub const EXIT_TRUNCATED: i32 = 3;

struct Channel {
    input: BufReader<File>,
    output: BufWriter<File>,
}

thread_local! {
    static CHANNEL: RefCell<Option<Channel>> = const { RefCell::new(None) };
}

/// Takes standard input and output for the protocol and points descriptor 1 at standard error and
/// descriptor 0 at /dev/null, so that a `println!` in the target cannot corrupt the stream.
pub fn open_std() -> io::Result<()> {
    let input = sys::duplicate(0)?;
    let output = sys::duplicate(1)?;
    sys::redirect(2, 1)?;
    let null = File::open("/dev/null")?;
    sys::redirect(std::os::unix::io::AsRawFd::as_raw_fd(&null), 0)?;
    // SAFETY: both descriptors were just made by dup and belong to nothing else.
    let (input, output) = unsafe { (File::from_raw_fd(input), File::from_raw_fd(output)) };
    CHANNEL.with(|c| {
        *c.borrow_mut() = Some(Channel {
            input: BufReader::with_capacity(64 * 1024, input),
            output: BufWriter::with_capacity(64 * 1024, output),
        })
    });
    Ok(())
}

/// Reads one frame's body into `body`. At the end of input the process exits with status 0, as
/// the protocol asks.
pub fn read_frame(body: &mut Vec<u8>) {
    let result: io::Result<Option<usize>> = CHANNEL.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.as_mut().expect("eptfuzz-target: the channel is not open");
        let mut length = [0u8; 4];
        // End of input between frames is the harness's "stop"; inside a frame it is not.
        loop {
            match c.input.read(&mut length[..1]) {
                Ok(0) => process::exit(0),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        c.input.read_exact(&mut length[1..])?;
        let length = u32::from_le_bytes(length) as usize;
        if length > MAX_BODY {
            return Ok(Some(length));
        }
        body.clear();
        body.resize(length, 0);
        c.input.read_exact(body)?;
        Ok(None)
    });
    match result {
        Ok(None) => {}
        Ok(Some(length)) => fatal(&format!("a command of {} bytes, over the protocol's 1 MiB", length)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            eprintln!("eptfuzz-target: the harness closed standard input inside a frame");
            process::exit(EXIT_TRUNCATED);
        }
        Err(e) => fatal(&format!("reading a command: {}", e)),
    }
}

/// Sends one frame whose body `frame` holds after 4 bytes kept for the length.
pub fn write_frame(frame: &mut [u8]) {
    let body = frame.len() - 4;
    if body > MAX_BODY {
        fatal(&format!("an answer of {} bytes, over the protocol's 1 MiB", body));
    }
    frame[..4].copy_from_slice(&(body as u32).to_le_bytes());
    let result = CHANNEL.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.as_mut().expect("eptfuzz-target: the channel is not open");
        c.output.write_all(frame)?;
        c.output.flush()
    });
    if let Err(e) = result {
        // The harness is gone (it closed its end): there is nobody left to answer.
        if e.kind() == io::ErrorKind::BrokenPipe {
            process::exit(0);
        }
        eprintln!("eptfuzz-target: writing an answer: {}", e);
        process::exit(EXIT_ERROR);
    }
}

/// A frame under construction: 4 bytes for the length, then the body.
pub struct Frame(pub Vec<u8>);

impl Frame {
    pub fn new(code: u8) -> Frame {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0, 0, 0, 0, code]);
        Frame(v)
    }

    pub fn u8(&mut self, v: u8) -> &mut Frame {
        self.0.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Frame {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Frame {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Frame {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `u16 n` then `n` bytes; longer text is cut at 65535 bytes.
    pub fn text(&mut self, s: &str) -> &mut Frame {
        let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        self.u16(bytes.len() as u16);
        self.0.extend_from_slice(bytes);
        self
    }

    /// `u32 count` then each event as `u8 kind, u32 value`; a WRITE event (kind 4) then has its
    /// new value, `u64`, taken in order from `words`.
    pub fn events(&mut self, events: &[(u8, u32)], words: &[u64]) -> &mut Frame {
        self.u32(events.len() as u32);
        let mut words = words.iter();
        for &(kind, value) in events {
            self.u8(kind).u32(value);
            if kind == crate::memory::EVENT_WRITE {
                self.u64(*words.next().expect("a value for every WRITE event"));
            }
        }
        self
    }

    pub fn send(&mut self) {
        write_frame(&mut self.0);
    }
}

/// Reports a fault of the code under test (FAULT) and exits: the harness makes it a finding.
pub fn fault(kind: u8, message: &str) -> ! {
    if !CHANNEL.with(|c| c.borrow().is_some()) {
        // No harness (a unit test over crate::testing): the fault is a panic there.
        panic!("eptfuzz-target: FAULT {}: {}", kind, message);
    }
    eprintln!("eptfuzz-target: FAULT: {}", message);
    Frame::new(ANSWER_FAULT).u8(kind).text(message).send();
    process::exit(EXIT_FAULT);
}

/// Says why the target cannot go on (ERROR) and exits: the harness's side broke the protocol or the
/// environment is unusable. Never a finding.
pub fn fatal(message: &str) -> ! {
    eprintln!("eptfuzz-target: ERROR: {}", message);
    // Before the channel is open there is nobody to tell but standard error.
    let open = CHANNEL.with(|c| c.borrow().is_some());
    if open {
        Frame::new(ANSWER_ERROR).text(message).send();
    }
    process::exit(EXIT_ERROR);
}
