using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The reducer's whole-case simplification: move a mapped region to a small canonical address
/// in every step at once (a map's GPA range to 0, 2 MB, 1 GB; its HPA range likewise), keeping
/// each address's offset inside the region. One step at a time cannot do this: changing only the
/// map would leave the probes behind.
/// </summary>
internal static class AddressRelocation
{
    private static readonly ulong[] Targets = [0, 1UL << 21, 1UL << 30, 1UL << 31];

    /// <summary>Candidate cases, each with one region moved; most promising first.</summary>
    public static IEnumerable<List<Step>> Candidates(IReadOnlyList<Step> steps)
    {
        var gpaRegions = new List<(ulong Start, ulong Size)>();
        var hpaRegions = new List<(ulong Start, ulong Size)>();
        foreach (Step s in steps)
        {
            if (s is MapStep m && m.Size is > 0 and <= 1UL << 30)
            {
                AddRegion(gpaRegions, m.Gpa.Value, m.Size);
                AddRegion(hpaRegions, m.Hpa.Value, m.Size);
            }
        }

        foreach (var (start, size) in gpaRegions)
        {
            foreach (ulong target in Targets)
            {
                if (target < start && target % size == 0 && !gpaRegions.Any(r => Overlaps(r, target, size)))
                {
                    yield return [.. steps.Select(s => MoveGpa(s, start, size, target))];
                }
            }
        }

        foreach (var (start, size) in hpaRegions)
        {
            foreach (ulong target in Targets)
            {
                if (target < start && target % size == 0 && !hpaRegions.Any(r => Overlaps(r, target, size)))
                {
                    yield return [.. steps.Select(s => MoveHpa(s, start, size, target))];
                }
            }
        }
    }

    private static void AddRegion(List<(ulong Start, ulong Size)> regions, ulong start, ulong size)
    {
        if ((start & (size - 1)) == 0 && !regions.Contains((start, size)))
        {
            regions.Add((start, size));
        }
    }

    private static bool Overlaps((ulong Start, ulong Size) r, ulong start, ulong size) =>
        r.Start < start + size && start < r.Start + r.Size;

    private static ulong Move(ulong a, ulong start, ulong size, ulong target) =>
        a >= start && a - start < size ? target + (a - start) : a;

    private static Gpa Move(Gpa a, ulong start, ulong size, ulong target) => new(Move(a.Value, start, size, target));

    private static Step MoveGpa(Step s, ulong start, ulong size, ulong target) => s switch
    {
        MapStep m => m with { Gpa = Move(m.Gpa, start, size, target) },
        UnmapStep u => u with { Gpa = Move(u.Gpa, start, size, target) },
        ProtectStep p => p with { Gpa = Move(p.Gpa, start, size, target) },
        RetypeStep r => r with { Gpa = Move(r.Gpa, start, size, target) },
        SplitStep sp => sp with { Gpa = Move(sp.Gpa, start, size, target) },
        MergeStep mg => mg with { Gpa = Move(mg.Gpa, start, size, target) },
        EditStep e => e with { Gpa = Move(e.Gpa, start, size, target) },
        EntryStep e => e with { Gpa = Move(e.Gpa, start, size, target) },
        AccessStep { Gpa: { } g } a => a with { Gpa = Move(g, start, size, target) },
        GMapStep g => g with { Gpa = Move(g.Gpa, start, size, target) },
        // The guest's tables move with the region that holds them (cr3 stays outside the range).
        GuestStep { Paging: true } g => g with
        {
            Cr3 = g.Cr3 is { } c ? Move(c, start, size, target) : null,
            TablesStart = g.TablesStart is { } t0 ? Move(t0, start, size, target) : null,
            TablesEnd = g.TablesEnd is { } t1 && g.TablesStart is { } ts && ts.Value >= start && ts.Value - start < size ? new Gpa(t1.Value - start + target) : g.TablesEnd,
        },
        _ => s,
    };

    private static Step MoveHpa(Step s, ulong start, ulong size, ulong target) => s switch
    {
        MapStep m => m with { Hpa = new Hpa(Move(m.Hpa.Value, start, size, target)) },
        EditStep { LeafHpa: { } h } e => e with { LeafHpa = new Hpa(Move(h.Value, start, size, target)) },
        PokeStep p => p with { Hpa = new Hpa(Move(p.Hpa.Value, start, size, target)) },
        _ => s,
    };
}
