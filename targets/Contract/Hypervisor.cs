namespace EptFuzz.Contract;

/// <summary>The EPTP as a case asks for it: named fields (root chosen by the hypervisor) or all 64 bits.</summary>
public sealed record EptpRequest
{
    public ulong? Raw { get; init; }
    public MemoryType MemoryType { get; init; } = MemoryType.WB;
    public int WalkLength { get; init; } = 4;
    public bool AccessedDirty { get; init; }
}

/// <summary>Something a hypervisor operation did that every translator must see, in order.</summary>
public enum EffectKind : byte
{
    /// <summary>An 8-byte write to host memory (table entries, guest tables, pokes).</summary>
    Write,
    /// <summary>The hypervisor invalidated cached translations (INVEPT).</summary>
    Invept,
    /// <summary>
    /// A whole 4 KiB page written at once (a new table): <see cref="HypervisorEffect.Write"/>'s
    /// address is the page, <see cref="HypervisorEffect.Words"/> its 512 words. The same as 512
    /// <see cref="Write"/> effects in address order.
    /// </summary>
    Page,
}

/// <param name="Words">
/// For <see cref="EffectKind.Page"/>: the page's 512 words, unchanged until the hypervisor's next
/// <see cref="IEptHypervisor.DrainEffects"/> or its disposal, after which it may reuse the array;
/// else null.
/// </param>
public readonly record struct HypervisorEffect(EffectKind Kind, MemoryWrite Write, InveptType InveptType, ulong[]? Words = null)
{
    public const int WordsPerPage = 512;

    public static HypervisorEffect Of(MemoryWrite write) => new(EffectKind.Write, write, default);

    public static HypervisorEffect Of(InveptType type) => new(EffectKind.Invept, default, type);

    /// <param name="page">4 KiB aligned.</param>
    /// <param name="words">512 words, not changed while the effect is in use (see <see cref="Words"/>).</param>
    public static HypervisorEffect OfPage(Hpa page, ulong[] words)
    {
        if ((page.Value & 0xFFF) != 0 || words.Length != WordsPerPage)
        {
            throw new ArgumentException($"a page effect is 512 words at a 4 KiB-aligned address, not {words.Length} at {page}");
        }

        return new(EffectKind.Page, new MemoryWrite(page, 0), default, words);
    }
}

/// <summary>
/// A hypervisor's EPT API: the system under test that builds tables. Every method validates its
/// input and returns an <see cref="ApiResult"/>; none throws on bad input. The host-memory writes
/// and INVEPTs each call makes are journaled and handed out by <see cref="DrainEffects"/> so that
/// every translator replays exactly the same bytes.
/// </summary>
public interface IEptHypervisor
{
    string Name { get; }

    /// <summary>Called once, first. The processor the hypervisor runs on.</summary>
    ApiResult Configure(CpuCapabilities cpu);

    ApiResult SetEptp(EptpRequest request);

    ApiResult SetControls(VmxControls controls);

    /// <summary>Maps [gpa, gpa+size) to [hpa, hpa+size) as one page; size must be 4K, 2M or 1G.</summary>
    ApiResult Map(Gpa gpa, Hpa hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat);

    ApiResult Unmap(Gpa gpa, ulong size);

    ApiResult Protect(Gpa gpa, ulong size, EptPermissions permissions);

    ApiResult Retype(Gpa gpa, ulong size, MemoryType memoryType, bool ignorePat);

    ApiResult Split(Gpa gpa);

    ApiResult Merge(Gpa gpa, ulong size);

    /// <summary>One range [start, end) of the guest's memory map.</summary>
    ApiResult AddMemoryRange(Gpa start, Gpa end, MemoryType memoryType);

    /// <summary>Maps every memory range rwx with its type; HPA = GPA, or GPA + offset for GPAs at or above offsetFrom.</summary>
    ApiResult IdentityMap(ulong offset, Gpa offsetFrom);

    ApiResult Invept(InveptType type);

    /// <summary>Raw edit of the EPT entry at <paramref name="level"/> on the walk for <paramref name="gpa"/>.</summary>
    ApiResult Edit(Gpa gpa, EptLevel level, ulong set, ulong clear, Hpa? leafHpa);

    ApiResult Poke(Hpa hpa, ulong value);

    /// <summary>Guest paging on or off. With paging on, clears the top-level table at CR3 and takes guest tables from [tablesStart, tablesEnd).</summary>
    ApiResult SetGuestPaging(GuestPaging paging, Gpa tablesStart, Gpa tablesEnd);

    ApiResult GMap(Gva gva, Gpa gpa, ulong size, bool writable, bool user, bool executable);

    ApiResult GEdit(Gva gva, EptLevel level, ulong set, ulong clear);

    /// <summary>The current EPTP value (root included).</summary>
    ulong Eptp { get; }

    VmxControls Controls { get; }

    GuestPaging GuestPaging { get; }

    IHostMemoryImage Memory { get; }

    /// <summary>
    /// Appends the effects of the calls since the last drain, in order; returns how many. The
    /// words of the page effects handed out by the previous drain may be reused from this call on:
    /// a caller applies (or copies) an effect before it drains again.
    /// </summary>
    int DrainEffects(List<HypervisorEffect> into);

    /// <summary>
    /// Table-page accounting, for the invariant "the table pages a hypervisor holds are exactly
    /// those reachable from its EPT roots" (no leak, no freed page still linked, no page linked
    /// twice). Appends the 4 KiB pages its allocator holds as EPT table pages now, and the roots
    /// of the tables it keeps, in EPTP form: [51:12] the root table, [5:3] the walk length minus
    /// one (4 for a 5-level root; 0 or 3 read as 4-level); returns false when it keeps no such
    /// account (nothing is checked then).
    /// </summary>
    bool ReportTablePages(List<Hpa> held, List<Hpa> roots) => false;
}
