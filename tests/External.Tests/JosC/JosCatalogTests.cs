using System.Globalization;
using System.Text;
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
        var rows = new List<(string Bug, ExternalDetectionResult Result, CaseStatus? OnSample)>();
        try
        {
            foreach (string bug in JosSample.Bugs)
            {
                string build = JosSample.Build("bug-" + bug);
                ExternalDetectionResult r = JosSample.Detection.Run(bug, build, Path.Combine(temp.FullName, bug), stopAtFirst: true);
                CaseStatus? onSample = r.Reduced is { } c ? JosSample.Detection.Replay(c, sample).Status : null;
                rows.Add((bug, r, onSample));
            }
        }
        finally
        {
            temp.Delete(recursive: true);
        }

        string table = Table(rows);
        output.WriteLine(table);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, TableFile), table);

        var failures = new List<string>();
        foreach (var (bug, r, onSample) in rows)
        {
            if (r.Finding is not { } f || r.Reduced is not { } reduced)
            {
                failures.Add($"{bug}: missed within {ExternalDetection.Budget} executions");
                continue;
            }

            if (reduced.Steps.Length > MaxReducedSteps)
            {
                failures.Add($"{bug}: the reduced finding has {reduced.Steps.Length} steps (at most {MaxReducedSteps})");
            }

            if (onSample != CaseStatus.Passed)
            {
                failures.Add($"{bug}: the reduced finding ({f.Signature}) does not pass on the sample ({onSample})");
            }

            if (FaultKinds.TryGetValue(bug, out string? kind) && !f.Signature.Split('|')[1].EndsWith(":" + kind, StringComparison.Ordinal))
            {
                failures.Add($"{bug}: found as {f.Signature}, not as a {kind} of the target");
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [SkippableNativeFact]
    public void Sample_ShowsNothing_OverTheWholeBudget()
    {
        string sample = JosSample.Build("jos-c-test");
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-jos-");
        try
        {
            ExternalDetectionResult r = JosSample.Detection.Run("sample", sample, temp.FullName, stopAtFirst: false);
            output.WriteLine($"sample: {r.Executions} executions in {r.Elapsed.TotalSeconds:0.0} s, first finding: {r.Finding?.Signature ?? "none"}");
            Assert.True(r.Finding is null, $"the sample diverged at execution {r.Finding?.FoundAtExecution}: {r.Finding?.Signature}\n{r.Finding?.Message}");
            Assert.Equal(ExternalDetection.Budget, r.Executions);
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    private static string Table(List<(string Bug, ExternalDetectionResult Result, CaseStatus? OnSample)> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Seed 0x{ExternalDetection.Seed:x}, budget {ExternalDetection.Budget} executions per bug, one worker, reduction cap {ExternalDetection.ReduceCap.TotalSeconds:0} s, command timeout {JosSample.Detection.CommandTimeout!.Value.TotalSeconds:0.#} s.");
        text.AppendLine();
        text.AppendLine("| bug | executions to detect | signature | reduced steps | seconds |");
        text.AppendLine("|---|---:|---|---:|---:|");
        foreach (var (bug, r, _) in rows)
        {
            string executions = r.Finding is { } f ? f.FoundAtExecution.ToString(CultureInfo.InvariantCulture) : $"missed ({r.Executions})";
            string signature = r.Finding is { } g ? $"`{g.Signature.Replace("|", "\\|", StringComparison.Ordinal)}`" : "-";
            string steps = r.Reduced is { } c ? c.Steps.Length.ToString(CultureInfo.InvariantCulture) : "-";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {bug} | {executions} | {signature} | {steps} | {r.Elapsed.TotalSeconds:0.0} |");
        }

        return text.ToString();
    }
}
