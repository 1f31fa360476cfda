using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>What <c>eptfuzz cmin</c> did.</summary>
public sealed record MinimizeSummary(int Cases, int Kept, int Features, IReadOnlyList<string> Warnings);

/// <summary>
/// <c>eptfuzz cmin</c>: the smallest set of cases (chosen as <see cref="QueueCull"/> chooses a
/// campaign's working set) that sets every coverage feature the given cases set, copied to a new
/// directory. Cases that do not parse or do not pass set no feature and are named in the warnings.
/// </summary>
public static class CorpusMinimizer
{
    /// <summary>Every feature each case sets (parse failures and cases that do not pass: no features, a warning).</summary>
    public static List<(string Path, EptCase Case, int[] Features)> Measure(IEnumerable<string> files, Func<RunOptions> options, List<string> warnings)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(warnings);
        var map = new CoverageMap();
        RunOptions observed = options() with { Observer = map };
        var measured = new List<(string, EptCase, int[])>();
        foreach (string path in files)
        {
            ParseResult parsed = CaseFile.Read(path);
            if (!parsed.Succeeded)
            {
                warnings.Add(parsed.ErrorText());
                continue;
            }

            map.BeginCase();
            CaseResult result = CaseRunner.Run(parsed.Case with { SourceName = path }, observed);
            if (result.Status is not (CaseStatus.Passed or CaseStatus.KnownDivergence))
            {
                warnings.Add($"{path}: {result.Status}: {result.Message}; not kept");
                continue;
            }

            measured.Add((path, parsed.Case, [.. map.CaseFeatures]));
        }

        return measured;
    }

    /// <summary>Copies the minimal set of <paramref name="inputs"/> (files or directories of .ept) to <paramref name="outDir"/>, which must hold no case yet.</summary>
    public static MinimizeSummary Minimize(IReadOnlyList<string> inputs, string outDir, Func<RunOptions> options)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outDir);
        if (Directory.Exists(outDir) && Directory.EnumerateFiles(outDir, "*.ept", SearchOption.AllDirectories).Any())
        {
            throw new CampaignUsageException($"cmin: {outDir} already holds cases; minimize into a new directory");
        }

        var (files, missing) = CorpusReplay.FindCases(inputs);
        if (missing.Count > 0)
        {
            throw new CampaignUsageException($"cmin: {string.Join("; ", missing)}");
        }

        var warnings = new List<string>();
        var measured = Measure(files, options, warnings);
        IReadOnlyList<int> keep = QueueCull.Favoured([.. measured.Select(m => ((IReadOnlyList<int>)m.Features, Campaign.Cost(m.Case)))]);
        Directory.CreateDirectory(outDir);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (int i in keep)
        {
            string name = Path.GetFileName(measured[i].Path);
            // Two inputs may share a name: the later one gets its index in front.
            string target = names.Add(name) ? name : $"{i:d6}-{name}";
            names.Add(target);
            File.Copy(measured[i].Path, Path.Combine(outDir, target));
        }

        int features = measured.SelectMany(m => m.Features).Distinct().Count();
        return new MinimizeSummary(files.Count, keep.Count, features, warnings);
    }
}
