using EptFuzz.Harness.Running;
using Xunit.Abstractions;

namespace EptFuzz.External.Tests.JosC;

/// <summary>
/// The fuzzer finds every bug of jos-c's catalog (BUGS.md) within <see cref="ExternalDetection.Budget"/>
/// executions against <c>model,exec:bug-NAME</c>, reduces it to at most
/// <see cref="MaxReducedSteps"/> steps that pass on the sample (so the finding is the bug's doing),
/// and reports a crash as a crash and a hang as a hang; and the sample itself, fuzzed the same way
/// over the whole budget, shows nothing. Every build is the sample's test build (AddressSanitizer,
/// UBSan) made by its Makefile with the machine's cc.
/// </summary>
public sealed class JosCatalogTests(ITestOutputHelper output)
{
    public const int MaxReducedSteps = 10;

    /// <summary>The table's file, next to the test assembly.</summary>
    public const string TableFile = "jos-c-detection.md";

    /// <summary>Bugs that must come out as a fault of the target (the signature's second field), not as a divergence.</summary>
    private static readonly Dictionary<string, string> FaultKinds = new(StringComparer.Ordinal)
    {
        ["LOOKUP_NULL"] = "crash",
        ["USE_AFTER_FREE"] = "crash",
        ["MEMMAP_LOOP"] = "hang",
        ["DOUBLE_FREE"] = "accounting",
        ["LEAK_ON_FAILURE"] = "accounting",
        ["FREE_LINKED"] = "accounting",
    };

    [SkippableNativeFact]
    public void Fuzzer_FindsEveryJosBug_WithinBudget_AndReducesItToTenSteps()
    {
        string sample = JosSample.Build("jos-c-test");
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-jos-");
        var rows = new List<CatalogRow>();
        try
        {
            foreach (string bug in JosSample.Bugs)
            {
                string build = JosSample.Build("bug-" + bug);
                ExternalDetectionResult r = JosSample.Detection.Run(bug, build, Path.Combine(temp.FullName, bug), stopAtFirst: true);
                CaseStatus? onSample = r.Reduced is { } c ? JosSample.Detection.Replay(c, sample).Status : null;
                rows.Add(new CatalogRow(bug, r, onSample));
            }
        }
        finally
        {
            temp.Delete(recursive: true);
        }

        string table = JosSample.Detection.Table(rows);
        output.WriteLine(table);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, TableFile), table);

        var failures = ExternalDetection.CatalogFailures(rows, MaxReducedSteps, (bug, f, _) =>
            FaultKinds.TryGetValue(bug, out string? kind) && !f.Signature.Split('|')[1].EndsWith(":" + kind, StringComparison.Ordinal)
                ? $"found as {f.Signature}, not as a {kind} of the target"
                : null);
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [SkippableNativeFact]
    public void Sample_ShowsNothing_OverTheWholeBudget()
    {
        string sample = JosSample.Build("jos-c-test");
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-jos-");
        try
        {
            JosSample.Detection.ShowsNothing(sample, temp.FullName, output.WriteLine);
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }
}
