using System.Runtime.CompilerServices;
using EptFuzz.Contract;
using EptFuzz.Impl.Ept;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Cpu;

/// <summary>
/// A virtual CPU in VMX non-root operation with EPT: performs guest accesses the way the processor
/// would (SEMANTICS.md), with a TLB that INVEPT invalidates. Decodes EPT and guest entries with
/// this project's own code. One <see cref="AccessResult"/> is reused for every access, so a TLB
/// hit and a walk allocate nothing.
/// </summary>
public sealed partial class VirtualCpu
{
    private readonly CpuCapabilities cpu;
    private readonly IHostMemory memory;
    // The same memory when it is sparse host memory (every target's is): walks read through its walk ways.
    private readonly SparseHostMemory? sparse;
    private readonly TranslationCache tlb = new();
    private readonly AccessResult result = new();

    // The VM-entry checks depend only on the EPTP, the controls and the processor: decided when
    // those are set, not again on every access.
    private bool vmEntryPasses;

    // How the walk treats each EPT entry depends only on the processor and the MBEC control:
    // decided when the controls are set.
    private EptEntryClasses entryClasses;

    public VirtualCpu(CpuCapabilities cpu, IHostMemory memory)
    {
        this.cpu = cpu;
        this.memory = memory;
        sparse = memory as SparseHostMemory;
        vmEntryPasses = VmEntryPasses;
        entryClasses = EptEntryClasses.For(cpu, mbec: false);
    }

    public ulong Eptp { get; private set; }

    public VmxControls Controls { get; private set; }

    public GuestPaging Paging { get; private set; } = GuestPaging.Off;

    public TranslationCache Tlb => tlb;

    /// <summary>False: every access walks (a non-caching CPU, for comparisons in tests).</summary>
    public bool CachingEnabled { get; set; } = true;

    /// <summary>VM entry accepts the current EPTP and controls.</summary>
    public bool VmEntryPasses => VmEntryChecks.Passes(Eptp, Controls, cpu);

    public void SetEptp(ulong eptp)
    {
        Eptp = eptp;
        vmEntryPasses = VmEntryPasses;
    }

    public void SetControls(VmxControls controls)
    {
        Controls = controls;
        vmEntryPasses = VmEntryPasses;
        entryClasses = EptEntryClasses.For(cpu, controls.Mbec);
    }

    public void SetGuestPaging(GuestPaging paging)
    {
        Paging = paging;
        // Loading CR3/CR0/CR4 drops combined mappings; guest-physical ones do not depend on guest paging.
        tlb.InvalidateCombined();
    }

    public void Invept(InveptType type)
    {
        if (type == InveptType.Global)
        {
            tlb.InvalidateAll();
        }
        else
        {
            tlb.Invalidate(Tag);
        }
    }

    /// <summary>Performs one guest access. The returned object is reused by the next call.</summary>
    public AccessResult Access(in Access access)
    {
        result.Reset();
        if (!vmEntryPasses)
        {
            result.Kind = OutcomeKind.NoVmEntry;
        }
        else if (!access.Linear || !Paging.Enabled)
        {
            PhysicalAccess(access.Kind, access.Address);
        }
        else
        {
            LinearAccess(access.Kind, access.Address, access.Cpl);
        }

        return result;
    }

    /// <summary>
    /// The EPT entry at <paramref name="level"/> on the walk for <paramref name="gpa"/>, by the reach
    /// rule of SEMANTICS.md: stop at a not-present entry or a page above the level. Writes nothing.
    /// </summary>
    public bool TryReadEntry(Gpa gpa, EptLevel level, out ulong value)
    {
        value = 0;
        ulong walk = (Eptp >> 3) & 7;
        if (walk is not (3 or 4) || (int)level > (int)walk + 1)
        {
            return false;
        }

        ulong table = Eptp & EptBits.AddressMask;
        for (EptLevel current = (EptLevel)(walk + 1); ; current--)
        {
            value = memory.Read(new Hpa(LevelGeometry.EntryAddress(table, gpa.Value, current)));
            if (current == level)
            {
                return true;
            }

            if (!EptBits.IsPresent(value, Controls.Mbec) || (LevelGeometry.CanMapPage(current) && (value & EptBits.LargePage) != 0))
            {
                value = 0;
                return false;
            }

            table = value & EptBits.AddressMask;
        }
    }

    /// <summary>CR0.PG = 0: the linear address is the GPA, a user-mode address, PAT type WB (EPT-MT-2, EPT-MBEC-3).</summary>
    private void PhysicalAccess(AccessKind kind, ulong gpa)
    {
        // Advanced information with paging off: user-mode (bit 9) and read/write (bit 10), executable (bit 11 = 0).
        var request = new GpaRequest(gpa, Need(kind, userMode: true), AccessBits(kind), kind == AccessKind.Write, true, gpa, (1UL << 9) | (1UL << 10));
        if (TranslateGpa(request, out GpaTranslation translation))
        {
            Translated(translation, gpa, MemoryType.WB);
        }
    }

    /// <summary>
    /// Entry <paramref name="index"/> of the table at <paramref name="table"/>, for a walk. Way:
    /// EPT levels 1..5 take 0..4, guest levels 1..4 take 5..8, so each level of each walk keeps its
    /// own table pages at hand.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadWalkEntry(ulong table, int index, int way) =>
        this.sparse is { } sparse ? sparse.ReadWalkEntry(new Hpa(table), index, way) : memory.Read(new Hpa(table + ((ulong)index << 3)));

    /// <summary>The walk entry at host address <paramref name="address"/> (8-byte aligned).</summary>
    private ulong ReadWalkEntry(ulong address, int way) => ReadWalkEntry(address & ~0xFFFUL, (int)(address >> 3) & 511, way);

    // Inlined: with paging off the PAT type is a constant, and the call was part of every access's fixed cost.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Translated(in GpaTranslation translation, ulong gpa, MemoryType pat)
    {
        ulong visible = Controls.Mbec ? translation.Permissions : translation.Permissions & ~EptBits.UserModeExecute;
        result.Translated(
            new Hpa(translation.Hpa),
            LevelGeometry.SizeOf(translation.Level),
            new Gpa(gpa),
            EptBits.Decode(visible),
            MemoryTypes.Effective(translation.MemoryType, translation.IgnorePat, pat),
            translation.FromCache);
    }
}
