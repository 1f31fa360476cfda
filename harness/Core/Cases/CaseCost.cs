using System.Globalization;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// A case's planned cost, computed from its steps before anything runs, as an upper bound: the
/// page entries its operations may write or visit (work), and the entries its maps may create
/// (memory). Every range is counted in 4 KiB pages, because a later split or a processor without
/// large pages can turn any range into 4 KiB leaves. Used to refuse a case that would run for
/// minutes or take gigabytes (<see cref="CaseBudget"/>), with the step where it crosses the line.
/// </summary>
public static class CaseCost
{
    /// <summary>An upper bound of one page entry's time (measured 55–65 ns for the implementation, the model and the mirror together; rounded up).</summary>
    public const double NanosecondsPerEntry = 100;

    /// <summary>Bytes one 4 KiB leaf costs across the implementation's tables, the two translators' memories and the intent model.</summary>
    public const long BytesPerEntry = 32;

    private const int Shift4K = 12;

    /// <summary>The first step at which the case's planned cost exceeds <paramref name="budget"/>, and why; null when it fits.</summary>
    public static CaseError? Refusal(EptCase @case, CaseBudget budget, string file)
    {
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(budget);
        bool page2M = true, page1G = true;
        var ranges = new List<MemoryStep>();
        UInt128 work = 0, entries = 0;
        for (int index = 0; index < @case.Steps.Length; index++)
        {
            Step step = @case.Steps[index];
            (UInt128 Touched, UInt128 Created) cost = step switch
            {
                CpuStep c => Remember(c, ref page2M, ref page1G),
                MapStep m => (Pages(m.Size), Pages(m.Size)),
                UnmapStep u => (Pages(u.Size), (UInt128)0),
                ProtectStep p => (Pages(p.Size), (UInt128)0),
                RetypeStep r => (Pages(r.Size), (UInt128)0),
                MergeStep m => (Pages(m.Size), (UInt128)0),
                SplitStep => ((UInt128)512, (UInt128)512),
                MemoryStep m => Add(ranges, m),
                IdentityMapStep i => Twice(IdentityMapEstimate.Leaves(ranges, i.Offset ?? 0, i.OffsetFrom?.Value ?? 0, page2M, page1G)),
                _ => ((UInt128)1, (UInt128)0),
            };
            work += cost.Touched;
            entries += cost.Created;
            double seconds = (double)work * NanosecondsPerEntry / 1e9;
            UInt128 bytes = entries * (UInt128)BytesPerEntry;
            if (seconds > budget.Time.TotalSeconds)
            {
                return At(file, step, index, string.Create(CultureInfo.InvariantCulture,
                    $"{step.Verb}: the case's planned cost exceeds its time budget: by this step its operations may touch {Count(work)} page entries, about {seconds:0.0##} s at {NanosecondsPerEntry} ns each, over the {budget.Time.TotalSeconds:0.###} s per case (--case-time)"));
            }

            if (bytes > (UInt128)budget.MemoryBytes)
            {
                return At(file, step, index, string.Create(CultureInfo.InvariantCulture,
                    $"{step.Verb}: the case's planned cost exceeds its memory budget: by this step its maps may create {Count(entries)} page entries, about {(double)bytes / (1 << 20):0} MiB at {BytesPerEntry} B each, over the {budget.MemoryBytes >> 20} MiB per case (--case-memory)"));
            }
        }

        return null;
    }

    private static (UInt128 Touched, UInt128 Created) Remember(CpuStep c, ref bool page2M, ref bool page1G)
    {
        page2M = c.Page2M ?? true;
        page1G = c.Page1G ?? true;
        return (1, 0);
    }

    private static (UInt128 Touched, UInt128 Created) Add(List<MemoryStep> ranges, MemoryStep m)
    {
        ranges.Add(m);
        return (1, 0);
    }

    private static (UInt128 Touched, UInt128 Created) Twice(UInt128 leaves) => (leaves, leaves);

    /// <summary>4 KiB pages a range of <paramref name="size"/> bytes covers (a partial page counts whole).</summary>
    private static UInt128 Pages(ulong size) => ((UInt128)size + 0xfff) >> Shift4K;

    private static string Count(UInt128 n) => n > ulong.MaxValue ? "more than 2^64" : ((ulong)n).ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Located at the step; a step built in code (no position) is named by its number.</summary>
    private static CaseError At(string file, Step step, int index, string message) => step.Position.Line > 0
        ? new(file, step.Position.Line, step.Position.Column, message)
        : new(file, 0, 0, $"step {index + 1}: {message}");
}

/// <summary>What one case may spend: wall time and memory (<c>--case-time</c>, <c>--case-memory</c>).</summary>
public sealed record CaseBudget
{
    public static CaseBudget Default { get; } = new();

    /// <summary>Wall time per case; past it, a running case is reported as a timeout.</summary>
    public TimeSpan Time { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Memory per case, in bytes, that its maps' planned entries may take.</summary>
    public long MemoryBytes { get; init; } = 2048L << 20;
}
