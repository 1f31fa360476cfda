using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EptFuzz.Contract;

namespace EptFuzz.Impl.Cpu;

/// <summary>
/// The outcome of one guest access, filled in place by <see cref="VirtualCpu"/>: one instance is
/// reused for every access, with fixed buffers for the walk and the A/D writes, so the translate
/// path allocates nothing. <see cref="ToObservation"/> copies it into the contract's record.
/// </summary>
public sealed class AccessResult
{
    // A gva walk reads at most 4 guest entries, each after an EPT walk of up to 5 entries, then
    // up to 4 A/D write-back walks and the final walk: 4*6 + 4*5 + 5 = 49 entries.
    private const int WalkCapacity = 64;
    // EPT A/D: up to 5 entries for each of 9 GPA accesses, plus 4 guest A/D writes: 49.
    private const int WriteCapacity = 64;

    private readonly WalkEntry[] walk = new WalkEntry[WalkCapacity];
    private readonly MemoryWrite[] writes = new MemoryWrite[WriteCapacity];

    // Every scalar of the outcome in one struct without references, so that resetting it before
    // each access is a few vector stores instead of one store per field.
    private State state;

    public OutcomeKind Kind { get => state.Kind; internal set => state.Kind = value; }
    public Hpa Hpa { get => state.Hpa; internal set => state.Hpa = value; }
    public PageSize PageSize { get => state.PageSize; internal set => state.PageSize = value; }
    public MemoryType MemoryType { get => state.MemoryType; internal set => state.MemoryType = value; }
    public EptPermissions Permissions { get => state.Permissions; internal set => state.Permissions = value; }
    public Gpa Gpa { get => state.Gpa; internal set => state.Gpa = value; }
    public ulong Qualification { get => state.Qualification; internal set => state.Qualification = value; }
    public ulong GuestLinearAddress { get => state.GuestLinearAddress; internal set => state.GuestLinearAddress = value; }
    public bool GuestLinearAddressValid { get => state.GuestLinearAddressValid; internal set => state.GuestLinearAddressValid = value; }
    public uint ErrorCode { get => state.ErrorCode; internal set => state.ErrorCode = value; }
    /// <summary>True when the access was answered from a cached translation.</summary>
    public bool FromCache { get => state.FromCache; internal set => state.FromCache = value; }

    /// <summary>The basic VM-exit reason: 48 (EPT violation), 49 (EPT misconfiguration), or 0 when the access caused no VM exit.</summary>
    public int ExitReason => Kind switch
    {
        OutcomeKind.EptViolation => 48,
        OutcomeKind.EptMisconfiguration => 49,
        _ => 0,
    };

    public int WalkCount => state.WalkCount;
    public int WriteCount => state.WriteCount;

    public ReadOnlySpan<WalkEntry> Walk => walk.AsSpan(0, WalkCount);
    public ReadOnlySpan<MemoryWrite> Writes => writes.AsSpan(0, WriteCount);

    // Inlined: a call here was a tenth of a short walk. Translated is 0, so the default state is an
    // access that translated with nothing recorded yet.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Reset() => state = default;

    internal void AddWalk(in WalkEntry entry)
    {
        // A walk through self-referencing tables cannot exceed the capacity: every walk is bounded by its levels.
        walk[state.WalkCount++] = entry;
    }

    /// <summary>
    /// Where the next walk record goes, for a walker that writes one record per level through a
    /// moving reference and then counts them with <see cref="Recorded"/>: a bounds check, a count
    /// load and a count store less per level. Unchecked: an access records at most 49 entries.
    /// </summary>
    internal ref WalkEntry NextWalk => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(walk), state.WalkCount);

    internal void Recorded(int count) => state.WalkCount += count;

    /// <summary>
    /// The access translated. One method writing its own fields: the setters, inlined one by one
    /// into the caller, each copied the reference to this result again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Translated(Hpa hpa, PageSize pageSize, Gpa gpa, EptPermissions permissions, MemoryType memoryType, bool fromCache)
    {
        state.Kind = OutcomeKind.Translated;
        state.Hpa = hpa;
        state.PageSize = pageSize;
        state.Gpa = gpa;
        state.Permissions = permissions;
        state.MemoryType = memoryType;
        state.FromCache = fromCache;
    }

    internal void AddWrite(in MemoryWrite write) => writes[state.WriteCount++] = write;

    public Observation ToObservation() => new()
    {
        Kind = Kind,
        Hpa = Hpa,
        PageSize = PageSize,
        MemoryType = MemoryType,
        Permissions = Permissions,
        Gpa = Gpa,
        Qualification = Qualification,
        GuestLinearAddress = GuestLinearAddress,
        GuestLinearAddressValid = GuestLinearAddressValid,
        ErrorCode = ErrorCode,
        Walk = Walk.ToArray(),
        Writes = Writes.ToArray(),
    };

    // The 8-byte fields first: 64 bytes, two or four vector stores to clear.
    private struct State
    {
        public Hpa Hpa;
        public Gpa Gpa;
        public ulong Qualification;
        public ulong GuestLinearAddress;
        public uint ErrorCode;
        public int WalkCount;
        public int WriteCount;
        public OutcomeKind Kind;
        public PageSize PageSize;
        public MemoryType MemoryType;
        public EptPermissions Permissions;
        public bool GuestLinearAddressValid;
        public bool FromCache;
    }
}
