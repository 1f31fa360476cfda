using EptFuzz.Harness.Running;
using Xunit.Abstractions;

namespace EptFuzz.External.Tests.KeosRust;

/// <summary>
/// The fuzzer finds every reachable bug of keos-rust's catalog (BUGS.md) within
/// <see cref="ExternalDetection.Budget"/> executions against <c>model,impl,exec:BUILD</c>, reduces it to
/// at most <see cref="MaxReducedSteps"/> steps that pass on the sample (so the finding is the bug's
/// doing), and reports a panic or a stray write as a crash with its message; and the sample itself,
/// fuzzed the same way over the whole budget, shows nothing. Every build is made by cargo, offline.
/// </summary>
public sealed class KeosRustCatalogTests(ITestOutputHelper output)
{
    public const int MaxReducedSteps = 10;

    /// <summary>The table's file, next to the test assembly.</summary>
    public const string TableFile = "keos-rust-detection.md";

    /// <summary>Bugs that must come out as a crash of the target, and the text its stderr tail must hold.</summary>
    private static readonly Dictionary<string, string> Crashes = new(StringComparer.Ordinal)
    {
        // A Rust panic: the default hook's message, then exit status 101.
        ["bug-unwrap-missing-table"] = "no page-directory-pointer table for Gpa(",
        // The SDK's check of host memory outside the arena (FAULT 3).
        ["bug-duplicated-leaf-only"] = "wrote host memory outside its table pages",
    };

    [Fact]
    public void Catalog_NamesEveryBugFeature_AndTenAreReachable()
    {
        var features = KeosRustSample.Features();
        var listed = KeosRustSample.Bugs.Select(b => b.Name).ToList();
        Assert.Equal(features.Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));
        Assert.True(KeosRustSample.Bugs.Count(b => b.Reachable) >= 10, "the catalog has at least 10 bugs eptfuzz can reach");
        Assert.All(Crashes.Keys, bug => Assert.Contains(bug, listed));
    }

    [CargoFact]
    public void Fuzzer_FindsEveryKeosRustBug_WithinBudget_AndReducesItToTenSteps()
    {
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-keos-");
        var rows = new List<CatalogRow>();
        try
        {
            string sample = KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug: null);
            foreach (var (bug, _) in KeosRustSample.Bugs.Where(b => b.Reachable))
            {
                string build = KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug);
                ExternalDetectionResult r = KeosRustSample.Detection.Run(bug, build, Path.Combine(temp.FullName, bug), stopAtFirst: true);
                CaseStatus? onSample = r.Reduced is { } c ? KeosRustSample.Detection.Replay(c, sample).Status : null;
                rows.Add(new CatalogRow(bug, r, onSample));
            }
        }
        finally
        {
            temp.Delete(recursive: true);
        }

        string table = KeosRustSample.Detection.Table(rows);
        output.WriteLine(table);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, TableFile), table);

        var failures = ExternalDetection.CatalogFailures(rows, MaxReducedSteps, (bug, f, r) =>
            !Crashes.TryGetValue(bug, out string? message) ? null
            : !f.Signature.Split('|')[1].EndsWith(":crash", StringComparison.Ordinal) ? $"found as {f.Signature}, not as a crash of the target"
            : !r.ReducedText!.Contains(message, StringComparison.Ordinal) ? $"the crash finding does not carry the target's message '{message}':\n{r.ReducedText}"
            : null);
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [CargoFact]
    public void Sample_ShowsNothing_OverTheWholeBudget()
    {
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-keos-");
        try
        {
            string sample = KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug: null);
            KeosRustSample.Detection.ShowsNothing(sample, Path.Combine(temp.FullName, "out"), output.WriteLine);
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }
}
