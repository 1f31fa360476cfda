namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Culling a queue to a working set: the smallest set of entries (found greedily, as AFL picks its
/// favoured entries and libFuzzer's <c>-merge</c> keeps a corpus) that still sets every coverage
/// feature any entry sets. For each feature the cheapest entry that sets it is its best; features
/// are visited in order, and a feature not yet covered brings its best entry, with all that
/// entry's features, into the set. Deterministic: the same entries give the same set.
/// </summary>
public static class QueueCull
{
    /// <summary>Indices (ascending) of the entries to keep.</summary>
    /// <param name="entries">Each entry's features and its cost (lower is preferred; ties go to the earlier entry).</param>
    public static IReadOnlyList<int> Favoured(IReadOnlyList<(IReadOnlyList<int> Features, int Cost)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var best = new Dictionary<int, int>();
        for (int i = 0; i < entries.Count; i++)
        {
            foreach (int f in entries[i].Features)
            {
                if (!best.TryGetValue(f, out int b) || entries[i].Cost < entries[b].Cost)
                {
                    best[f] = i;
                }
            }
        }

        var covered = new HashSet<int>();
        var chosen = new SortedSet<int>();
        foreach (int f in best.Keys.Order())
        {
            if (covered.Contains(f))
            {
                continue;
            }

            int i = best[f];
            chosen.Add(i);
            covered.UnionWith(entries[i].Features);
        }

        return [.. chosen];
    }
}
