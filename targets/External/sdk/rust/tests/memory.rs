//! The allocator, the address conversions and the host-memory check, run over a private arena
//! (`eptfuzz_target::testing`); each test runs on its own thread, with its own arena.

use eptfuzz_target::testing;
use eptfuzz_target::{EptpRequest, InveptType, MemoryType, Page, Pa, Permissions};

const ARENA: u64 = 0x7f_0000_0000;

fn page(i: u64) -> u64 {
    ARENA + i * 4096
}

#[test]
fn pages_are_taken_lowest_first_zeroed_and_reported() {
    testing::start(ARENA, 8);
    let mut a = Page::new();
    let b = Page::new();
    assert_eq!((a.pa(), b.pa()), (Pa::new(page(0)), Pa::new(page(1))));
    a.inner_mut()[8] = 0xff;
    drop(a);
    assert_eq!(testing::take_events(), vec![(1, 0), (1, 1), (2, 0)]);
    let again = Page::new();
    assert_eq!(again.pa(), Pa::new(page(0)), "the released page is the lowest free one");
    assert!(again.inner().iter().all(|&b| b == 0), "a page is zero when taken");
    assert_eq!(testing::take_events(), vec![(1, 0)]);
    drop(b);
}

#[test]
fn into_raw_keeps_a_page_and_from_pa_gives_it_back() {
    testing::start(ARENA, 8);
    let pa = Page::new().into_raw();
    assert_eq!(testing::take_events(), vec![(1, 0)]);
    drop(unsafe { Page::from_pa(pa) });
    assert_eq!(testing::take_events(), vec![(2, 0)]);
}

#[test]
fn the_arena_runs_out() {
    testing::start(ARENA, 2);
    let pages = (Page::new(), Page::new());
    assert!(Page::try_new().is_none());
    drop(pages);
    assert!(Page::try_new().is_some());
}

#[test]
#[should_panic(expected = "FAULT 1: released page 0x7f00000000 (arena page 0) twice")]
fn releasing_a_page_twice_is_a_fault() {
    testing::start(ARENA, 8);
    let pa = Page::new().into_raw();
    drop(unsafe { Page::from_pa(pa) });
    drop(unsafe { Page::from_pa(pa) });
}

#[test]
#[should_panic(expected = "FAULT 2: released page 0x7f00003000 (arena page 3), which was never taken")]
fn releasing_a_page_never_taken_is_a_fault() {
    testing::start(ARENA, 8);
    drop(unsafe { Page::from_pa(Pa::new(page(3))) });
}

#[test]
#[should_panic(expected = "FAULT 2: released 0x1000, which is not an arena page")]
fn releasing_memory_outside_the_arena_is_a_fault() {
    testing::start(ARENA, 8);
    drop(unsafe { Page::from_pa(Pa::new(0x1000)) });
}

#[test]
fn a_new_case_forgets_every_page_without_events() {
    testing::start(ARENA, 8);
    let mut kept = Page::new();
    kept.inner_mut()[0] = 1;
    let pa = kept.into_raw();
    testing::start(ARENA, 8);
    assert_eq!(testing::take_events(), vec![]);
    // SAFETY: the address of an arena page.
    assert_eq!(unsafe { *pa.into_kva().as_ptr::<u8>() }, 0, "RESET zeroes what was handed out");
    assert_eq!(Page::new().pa(), pa);
}

#[test]
fn kva_and_pa_convert_both_ways_in_and_outside_the_arena() {
    testing::start(ARENA, 8);
    let table = Page::new();
    assert_eq!(table.kva().into_pa(), table.pa());
    assert_eq!((table.pa() + 0x18).into_kva().into_pa(), table.pa() + 0x18);
    let guest = Pa::new(0x1234_5000);
    testing::write(0x1234_5008, 0xabcd);
    // SAFETY: into_kva backs every host-physical address with readable memory.
    assert_eq!(unsafe { *(guest + 8).into_kva().as_ptr::<u64>() }, 0xabcd);
    assert_eq!(unsafe { *(guest + 16).into_kva().as_ptr::<u64>() }, 0, "unwritten host memory reads zero");
    assert_eq!((guest + 16).into_kva().into_pa(), guest + 16);
}

#[test]
fn writing_host_memory_outside_the_arena_is_caught() {
    testing::start(ARENA, 8);
    testing::write(0x20_0000, 5);
    let word = Pa::new(0x20_0000).into_kva().as_mut_ptr::<u64>();
    assert_eq!(testing::check_host_memory(), Ok(()));
    // SAFETY: into_kva backs the address.
    unsafe { word.add(1).write(7) };
    assert_eq!(
        testing::check_host_memory(),
        Err("wrote host memory outside its table pages: HPA 0x200008 holds 0x7, the harness wrote 0x0".to_string())
    );
}

#[test]
fn invept_without_a_harness_is_an_event() {
    testing::start(ARENA, 8);
    eptfuzz_target::invept(InveptType::Global);
    assert_eq!(testing::take_events(), vec![(3, 2)]);
}

#[test]
fn permissions_map_to_entry_bits_0_1_2_and_10() {
    let all = Permissions::READ | Permissions::WRITE | Permissions::EXECUTE | Permissions::USER_EXECUTE;
    assert_eq!(all.to_entry(), 0x407);
    assert_eq!(Permissions::from_entry(0x405), Permissions::READ | Permissions::EXECUTE | Permissions::USER_EXECUTE);
    assert_eq!(format!("{:?}", Permissions::from_bits(0b1011)), "rwu");
}

#[test]
fn the_eptp_holds_type_walk_length_ad_and_root() {
    let request = EptpRequest { memory_type: MemoryType::WB, walk_length: 4, accessed_dirty: true };
    assert_eq!(request.eptp(0x1234_5000), 0x1234_5000 | 6 | (3 << 3) | (1 << 6));
}

#[test]
fn writing_an_arena_page_not_held_is_caught_and_a_held_one_is_not() {
    testing::start(ARENA, 8);
    let held = Page::new();
    let released = Page::new().into_raw();
    drop(unsafe { Page::from_pa(released) });
    assert!(eptfuzz_target::is_table_page(held.pa()));
    assert!(!eptfuzz_target::is_table_page(released));
    assert!(!eptfuzz_target::is_table_page(Pa::new(page(5))));
    assert!(!eptfuzz_target::is_table_page(Pa::new(0x1000)));
    // SAFETY: arena pages are mapped.
    unsafe { held.kva().as_mut_ptr::<u64>().write(1) };
    assert_eq!(testing::check_host_memory(), Ok(()));
    unsafe { (Pa::new(page(5)) + 16).into_kva().as_mut_ptr::<u64>().write(9) };
    assert_eq!(
        testing::check_host_memory(),
        Err(format!("wrote arena page 5 (never taken) at HPA {:#x}: 0x9, was 0x0", page(5) + 16))
    );
    unsafe { released.into_kva().as_mut_ptr::<u64>().write(3) };
    assert_eq!(
        testing::check_host_memory(),
        Err(format!("wrote arena page 1 (released earlier) at HPA {:#x}: 0x3, was 0x0", page(1)))
    );
}
