using System.Numerics;
using System.Runtime.CompilerServices;
using EptFuzz.Contract;

namespace EptFuzz.Impl.Cpu;

/// <summary>What an invalidation needs of a cached mapping of either kind.</summary>
internal interface ICachedMapping
{
    /// <summary>EPTP[51:12] when it was made.</summary>
    ulong CacheTag { get; }

    void Invalidate();
}

/// <summary>A cached guest-physical mapping (EPT-CACHE-1): GPA page → HPA, privileges, memory type.</summary>
public struct PhysicalMapping : ICachedMapping
{
    // The 8-byte fields first, then the 1-byte ones: 40 bytes a slot instead of 56.
    /// <summary>EPTP[51:12] when it was made (EPT-CACHE-2).</summary>
    public ulong Tag;
    public ulong PageNumber;
    public ulong HpaBase;
    /// <summary>AND of the permission bits over the walk, in entry-bit form.</summary>
    public ulong Permissions;
    public bool Valid;
    public EptLevel Level;
    public MemoryType MemoryType;
    public bool IgnorePat;
    /// <summary>The leaf's D flag was set when cached; a write through a clean mapping must walk again to set it.</summary>
    public bool Dirty;
    /// <summary>EPTP[6] and the MBEC control when cached: a mapping made under other settings is not used.</summary>
    public bool AccessedDirty;
    public bool Mbec;

    readonly ulong ICachedMapping.CacheTag => Tag;

    void ICachedMapping.Invalidate() => Valid = false;
}

/// <summary>A cached combined mapping (EPT-CACHE-1): linear page → HPA through guest paging and EPT.</summary>
public struct CombinedMapping : ICachedMapping
{
    // The 8-byte fields first, then the smaller ones: 56 bytes a slot instead of 72.
    public ulong Tag;
    public ulong PageNumber;
    public ulong GpaBase;
    public ulong HpaBase;
    public ulong Permissions;
    /// <summary>log2 of the cached linear page: the smaller of the guest page and the EPT page.</summary>
    public int Shift;
    public bool Valid;
    public EptLevel EptLevel;
    public MemoryType MemoryType;
    /// <summary>AND of U/S, AND of R/W, OR of XD over the guest entries.</summary>
    public bool User;
    public bool Writable;
    public bool ExecuteDisable;
    public bool GuestDirty;
    public bool EptDirty;
    public bool AccessedDirty;
    public bool Mbec;

    readonly ulong ICachedMapping.CacheTag => Tag;

    void ICachedMapping.Invalidate() => Valid = false;
}

/// <summary>
/// The TLB: direct-mapped arrays of structs per page size, so lookups and fills allocate nothing.
/// It may keep a translation after a raw memory write until INVEPT, as hardware may; it never
/// holds a failed access or anything from a not-present or misconfigured entry (only successful
/// accesses are inserted). Any hit that would not be a plain success is treated as a miss, so
/// every architectural event comes from a fresh walk.
/// </summary>
public sealed class TranslationCache
{
    private const int Slots = 256;

    // Index [size - 1][slot]: sizes 4K, 2M, 1G. A size's array is allocated by its first insert:
    // every case opens a fresh CPU, and most cases never cache a 1 GiB or a combined mapping.
    private readonly PhysicalMapping[]?[] physical = new PhysicalMapping[]?[3];
    private readonly CombinedMapping[]?[] combined = new CombinedMapping[]?[3];

    // One bit per slot that may be valid, 4 words per array (guest-physical sizes 0..2, then
    // combined): an INVEPT or a release visits the few slots a case filled, not all 256 of up to
    // six arrays. A slot whose bit is clear is invalid.
    private Filled filled;

    [InlineArray(6 * WordsPerArray)]
    private struct Filled
    {
        private ulong first;
    }

    private const int WordsPerArray = Slots / 64;
    private const int Combined = 3;

    private Span<ulong> FilledBits(int array) => ((Span<ulong>)filled).Slice(array * WordsPerArray, WordsPerArray);

    private void MarkFilled(int array, int slot) => filled[(array * WordsPerArray) + (slot >> 6)] |= 1UL << (slot & 63);

    private static int Slot(ulong pageNumber) => (int)((pageNumber ^ (pageNumber >> 8) ^ (pageNumber >> 16)) & (Slots - 1));

    public bool TryGetPhysical(ulong tag, ulong gpa, out PhysicalMapping mapping)
    {
        for (int size = 0; size < 3; size++)
        {
            // Read into a local first: with the pattern `is not { } table` a mutation-testing
            // run could not negate the test without leaving `table` unassigned (README, mutation testing).
            var table = physical[size];
            if (table is null)
            {
                continue;
            }

            ulong page = gpa >> (12 + 9 * size);
            ref PhysicalMapping slot = ref table[Slot(page)];
            if (slot.Valid && slot.Tag == tag && slot.PageNumber == page)
            {
                mapping = slot;
                return true;
            }
        }

        mapping = default;
        return false;
    }

    public void Insert(in PhysicalMapping mapping)
    {
        int size = (int)mapping.Level - 1;
        int slot = Slot(mapping.PageNumber);
        (physical[size] ??= Rent(ref freePhysical))[slot] = mapping;
        MarkFilled(size, slot);
    }

    public bool TryGetCombined(ulong tag, ulong linear, out CombinedMapping mapping)
    {
        for (int size = 0; size < 3; size++)
        {
            // Read into a local first: with the pattern `is not { } table` a mutation-testing
            // run could not negate the test without leaving `table` unassigned (README, mutation testing).
            var table = combined[size];
            if (table is null)
            {
                continue;
            }

            ulong page = linear >> (12 + 9 * size);
            ref CombinedMapping slot = ref table[Slot(page)];
            if (slot.Valid && slot.Tag == tag && slot.PageNumber == page)
            {
                mapping = slot;
                return true;
            }
        }

        mapping = default;
        return false;
    }

    /// <summary>Inserts a combined mapping for a linear page of 4 KiB << (9 * <paramref name="sizeIndex"/>).</summary>
    public void Insert(in CombinedMapping mapping, int sizeIndex)
    {
        int slot = Slot(mapping.PageNumber);
        (combined[sizeIndex] ??= Rent(ref freeCombined))[slot] = mapping;
        MarkFilled(Combined + sizeIndex, slot);
    }

    // Arrays of released caches, all slots invalid, for the next CPU on this thread: a fuzzing
    // worker opens one per case, thousands a second.
    [ThreadStatic]
    private static Stack<PhysicalMapping[]>? freePhysical;
    [ThreadStatic]
    private static Stack<CombinedMapping[]>? freeCombined;

    private static T[] Rent<T>(ref Stack<T[]>? free) => free is { Count: > 0 } f ? f.Pop() : new T[Slots];

    /// <summary>Empties the cache and gives its arrays back for reuse by the next CPU on this thread (a session that ends).</summary>
    public void Release()
    {
        InvalidateAll();
        for (int size = 0; size < 3; size++)
        {
            if (this.physical[size] is { } physical)
            {
                (freePhysical ??= new Stack<PhysicalMapping[]>()).Push(physical);
                this.physical[size] = null;
            }

            if (this.combined[size] is { } combined)
            {
                (freeCombined ??= new Stack<CombinedMapping[]>()).Push(combined);
                this.combined[size] = null;
            }
        }
    }

    /// <summary>INVEPT single-context: guest-physical and combined mappings tagged with this EPTP[51:12] (EPT-INVEPT-3).</summary>
    public void Invalidate(ulong tag)
    {
        for (int size = 0; size < 3; size++)
        {
            Drop(physical[size], size, tag, everyTag: false);
            Drop(combined[size], Combined + size, tag, everyTag: false);
        }
    }

    /// <summary>INVEPT global: every guest-physical and combined mapping.</summary>
    public void InvalidateAll()
    {
        for (int size = 0; size < 3; size++)
        {
            Drop(physical[size], size, 0, everyTag: true);
            Drop(combined[size], Combined + size, 0, everyTag: true);
        }
    }

    /// <summary>A new CR3 or paging mode (MOV to CR3/CR0/CR4): combined mappings go, guest-physical ones stay.</summary>
    public void InvalidateCombined()
    {
        for (int size = 0; size < 3; size++)
        {
            Drop(combined[size], Combined + size, 0, everyTag: true);
        }
    }

    // Invalidates the filled slots of one array that carry the tag (or all of them).
    private void Drop<T>(T[]? table, int array, ulong tag, bool everyTag)
        where T : struct, ICachedMapping
    {
        if (table is null)
        {
            return;
        }

        Span<ulong> filled = FilledBits(array);
        for (int w = 0; w < filled.Length; w++)
        {
            for (ulong bits = filled[w]; bits != 0; bits &= bits - 1)
            {
                int index = (w << 6) | BitOperations.TrailingZeroCount(bits);
                ref T slot = ref table[index];
                if (everyTag || slot.CacheTag == tag)
                {
                    slot.Invalidate();
                    filled[w] &= ~(1UL << (index & 63));
                }
            }
        }
    }

    public int ValidCount
    {
        get
        {
            int count = 0;
            for (int size = 0; size < 3; size++)
            {
                foreach (PhysicalMapping slot in physical[size].AsSpan())
                {
                    count += slot.Valid ? 1 : 0;
                }

                foreach (CombinedMapping slot in combined[size].AsSpan())
                {
                    count += slot.Valid ? 1 : 0;
                }
            }

            return count;
        }
    }
}
