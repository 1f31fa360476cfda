using EptFuzz.Contract;

namespace EptFuzz.Harness.Comparing;

/// <summary>
/// With three kinds of translator, who is out of step: the implementation alone (an
/// implementation bug), the oracle alone (a model bug or an emulator deviation), the model alone
/// (a model bug), or all apart.
/// </summary>
public static class Triage
{
    /// <param name="all">Every target's observation of one probe (null where a target did not answer).</param>
    /// <returns>Null when fewer than three targets answered.</returns>
    public static string? Of(IReadOnlyList<Observation?> all, IReadOnlyList<ITarget> targets)
    {
        ArgumentNullException.ThrowIfNull(all);
        ArgumentNullException.ThrowIfNull(targets);
        var answered = Enumerable.Range(0, all.Count).Where(t => all[t] is { Kind: not OutcomeKind.Unsupported }).ToList();
        if (answered.Count < 3)
        {
            return null;
        }

        var groups = new List<List<int>>();
        foreach (int t in answered)
        {
            var group = groups.FirstOrDefault(g => ObservationComparer.Compare(all[g[0]]!, targets[g[0]].Traits, all[t]!, targets[t].Traits) == Difference.None);
            if (group is null)
            {
                groups.Add([t]);
            }
            else
            {
                group.Add(t);
            }
        }

        if (groups.Count == answered.Count)
        {
            return $"all {answered.Count} translators differ";
        }

        if (groups.Count != 2 || groups.Min(g => g.Count) != 1)
        {
            return $"{groups.Count} groups of answers";
        }

        int alone = groups.First(g => g.Count == 1)[0];
        string others = string.Join(" and ", groups.First(g => g.Count > 1).Select(t => targets[t].Name));
        string role = targets[alone].Traits.HasFlag(TargetTraits.SoftwareWalk)
            ? "a bug in the target's own lookup, as it alone differs"
            : !targets[alone].Traits.HasFlag(TargetTraits.Immediate)
            ? "a model bug or an emulator deviation (see ept-rules.md §18), as the oracle alone differs"
            : targets[alone].RuleNames.Count > 0 ? "a model bug, as the model alone differs" : "an implementation bug, as it alone differs";
        return $"{targets[alone].Name} differs from {others}: {role}";
    }
}
