namespace EptFuzz.Mutants.Tests;

/// <summary>
/// Realistic EPT bugs, each a small patch of targets/Impl: the mistakes a hypervisor author makes
/// in walk geometry, large pages, split/merge/unmap bookkeeping, the table-page pool, permission
/// combination, misconfiguration and VM-entry checks, memory types, A/D, exit qualifications,
/// the TLB and INVEPT, and guest paging. Rule ids are those of shared/spec/ept-rules.md.
/// </summary>
public static class MutantCatalog
{
    private const string Geometry = "Ept/LevelGeometry.cs";
    private const string Table = "Ept/ExtendedPageTable.cs";
    private const string Reshape = "Ept/ExtendedPageTable.Reshape.cs";
    private const string Checks = "Ept/ExtendedPageTable.Checks.cs";
    private const string Pool = "Memory/TablePagePool.cs";
    private const string EptWalk = "Cpu/VirtualCpu.Ept.cs";
    private const string Classes = "Cpu/EptEntryClasses.cs";
    private const string GuestWalk = "Cpu/VirtualCpu.Guest.cs";
    private const string Cpu = "Cpu/VirtualCpu.cs";
    private const string Tlb = "Cpu/TranslationCache.cs";
    private const string Types = "Cpu/MemoryTypes.cs";
    private const string Entry = "Cpu/VmEntryChecks.cs";

    public static IReadOnlyList<Mutant> All { get; } =
    [
        // ---- walk and index geometry (shared by the table builder and the walker) ----
        new(
            "IndexShiftTypoAtPml4",
            Geometry,
            "public static int Shift(EptLevel level) => 12 + 9 * ((int)level - 1);",
            "public static int Shift(EptLevel level) => level switch { EptLevel.Pte => 12, EptLevel.Pde => 21, EptLevel.Pdpte => 30, EptLevel.Pml4e => 38, _ => 48 };",
            "the level-shift table says 38 for the PML4 (should be 39): tables are built and walked with GPA[46:38]",
            "EPT-WALK-1: the PML4E is selected by GPA[47:39]"),
        new(
            "IndexMaskEightBits",
            Geometry,
            "public static int IndexAt(ulong address, int shift) => (int)((address >> shift) & 511);",
            "public static int IndexAt(ulong address, int shift) => (int)((address >> shift) & 255);",
            "table indices are masked with 0xFF instead of 0x1FF, so entries 256..511 alias 0..255",
            "EPT-WALK-1: each level is indexed by 9 GPA bits"),

        // ---- large pages ----
        new(
            "WalkerIgnoresLargePageInPdpte",
            Classes,
            "bool isPage = level == EptLevel.Pte || ((level == EptLevel.Pde || level == EptLevel.Pdpte) && largePage);",
            "bool isPage = level == EptLevel.Pte || (level == EptLevel.Pde && largePage);",
            "the walker stops at bit 7 only in PDEs: a 1 GiB page's frame is walked as if it were a page directory",
            "EPT-WALK-2: a PDPTE with bit 7 = 1 maps a 1-GByte page"),
        new(
            "LargePageOffsetDropped",
            EptWalk,
            "Hpa = (leaf & LevelGeometry.LeafAddressMask(level)) | (gpa & (span - 1)),",
            "Hpa = (leaf & LevelGeometry.LeafAddressMask(level)) | (gpa & (LevelGeometry.PageBytes - 1)),",
            "the HPA takes only the 12-bit page offset from the GPA, whatever the page size",
            "EPT-WALK-2: a 2-MByte page keeps GPA[20:0], a 1-GByte page GPA[29:0]"),
        new(
            "LargePageReservedBitsUnchecked",
            Classes,
            "return !supported ? ulong.MaxValue : lowAddress;",
            "return !supported ? ulong.MaxValue : 0;",
            "a 2 MiB / 1 GiB leaf with address bits below its alignment is walked instead of misconfigured",
            "EPT-MISCONFIG-4: bits [20:12] of a 2-MByte and [29:12] of a 1-GByte page are reserved"),
        new(
            "HugePageWithoutCapability",
            Classes,
            "return !supported ? ulong.MaxValue : lowAddress;",
            "return lowAddress;",
            "bit 7 is honoured in a PDPTE/PDE even when the processor lacks that page size",
            "EPT-MISCONFIG-4: bit 7 is reserved where the page size is not supported (CAP[16], CAP[17])"),

        // ---- split, merge and unmap bookkeeping ----
        new(
            "PartialRangeTakesWholeHugePage",
            Reshape,
            "if (pageGpa >= start && end - pageGpa >= span)",
            "if (pageGpa + span > start && end > pageGpa)",
            "a huge page that the range only overlaps counts as covered: partial unmap/protect/retype hits the whole page instead of splitting it",
            "API: unmap/protect/retype change exactly [gpa, gpa+size); a partly covered huge page is split first"),
        new(
            "SplitGrantsTablePermissions",
            Reshape,
            "ulong attributes = value & ~EptBits.AddressMask & ~EptBits.LargePage;",
            "ulong attributes = (value & EptBits.TypeMask) | NonLeafBits;",
            "split copies the memory type but gives the 512 new pages the non-leaf permissions (RWX)",
            "API: split keeps every page's permissions (EPT-VIOL-2/3/4 then no longer fire where the map forbade the access)"),
        new(
            "SplitDropsMemoryType",
            Reshape,
            "ulong attributes = value & ~EptBits.AddressMask & ~EptBits.LargePage;",
            "ulong attributes = value & (EptBits.PermissionMask | EptBits.Accessed | EptBits.Dirty);",
            "split keeps the permissions but not the memory type and IPAT: the new pages become UC",
            "API: split keeps every page's memory type (EPT-MT-4)"),
        new(
            "SplitChildStrideFourK",
            Reshape,
            "ulong hpa = baseHpa + ((ulong)i * span);",
            "ulong hpa = baseHpa + ((ulong)i << 12);",
            "the table that replaces a huge page steps its children's HPAs by 4 KiB at every level",
            "API: split maps the same HPAs (EPT-WALK-2 on the new 2 MiB leaves)"),
        new(
            "MergeTreatsAccessedDirtyAsAttributes",
            Reshape,
            "const ulong History = EptBits.Accessed | EptBits.Dirty;",
            "const ulong History = 0;",
            "merge compares the A/D flags the processor wrote as if they were attributes, so pages the guest touched never merge",
            "API: merge of contiguous pages with equal permissions and memory type is Ok (A/D are history, EPT-AD-2/3)"),
        new(
            "MergeIgnoresAttributes",
            Reshape,
            "|| (value & ~EptBits.AddressMask & ~History) != attributes)",
            "|| (value & EptBits.PermissionMask) == 0)",
            "merge checks that every page is present, not that their permissions and memory types are equal",
            "API: merge of pages with different attributes is NotMergeable"),

        // ---- the table-page pool ----
        new(
            "RecycledTablePageNotZeroed",
            Pool,
            "tx.ClearPage(taken);",
            "if (fromBump) tx.ClearPage(taken);",
            "only never-used pages are zeroed: a table page freed by merge comes back with its 512 old leaves",
            "API: a new table starts empty (a stale entry maps a GPA nobody mapped)"),
        new(
            "FreedTableStillReferenced",
            Reshape,
            "                ClearEntry(info.ParentEntry);\n",
            string.Empty,
            "an emptied table is returned to the pool but its parent entry still points at it (use after free once the page is reused)",
            "API: a freed table page is unreachable; after unmap the range is NotExist and maps again"),
        new(
            "EmptinessScanStopsHalfway",
            Reshape,
            "const ulong scanned = LevelGeometry.PageBytes;",
            "const ulong scanned = LevelGeometry.PageBytes / 2;",
            "the is-this-table-empty scan covers entries 0..255 only: a table still mapping pages at 256..511 is freed and its parent cleared",
            "API: a table is freed only when every entry is free; pages stay mapped until unmapped"),

        // ---- permissions across levels ----
        new(
            "PermissionsFromLeafOnly",
            EptWalk,
            "permissions &= value;",
            "permissions = value;",
            "the permissions of the last entry read replace, rather than AND with, those of the levels above",
            "EPT-VIOL-2/3/4: an access is refused if any entry of the walk lacks the permission (AND over all levels)"),

        // ---- misconfigurations ----
        new(
            "WalkerAcceptsWriteOnly",
            Classes,
            "if (!read && (value & EptBits.WriteAccess) != 0)",
            "if (!read && (value & EptBits.WriteAccess) != 0 && (value & EptBits.ExecuteAccess) != 0)",
            "write without read is flagged only together with execute (-WX); -W- is walked",
            "EPT-MISCONFIG-1: bit 1 set with bit 0 clear is a misconfiguration"),
        new(
            "MapAcceptsWriteOnly",
            Checks,
            "if (!read && (permissions & EptPermissions.WriteAccess) != 0)",
            "if (!read && (permissions & EptPermissions.WriteAccess) != 0 && (permissions & EptPermissions.ExecuteAccess) != 0)",
            "the API refuses write-without-read only when execute is asked for too, and installs -W- entries",
            "API: perm=w is InvalidPermission (it would be EPT-MISCONFIG-1)"),
        new(
            "ExecuteOnlyCapabilityInverted",
            Classes,
            "return !read && execute && !cpu.ExecuteOnly;",
            "return !read && execute && cpu.ExecuteOnly;",
            "the execute-only capability bit is read with the wrong polarity",
            "EPT-MISCONFIG-2: execute without read is a misconfiguration only without CAP[0]"),
        new(
            "UserExecuteIgnoredInMisconfig",
            Classes,
            "bool execute = (value & EptBits.ExecuteAccess) != 0 || (mbec && (value & EptBits.UserModeExecute) != 0);",
            "bool execute = (value & EptBits.ExecuteAccess) != 0;",
            "the execute-without-read check looks at bit 2 only, not at user-mode execute (bit 10) under MBEC",
            "EPT-MISCONFIG-3: XU without read is a misconfiguration without execute-only support"),
        new(
            "MaxPhyAddrOffByOne",
            Classes,
            "ulong aboveMaxPhyAddr = EptBits.AddressMask & ~EptBits.AddressMaskBelow(cpu.MaxPhyAddr);",
            "ulong aboveMaxPhyAddr = EptBits.AddressMask & ~EptBits.AddressMaskBelow(cpu.MaxPhyAddr + 1);",
            "the reserved-address check starts one bit too high: bit MAXPHYADDR itself is accepted",
            "EPT-MISCONFIG-6: bits [51:MAXPHYADDR] are reserved"),
        new(
            "MapHpaLimitOffByOne",
            Table,
            "hpa.Value >= HpaLimit || size > HpaLimit - hpa.Value",
            "hpa.Value >= HpaLimit || size >= HpaLimit - hpa.Value",
            "a page that ends exactly at 2^MAXPHYADDR is refused as out of range",
            "API: map accepts any HPA range below 2^MAXPHYADDR"),

        // ---- memory types ----
        new(
            "MemoryTypeTableTypo",
            Types,
            "0, 1, 1, 4, 5, 5, // WP",
            "0, 1, 1, 4, 4, 5, // WP",
            "a transcription error in Table 11-7: EPT type WP with PAT WB gives WT instead of WP",
            "EPT-MT-5: the effective type combines the EPT type (as MTRR) and the PAT type"),
        new(
            "IgnorePatFromLargePageBit",
            EptWalk,
            "IgnorePat = (leaf & EptBits.IgnorePat) != 0,",
            "IgnorePat = (leaf & EptBits.LargePage) != 0,",
            "IPAT is read from bit 7 instead of bit 6: every 2 MiB / 1 GiB leaf ignores the guest PAT, no 4 KiB leaf does",
            "EPT-MT-4: IPAT is bit 6 of the leaf"),
        new(
            "GuestPatBitFromPageSizeBit",
            GuestWalk,
            "ulong patBit = level == EptLevel.Pte ? GuestBits.PageSize : GuestBits.LargePat;",
            "ulong patBit = GuestBits.PageSize;",
            "the PAT index of a 2 MiB / 1 GiB guest page takes bit 7 (PS, always 1) instead of bit 12",
            "Vol 3A §4.9.2: PAT is bit 12 of a PDE/PDPTE that maps a page; EPT-MT-5"),

        // ---- accessed and dirty ----
        new(
            "DirtyNotSetOnHugeLeaf",
            EptWalk,
            "ulong updated = current | EptBits.Accessed | (isLeaf && request.Write ? EptBits.Dirty : 0);",
            "ulong updated = current | EptBits.Accessed | (isLeaf && level == EptLevel.Pte && request.Write ? EptBits.Dirty : 0);",
            "the EPT dirty flag is set only on 4 KiB leaves, never on a 2 MiB or 1 GiB leaf",
            "EPT-AD-3: a write sets D in the entry that maps the page, whatever its size"),
        new(
            "CachedCleanTranslationSkipsDirty",
            EptWalk,
            "&& (!request.Write || !accessedDirty || cached.Dirty))",
            ")",
            "a write hits a cached translation made by a read, so the EPT dirty flag is never set",
            "EPT-AD-3: the first write through a clean translation sets D"),
        new(
            "GuestTableReadsNotWritesUnderAd",
            GuestWalk,
            "ulong entryNeed = accessedDirty ? EptBits.WriteAccess : EptBits.ReadAccess;",
            "ulong entryNeed = EptBits.ReadAccess;",
            "with EPT A/D on, guest paging-structure reads are checked as EPT reads, not writes",
            "EPT-VIOL-5: with EPTP[6] = 1 accesses to guest paging structures are writes"),

        // ---- exit qualification ----
        new(
            "GuestTableViolationReportedAsFinal",
            EptWalk,
            "| (request.Final ? 1UL << 8 : 0)",
            "| (1UL << 8)",
            "qualification bit 8 is always set, also for a violation on a guest paging-structure access",
            "EPT-EXITQ-1: bit 8 is 0 for an access to a guest paging-structure entry"),

        // ---- TLB and INVEPT ----
        new(
            "SingleContextInveptKeepsCombined",
            Tlb,
            "            Drop(combined[size], Combined + size, tag, everyTag: false);\n",
            string.Empty,
            "single-context INVEPT drops guest-physical mappings but not combined (linear) ones",
            "EPT-INVEPT-3: single-context INVEPT invalidates guest-physical and combined mappings of the EPTRTA"),
        new(
            "SingleContextInveptWrongTag",
            Cpu,
            "tlb.Invalidate(Tag);",
            "tlb.Invalidate(Eptp);",
            "single-context INVEPT compares the whole EPTP (type, walk length, A/D) with the EPTRTA tags and invalidates nothing",
            "EPT-INVEPT-3: mappings are tagged with EPTP[51:12]"),

        new(
            "NoInveptAfterLiveChange",
            Table,
            "tx.AddInvept(LiveChangeInvept);",
            "",
            "protect, unmap, split and merge rewrite present entries without an INVEPT, so the CPU keeps using the old translation",
            "EPT-INVEPT-5: clearing permissions, changing the address, bit 7 or the memory type of a present entry must be followed by INVEPT"),

        // ---- guest paging ----
        new(
            "SmepOnUserFetches",
            GuestWalk,
            "|| (kind == AccessKind.Fetch && !userMode && paging.Smep && user);",
            "|| (kind == AccessKind.Fetch && userMode && paging.Smep && user);",
            "SMEP is applied to user-mode fetches instead of supervisor-mode fetches from user pages",
            "Vol 3A §4.6: SMEP forbids supervisor-mode fetches from user-mode pages"),
        new(
            "WriteProtectIgnored",
            GuestWalk,
            "(kind == AccessKind.Write && !writable && (userMode || paging.Wp))",
            "(kind == AccessKind.Write && !writable && userMode)",
            "CR0.WP is ignored: supervisor writes to read-only guest pages succeed",
            "Vol 3A §4.6: with CR0.WP = 1 supervisor writes need R/W = 1"),
        new(
            "NxReservedWithoutNxeUnchecked",
            GuestWalk,
            "if ((value & reservedAddress) != 0 || (!nxe && (value & GuestBits.ExecuteDisable) != 0))",
            "if ((value & reservedAddress) != 0)",
            "bit 63 (XD) of a guest entry is not reserved when IA32_EFER.NXE = 0",
            "Vol 3A §4.5: XD is reserved without NXE (a #PF with RSVD)"),
        new(
            "GuestUserBitFromLeafOnly",
            GuestWalk,
            "user &= (value & GuestBits.UserSupervisor) != 0;",
            "user = (value & GuestBits.UserSupervisor) != 0;",
            "the guest U/S of the last entry replaces the AND over all levels",
            "Vol 3A §4.6: a page is user-mode only if U/S = 1 at every level"),

        // ---- VM-entry checks ----
        new(
            "FiveLevelWalkWithoutCapability",
            Entry,
            "bool walkLength = walk == 3 || (walk == 4 && cpu.Walk5);",
            "bool walkLength = walk == 3 || walk == 4;",
            "VM entry accepts a 5-level EPTP on a processor without 5-level walks",
            "EPTP-CHK-2: EPTP[5:3] = 4 needs CAP[7]"),
        new(
            "EptpReservedBit7Unchecked",
            Entry,
            "bool reserved = (eptp & 0xF80UL) == 0;",
            "bool reserved = (eptp & 0xF00UL) == 0;",
            "the EPTP reserved-bit mask starts at bit 8: bit 7 is accepted",
            "EPTP-CHK-4: EPTP[11:7] are reserved (bit 7 without supervisor shadow-stack control)"),
        new(
            "AccessedDirtyEnableWithoutCapability",
            Entry,
            "bool accessedDirty = (eptp & (1UL << 6)) == 0 || cpu.AccessedDirty;",
            "bool accessedDirty = true;",
            "VM entry accepts EPTP[6] = 1 on a processor without EPT A/D flags",
            "EPTP-CHK-3: bit 6 = 1 requires CAP[21]"),

        // ---- reached only through value classes (issue 15): states the generator never made before ----
        new(
            "MemoryTypeTableWcWtTypo",
            Types,
            "0, 1, 1, 0, 1, 0, // WC",
            "0, 1, 1, 1, 1, 0, // WC",
            "Table 11-7 typo: EPT WC with guest PAT WT gives WC (should be UC); reached only with a guest PAT index whose entry is WT",
            "EPT-MT-5: IPAT = 0 combines the EPT type with the PAT type by Table 11-7"),
        new(
            "MemoryTypeTableWpUcMinusTypo",
            Types,
            "0, 1, 1, 4, 5, 5, // WP",
            "0, 0, 1, 4, 5, 5, // WP",
            "Table 11-7 typo: EPT WP with guest PAT UC- gives UC (should be WC)",
            "EPT-MT-5: IPAT = 0 combines the EPT type with the PAT type by Table 11-7"),
        new(
            "PatIndexIgnoresPwt",
            GuestWalk,
            " | ((leaf & GuestBits.WriteThrough) != 0 ? 1 : 0);",
            ";",
            "the guest PAT index drops PWT: indices 1, 3, 5, 7 read entries 0, 2, 4, 6",
            "Vol 3A §11.12.3: the PAT entry is selected by PAT*4 + PCD*2 + PWT"),
        new(
            "IdentityMapOffsetIgnoresHpaAlignment",
            "Hypervisor/MemoryMap.cs",
            "if (supported && ((gpa | hpa) & (bytes - 1)) == 0 && remaining >= bytes)",
            "if (supported && (gpa & (bytes - 1)) == 0 && remaining >= bytes)",
            "an identity map with an offset picks huge pages by the GPA's alignment alone: a 2M-aligned GPA whose HPA is only 4K-aligned gets a 2M leaf, whose address drops the HPA's low bits",
            "case-format identity-map: the largest page that the alignment of both addresses allows"),
        new(
            "RangeSizeAlignmentUnchecked",
            Checks,
            "if (size == 0 || ((gpa.Value | size) & (LevelGeometry.PageBytes - 1)) != 0)",
            "if (size == 0 || (gpa.Value & (LevelGeometry.PageBytes - 1)) != 0)",
            "unmap/protect/retype accept a size that is no multiple of 4K (the last partial page is changed whole)",
            "case-format: Unaligned when the address or size is not aligned to the page size"),
        new(
            "GMapAcceptsNonCanonical",
            "Hypervisor/GuestPageTables.cs",
            "if (!GuestBits.IsCanonical(gva.Value) || gpa.Value >= 1UL << maxPhyAddr",
            "if (gpa.Value >= 1UL << maxPhyAddr",
            "gmap maps a non-canonical linear address (its bits 63:48 are dropped by the index arithmetic) instead of refusing it",
            "Vol 3A §4.5: linear addresses must be canonical; case-format gmap: OutOfRange"),

        // ---- gaps a mutation run (Stryker, issue 15) left alive: compared fields and intent ----
        new(
            "GMapRefusesCanonical",
            "Hypervisor/GuestPageTables.cs",
            "if (!GuestBits.IsCanonical(gva.Value) || gpa.Value >= 1UL << maxPhyAddr",
            "if (GuestBits.IsCanonical(gva.Value) || gpa.Value >= 1UL << maxPhyAddr",
            "gmap refuses every canonical address: no guest table is built, and model and implementation then agree on the page fault",
            "case-format gmap: OutOfRange only for a non-canonical address or a GPA beyond MAXPHYADDR"),
        new(
            "TranslationReportsAllPermissions",
            Cpu,
            "ulong visible = Controls.Mbec ? translation.Permissions : translation.Permissions & ~EptBits.UserModeExecute;",
            "ulong visible = Controls.Mbec ? 0xFUL : 0x7UL;",
            "a translated guest-physical access reports RWX (and XU under MBEC) whatever its walk granted",
            "SEMANTICS.md Translated: Permissions = AND over the walk of R, W, X (and XU under MBEC)"),
    ];
    /// <summary>
    /// Bookkeeping bugs (issue 15): mistakes in the implementation's own records (which table pages
    /// are free, which entries are blank leaves, which cache slots are filled) that no SDM rule
    /// names. Not in <see cref="All"/>: the catalog's test requires every bug found under the
    /// default feedback; these are measured under rules+classes and under rules+classes+code by
    /// <c>BookkeepingDetectionTests</c>. Leaks and pool-exhaustion handling are not here: README
    /// ("Bookkeeping bugs") says why no case can show them.
    /// </summary>
    public static IReadOnlyList<Mutant> Bookkeeping { get; } =
    [
        new(
            "MergeIgnoresContiguity",
            Reshape,
            "                || (value & LevelGeometry.LeafAddressMask(childLevel)) != baseHpa + ((ulong)i * childSpan)\n",
            string.Empty,
            "merge checks that the 512 leaves have equal attributes but not that their frames are contiguous: scattered pages become one large page",
            "API: merge is NotMergeable unless the pages are contiguous (case-format merge)"),
        new(
            "EmptinessScanChecksTableAddress",
            Reshape,
            "if (blankLeaves.Contains(table + offset))",
            "if (blankLeaves.Contains(table))",
            "the emptiness check looks up the table's own address among the blank leaves instead of each entry's: a table whose only mappings are all-zero leaves (frame 0, no access, UC) is freed while they are mapped",
            "API: unmap frees a table only when it maps nothing (table-page accounting)"),
        new(
            "CombinedSlotsMarkedAsPhysical",
            Tlb,
            "MarkFilled(Combined + sizeIndex, slot);",
            "MarkFilled(sizeIndex, slot);",
            "a combined (guest-linear) TLB slot is recorded in the physical mappings' bitmap: INVEPT and a CR3 change never drop it",
            "EPT-CACHE-4 / EPT-INVEPT-3: INVEPT invalidates combined mappings too"),
        new(
            "TlbSlotMatchesOnTagOnly",
            Tlb,
            "ref PhysicalMapping slot = ref table[Slot(page)];\n            if (slot.Valid && slot.Tag == tag && slot.PageNumber == page)",
            "ref PhysicalMapping slot = ref table[Slot(page)];\n            if (slot.Valid && slot.Tag == tag)",
            "a reused TLB slot answers for any page that hashes to it: a page whose slot another page filled gets that page's translation",
            "EPT-CACHE-2/3: a cached mapping is used only for the page it was created for"),
        new(
            "FreeRollbackLeavesPageFree",
            Pool,
            "            freed.Pop();\n            inUse.Add(page, info);",
            "            inUse.Add(page, info);",
            "a table page freed by an operation that is then rolled back stays on the free list while in use again: handed out twice later",
            "API: a failed operation changes nothing (table-page accounting: linked-twice)"),
    ];
}
