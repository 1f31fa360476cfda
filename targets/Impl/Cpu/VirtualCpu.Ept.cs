using System.Runtime.CompilerServices;
using EptFuzz.Contract;
using EptFuzz.Impl.Ept;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Cpu;

// The EPT side of the virtual CPU: one GPA access through the TLB or a fresh walk (EPT-ORDER-1).
public sealed partial class VirtualCpu
{
    private const ulong AccessedDirtyEnable = 1UL << 6;

    /// <summary>One GPA access: what it needs, how a violation describes it.</summary>
    private readonly record struct GpaRequest(ulong Gpa, ulong Need, ulong AccessBits, bool Write, bool Final, ulong Linear, ulong Advanced);

    /// <summary>
    /// The guest-physical or host addresses of a guest walk's four entries. Not a stackalloc: a
    /// method with one is compiled fully optimized at once, without the profile that lets the JIT
    /// inline the host memory's reads into the walk loop.
    /// </summary>
    [InlineArray(4)]
    private struct GuestEntryAddresses
    {
        private ulong first;
    }

    private struct GpaTranslation
    {
        public ulong Hpa;
        public EptLevel Level;
        public ulong Permissions;
        public MemoryType MemoryType;
        public bool IgnorePat;
        public bool Dirty;
        public bool FromCache;
    }

    private bool AccessedDirtyOn => (Eptp & AccessedDirtyEnable) != 0;

    private ulong Tag => Eptp & EptBits.AddressMask;

    /// <summary>The permission an access needs: R, W, X; under MBEC, XS (bit 2) or XU (bit 10) by the linear address's mode (EPT-MBEC-4).</summary>
    private ulong Need(AccessKind kind, bool userMode) => kind switch
    {
        AccessKind.Read => EptBits.ReadAccess,
        AccessKind.Write => EptBits.WriteAccess,
        _ => Controls.Mbec && userMode ? EptBits.UserModeExecute : EptBits.ExecuteAccess,
    };

    /// <summary>Exit-qualification bits 0/1/2 for an access of this kind.</summary>
    private static ulong AccessBits(AccessKind kind) => kind switch
    {
        AccessKind.Read => 1,
        AccessKind.Write => 2,
        _ => 4,
    };

    private bool TranslateGpa(in GpaRequest request, out GpaTranslation translation) =>
        CachingEnabled && TryCachedGpa(request, out translation)
        || (this.sparse is { } sparse ? WalkGpa(request, out translation, new WayReads(sparse)) : WalkGpa(request, out translation, new PlainReads(memory)));

    /// <summary>How a walk reads its entries: a read may miss, and the walk then fills the way and starts again.</summary>
    private interface IWalkReads
    {
        bool TryRead(ulong table, int index, int way, out ulong value);

        void Fill(ulong table, int way);
    }

    /// <summary>Sparse host memory's walk ways: a read that calls nothing, so the walk loop keeps its values in registers.</summary>
    private readonly struct WayReads(SparseHostMemory memory) : IWalkReads
    {
        // Taken once per walk: a load less at every level.
        private readonly SparseHostMemory.WaySlot[] ways = memory.Ways;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool TryRead(ulong table, int index, int way, out ulong value) => SparseHostMemory.TryReadWalkEntry(ways, new Hpa(table), index, way, out value);

        public void Fill(ulong table, int way) => memory.FillWay(new Hpa(table), way);
    }

    /// <summary>Any other host memory: every read goes through it and none misses.</summary>
    private readonly struct PlainReads(IHostMemory memory) : IWalkReads
    {
        public bool TryRead(ulong table, int index, int way, out ulong value)
        {
            value = memory.Read(new Hpa(table + ((ulong)index << 3)));
            return true;
        }

        public void Fill(ulong table, int way)
        {
        }
    }

    // Out of line: its cached-mapping local would otherwise be zeroed on every walk.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryCachedGpa(in GpaRequest request, out GpaTranslation translation)
    {
        bool accessedDirty = AccessedDirtyOn;
        if (tlb.TryGetPhysical(Tag, request.Gpa, out PhysicalMapping cached)
            && cached.AccessedDirty == accessedDirty && cached.Mbec == Controls.Mbec
            && (cached.Permissions & request.Need) == request.Need
            && (!request.Write || !accessedDirty || cached.Dirty))
        {
            translation = new GpaTranslation
            {
                Hpa = cached.HpaBase | (request.Gpa & (LevelGeometry.Span(cached.Level) - 1)),
                Level = cached.Level,
                Permissions = cached.Permissions,
                MemoryType = cached.MemoryType,
                IgnorePat = cached.IgnorePat,
                Dirty = cached.Dirty,
                FromCache = true,
            };
            return true;
        }

        translation = default;
        return false;
    }

    // Out of line: inlined into a caller that inlines Access (the benchmark's, a driver loop's), it
    // spent the caller's inlining budget, and Translated and LevelGeometry.Span became calls.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool WalkGpa<TReads>(in GpaRequest request, out GpaTranslation translation, TReads reads)
        where TReads : struct, IWalkReads
    {
        ulong gpa = request.Gpa;
        int levels = (int)((Eptp >> 3) & 7) + 1;
        if ((gpa >> 52) != 0 || (levels == 4 && (gpa >> 48) != 0))
        {
            // With 4-level EPT, GPA[51:48] != 0 is a violation with no entry read (EPT-WALK-4, EPT-VIOL-6).
            translation = default;
            Violation(request, 0);
            return false;
        }

        // This walk's entries are the walk records from here on (the A/D pass below writes them).
        // The locals start assigned although the loop assigns them: so every mutation a
        // mutation-testing run makes of the loop still compiles, and the walk can be mutated at
        // all (README, mutation testing); the JIT drops the dead stores.
        ulong table = 0;
        ulong permissions = 0;
        ulong leaf = 0;
        EptEntryClass entryClass = default;
        // An int in the loop: the byte enum was zero-extended again at every level.
        int current = 0;
        // Carried down the levels, not recomputed from the level at each one.
        int shift = 0;
        while (true)
        {
            ref WalkEntry record = ref result.NextWalk;
            table = Eptp & EptBits.AddressMask;
            permissions = EptBits.PermissionMask;
            current = levels;
            shift = LevelGeometry.Shift((EptLevel)current);
            EptEntryClasses.LevelClasses classes = entryClasses.At((EptLevel)current);
            while (true)
            {
                // The index comes from the GPA, not from the table address: it is known before the entry above is read.
                int index = LevelGeometry.IndexAt(gpa, shift);
                if (!reads.TryRead(table, index, current - 1, out ulong value))
                {
                    break;
                }

                record = new WalkEntry(WalkStructure.Ept, (EptLevel)current, new Hpa(table + ((ulong)(uint)index << 3)), value, gpa);
                record = ref Unsafe.Add(ref record, 1);
                // Used only if the walk translates, when every entry read was present and well formed.
                permissions &= value;
                entryClass = classes.Classify(value);
                if (entryClass != EptEntryClass.Table)
                {
                    leaf = value;
                    goto Walked;
                }

                table = value & EptBits.AddressMask;
                current--;
                shift -= 9;
                classes.Down();
            }

            // A table page not in its way: the call is here, after the loop, so that no value of
            // the loop lives across it. Reading writes nothing, so the walk starts again unchanged.
            reads.Fill(table, current - 1);
        }

    Walked:
        // One record per level, from the top down to the one the walk stopped at.
        EptLevel level = (EptLevel)current;
        int walked = levels - current + 1;
        result.Recorded(walked);

        // The loop has one exit; how the walk ended is decided here, with the calls kept out of the loop.
        if (entryClass != EptEntryClass.Page)
        {
            translation = default;
            WalkFailed(request, entryClass);
            return false;
        }

        // Permissions are checked only after the whole walk: a lower misconfiguration wins (EPT-ORDER-1).
        if ((permissions & request.Need) != request.Need)
        {
            translation = default;
            Violation(request, permissions);
            return false;
        }

        // The leaf's shift: the loop left it with the leaf.
        ulong span = 1UL << shift;
        translation = new GpaTranslation
        {
            Hpa = (leaf & LevelGeometry.LeafAddressMask(level)) | (gpa & (span - 1)),
            Level = level,
            Permissions = permissions,
            MemoryType = EptBits.DecodeType(leaf),
            IgnorePat = (leaf & EptBits.IgnorePat) != 0,
            Dirty = (leaf & EptBits.Dirty) != 0,
        };
        // After the translation is filled, so that none of the walk's values live across the call.
        if (AccessedDirtyOn)
        {
            SetAccessedDirty(request, level, result.WalkCount - walked);
            translation.Dirty |= request.Write;
        }

        if (CachingEnabled)
        {
            CachePhysical(gpa, translation);
        }

        return true;
    }

    // Out of line, like the failures: a walk with the TLB off keeps none of their locals.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CachePhysical(ulong gpa, in GpaTranslation translation)
    {
        tlb.Insert(new PhysicalMapping
        {
            Valid = true,
            Tag = Tag,
            PageNumber = gpa >> LevelGeometry.Shift(translation.Level),
            Level = translation.Level,
            HpaBase = translation.Hpa & ~(LevelGeometry.Span(translation.Level) - 1),
            Permissions = translation.Permissions,
            MemoryType = translation.MemoryType,
            IgnorePat = translation.IgnorePat,
            Dirty = translation.Dirty,
            AccessedDirty = AccessedDirtyOn,
            Mbec = Controls.Mbec,
        });
    }

    /// <summary>A walk that stopped at a not-present (EPT-PRESENT-1) or misconfigured entry.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WalkFailed(in GpaRequest request, EptEntryClass entryClass)
    {
        if (entryClass == EptEntryClass.NotPresent)
        {
            Violation(request, 0);
            return;
        }

        result.Kind = OutcomeKind.EptMisconfiguration;
        result.Gpa = new Gpa(request.Gpa);
    }

    /// <summary>
    /// EPT-AD-2/3: the access is performed, so A on every entry of its walk (the walk records from
    /// <paramref name="firstRecord"/> on) and D on the leaf, at <paramref name="level"/>, of a write.
    /// </summary>
    private void SetAccessedDirty(in GpaRequest request, EptLevel level, int firstRecord)
    {
        int count = result.WalkCount - firstRecord;
        for (int i = 0; i < count; i++)
        {
            bool isLeaf = i == count - 1;
            Hpa entry = result.Walk[firstRecord + i].Address;
            ulong current = memory.Read(entry);
            ulong updated = current | EptBits.Accessed | (isLeaf && request.Write ? EptBits.Dirty : 0);
            if (updated != current)
            {
                memory.Write(entry, updated);
                result.AddWrite(new MemoryWrite(entry, updated));
            }
        }
    }

    /// <summary>Exit qualification per Table 27-7 (EPT-EXITQ-1/2) as SEMANTICS.md fixes it.</summary>
    private void Violation(in GpaRequest request, ulong permissions)
    {
        ulong qualification = request.AccessBits
            | ((permissions & EptBits.ReadAccess) != 0 ? 1UL << 3 : 0)
            | ((permissions & EptBits.WriteAccess) != 0 ? 1UL << 4 : 0)
            | ((permissions & EptBits.ExecuteAccess) != 0 ? 1UL << 5 : 0)
            | (Controls.Mbec && (permissions & EptBits.UserModeExecute) != 0 ? 1UL << 6 : 0)
            // Every access here has a guest-linear address (CR0.PG = 0 makes the GPA one).
            | (1UL << 7)
            | (request.Final ? 1UL << 8 : 0)
            | (cpu.AdvancedExitInfo && request.Final ? request.Advanced : 0);
        result.Kind = OutcomeKind.EptViolation;
        result.Gpa = new Gpa(request.Gpa);
        result.Qualification = qualification;
        result.GuestLinearAddress = request.Linear;
        result.GuestLinearAddressValid = true;
    }
}
