using System.Runtime.CompilerServices;
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

    private readonly WalkEntry[] _walk = new WalkEntry[WalkCapacity];
    private readonly MemoryWrite[] _writes = new MemoryWrite[WriteCapacity];

    public OutcomeKind Kind { get; internal set; }
    public Hpa Hpa { get; internal set; }
    public PageSize PageSize { get; internal set; }
    public MemoryType MemoryType { get; internal set; }
    public EptPermissions Permissions { get; internal set; }
    public Gpa Gpa { get; internal set; }
    public ulong Qualification { get; internal set; }
    public ulong GuestLinearAddress { get; internal set; }
    public bool GuestLinearAddressValid { get; internal set; }
    public uint ErrorCode { get; internal set; }
    /// <summary>True when the access was answered from a cached translation.</summary>
    public bool FromCache { get; internal set; }

    /// <summary>The basic VM-exit reason: 48 (EPT violation), 49 (EPT misconfiguration), or 0 when the access caused no VM exit.</summary>
    public int ExitReason => Kind switch
    {
        OutcomeKind.EptViolation => 48,
        OutcomeKind.EptMisconfiguration => 49,
        _ => 0,
    };

    public int WalkCount { get; private set; }
    public int WriteCount { get; private set; }

    public ReadOnlySpan<WalkEntry> Walk => _walk.AsSpan(0, WalkCount);
    public ReadOnlySpan<MemoryWrite> Writes => _writes.AsSpan(0, WriteCount);

    // Inlined: a call here was a tenth of a short walk.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Reset()
    {
        Kind = OutcomeKind.Translated;
        Hpa = default;
        PageSize = default;
        MemoryType = default;
        Permissions = default;
        Gpa = default;
        Qualification = 0;
        GuestLinearAddress = 0;
        GuestLinearAddressValid = false;
        ErrorCode = 0;
        FromCache = false;
        WalkCount = 0;
        WriteCount = 0;
    }

    internal void AddWalk(in WalkEntry entry)
    {
        // A walk through self-referencing tables cannot exceed the capacity: every walk is bounded by its levels.
        _walk[WalkCount++] = entry;
    }

    internal void AddWrite(in MemoryWrite write) => _writes[WriteCount++] = write;

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
}
