using System.Security.Cryptography;
using System.Text;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>What <c>eptfuzz merge</c> did.</summary>
public sealed record MergeSummary
{
    public required int Inputs { get; init; }

    /// <summary>Queue entries in the merged corpus.</summary>
    public required int QueueEntries { get; init; }

    /// <summary>Queue entries dropped because another input had the same steps.</summary>
    public required int DuplicateEntries { get; init; }

    /// <summary>Queue entries culled to queue/culled (every feature they set is kept by another entry).</summary>
    public int CulledEntries { get; init; }

    public required IReadOnlyList<FindingRecord> Findings { get; init; }

    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// <c>eptfuzz merge OUT...</c>: merges the campaign directories of several machines (shards) into
/// one: the union of their queues without duplicate cases, one finding per signature (the smallest
/// reduction, with the counts summed), and summed counters.
/// </summary>
public static class CampaignMerge
{
    /// <summary>The shard name a merged campaign records; such a campaign cannot be resumed.</summary>
    public const string MergedShard = "merged";

    /// <summary>Merges <paramref name="inputs"/> into <paramref name="outDir"/>, which must not hold a campaign yet.</summary>
    /// <param name="allowMixedProfiles">
    /// Merge campaigns whose generator profiles differ (<c>--cpu-profile</c>, <c>--steps</c>,
    /// <c>--probe-weight</c>, generator version); the merged stats.json lists every input's. Without
    /// it such a mix is refused: its counters and coverage would be labelled with one profile.
    /// </param>
    /// <param name="coverage">
    /// Run options to learn each queue entry's coverage with: the merged queue is then culled to
    /// the entries that keep every feature (the others go to queue/culled). Null: no cull.
    /// </param>
    public static MergeSummary Merge(IReadOnlyList<string> inputs, string outDir, bool allowMixedProfiles = false, Func<Running.RunOptions>? coverage = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outDir);
        if (inputs.Count == 0)
        {
            throw new CampaignUsageException("merge: name at least one campaign directory");
        }

        if (CampaignStats.Exists(outDir))
        {
            throw new CampaignUsageException($"merge: {outDir} already holds a campaign (stats.json); merge into a new directory");
        }

        var all = new List<(string Dir, CampaignStats Stats)>();
        foreach (string dir in inputs)
        {
            CampaignStats stats = CampaignStats.Load(dir, out string error) ?? throw new CampaignUsageException($"merge: {error}");
            all.Add((dir, stats));
        }

        List<string> profiles = [.. all.Select(a => $"{a.Dir}: {ProfileOf(a.Stats)}")];
        bool mixed = all.Select(a => ProfileOf(a.Stats)).Distinct(StringComparer.Ordinal).Count() > 1;
        if (mixed && !allowMixedProfiles)
        {
            throw new CampaignUsageException($"merge: the campaigns were made with different generator profiles ({string.Join("; ", profiles)}); merge each profile apart, or pass --allow-mixed-profiles to merge them and record every input's profile");
        }

        using CampaignLock held = CampaignLock.Acquire(outDir);
        if (CampaignStats.Exists(outDir))
        {
            throw new CampaignUsageException($"merge: {outDir} already holds a campaign (stats.json); merge into a new directory");
        }

        var files = new CampaignFiles(outDir);
        files.Create();
        try
        {
            var warnings = new List<string>();
            (int entries, int duplicates, int culled) = MergeQueues(all, files, warnings, coverage);
            List<FindingRecord> findings = MergeFindings(all, files);
            var merged = new CampaignStats
            {
                Seed = all.Select(a => a.Stats.Seed).Distinct(StringComparer.Ordinal).Count() == 1 ? all[0].Stats.Seed : "mixed",
                Shard = MergedShard,
                GeneratorVersion = all[0].Stats.GeneratorVersion,
                CpuProfile = mixed ? "mixed" : all[0].Stats.CpuProfile,
                StepsPerCase = all[0].Stats.StepsPerCase,
                ProbeWeight = all[0].Stats.ProbeWeight,
                InputProfiles = mixed ? profiles : [],
                Executions = all.Sum(a => a.Stats.Executions),
                Probes = all.Sum(a => a.Stats.Probes),
                Rejected = all.Sum(a => a.Stats.Rejected),
                RejectedOverBudget = all.Sum(a => a.Stats.RejectedOverBudget),
                InfrastructureFailures = all.Sum(a => a.Stats.InfrastructureFailures),
                Hangs = all.Sum(a => a.Stats.Hangs),
                KnownDivergences = all.Sum(a => a.Stats.KnownDivergences),
                Duplicates = findings.Sum(f => f.Count) - findings.Count,
                // The machines ran side by side: the merged campaign took as long as the longest.
                ElapsedSeconds = all.Max(a => a.Stats.ElapsedSeconds),
                CorpusSize = entries,
                QueueSize = entries + culled,
                RulesHitNames = [.. all.SelectMany(a => a.Stats.RulesHitNames).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)],
                RulesModelled = all.Max(a => a.Stats.RulesModelled),
                // Feature bitmaps are not stored; the largest input's count is a lower bound.
                Features = all.Max(a => a.Stats.Features),
                Targets = all[0].Stats.Targets,
                Findings = findings,
                History = [.. all.OrderByDescending(a => a.Stats.Executions).First().Stats.History],
            };
            merged.RulesHit = merged.RulesHitNames.Count;
            merged.Save(outDir);
            files.Log(new CampaignEvent { Type = "merge", Executions = merged.Executions, Seconds = merged.ElapsedSeconds, Message = string.Join(' ', inputs), Findings = findings.Count, CorpusSize = entries });
            return new MergeSummary { Inputs = inputs.Count, QueueEntries = entries, DuplicateEntries = duplicates, CulledEntries = culled, Findings = findings, Warnings = warnings };
        }
        finally
        {
            files.Dispose();
        }
    }

    private static string ProfileOf(CampaignStats s) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"generator {s.GeneratorVersion} --cpu-profile {s.CpuProfile} --steps {s.StepsPerCase} --probe-weight {s.ProbeWeight}");

    private static (int Entries, int Duplicates, int Culled) MergeQueues(List<(string Dir, CampaignStats Stats)> all, CampaignFiles into, List<string> warnings, Func<Running.RunOptions>? coverage)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var unique = new List<(string SeedPart, EptCase Entry)>();
        int duplicates = 0;
        foreach (var (dir, _) in all)
        {
            foreach (string path in new CampaignFiles(dir).QueueEntries())
            {
                ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(path), path);
                if (!parsed.Succeeded)
                {
                    warnings.Add(parsed.ErrorText());
                    continue;
                }

                // The same steps are the same entry, whatever their header says.
                string steps = CasePrinter.Print(parsed.Case with { HeaderComments = [] });
                if (!seen.Add(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(steps)))))
                {
                    duplicates++;
                    continue;
                }

                // id-NNNNNN-SEED.ept: keep the seed part of the name.
                string name = Path.GetFileName(path);
                string seedPart = name.Length > 10 ? name[10..] : name;
                unique.Add((seedPart, parsed.Case with { HeaderComments = [.. parsed.Case.HeaderComments, $"merged from {dir}"] }));
            }
        }

        HashSet<int>? keep = null;
        if (coverage is not null)
        {
            var map = new CoverageMap();
            Running.RunOptions observed = coverage() with { Observer = map };
            var entries = new List<(IReadOnlyList<int> Features, int Cost)>(unique.Count);
            foreach (var (_, entry) in unique)
            {
                map.BeginCase();
                Running.CaseResult result = Running.CaseRunner.Run(entry, observed);
                bool passed = result.Status is Running.CaseStatus.Passed or Running.CaseStatus.KnownDivergence;
                // An entry that does not pass here sets no feature the cull could keep it for: keep it anyway, and say so.
                entries.Add((passed ? [.. map.CaseFeatures] : [-1 - entries.Count], Campaign.Cost(entry)));
                if (!passed)
                {
                    warnings.Add($"queue entry from {entry.HeaderComments[^1]}: {result.Status}: {result.Message}; kept without culling");
                }
            }

            keep = [.. QueueCull.Favoured(entries)];
        }

        int id = 0, culled = 0;
        for (int i = 0; i < unique.Count; i++)
        {
            bool kept = keep is null || keep.Contains(i);
            string directory = kept ? into.Queue : into.Culled;
            FindingFile.WriteAtomic(Path.Combine(directory, $"id-{id:d6}-{unique[i].SeedPart}"), CasePrinter.Print(unique[i].Entry));
            id++;
            culled += kept ? 0 : 1;
        }

        return (id - culled, duplicates, culled);
    }

    private static List<FindingRecord> MergeFindings(List<(string Dir, CampaignStats Stats)> all, CampaignFiles into)
    {
        var best = new Dictionary<string, (FindingRecord Record, string Dir)>(StringComparer.Ordinal);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (dir, stats) in all)
        {
            foreach (FindingRecord f in stats.Findings)
            {
                counts[f.Signature] = counts.GetValueOrDefault(f.Signature) + f.Count;
                if (!best.TryGetValue(f.Signature, out var current) || f.StepsAfter < current.Record.StepsAfter)
                {
                    best[f.Signature] = (f, dir);
                }
            }
        }

        var merged = new List<FindingRecord>();
        foreach (var (signature, (record, dir)) in best.OrderBy(b => b.Value.Record.FoundAtSeconds))
        {
            var source = new CampaignFiles(dir);
            foreach (string suffix in (string[])[".ept", ".raw.ept", ".json", ".test.cs"])
            {
                string from = Path.Combine(source.Findings, record.Hash + suffix);
                if (File.Exists(from))
                {
                    FindingFile.WriteAtomic(Path.Combine(into.Findings, record.Hash + suffix), File.ReadAllText(from));
                }
            }

            merged.Add(record with { Count = counts[signature] });
        }

        return merged;
    }
}
