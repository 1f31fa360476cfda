using System.Globalization;
using System.Text;
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
        var rows = new List<(string Bug, ExternalDetectionResult Result, CaseStatus? OnSample)>();
        try
        {
            string sample = KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug: null);
            foreach (var (bug, _) in KeosRustSample.Bugs.Where(b => b.Reachable))
            {
                string build = KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug);
                ExternalDetectionResult r = KeosRustSample.Detection.Run(bug, build, Path.Combine(temp.FullName, bug), stopAtFirst: true);
                CaseStatus? onSample = r.Reduced is { } c ? KeosRustSample.Detection.Replay(c, sample).Status : null;
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

            if (Crashes.TryGetValue(bug, out string? message))
            {
                if (!f.Signature.Split('|')[1].EndsWith(":crash", StringComparison.Ordinal))
                {
                    failures.Add($"{bug}: found as {f.Signature}, not as a crash of the target");
                }
                else if (!r.ReducedText!.Contains(message, StringComparison.Ordinal))
                {
                    failures.Add($"{bug}: the crash finding does not carry the target's message '{message}':\n{r.ReducedText}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [CargoFact]
    public void Sample_ShowsNothing_OverTheWholeBudget()
    {
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-keos-");
        try
        {
            string sample = KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug: null);
            ExternalDetectionResult r = KeosRustSample.Detection.Run("sample", sample, Path.Combine(temp.FullName, "out"), stopAtFirst: false);
            output.WriteLine($"sample: {r.Executions} executions in {r.Elapsed.TotalSeconds:0.0} s, first finding: {r.Finding?.Signature ?? "none"}");
            Assert.True(r.Finding is null, $"the sample diverged at execution {r.Finding?.FoundAtExecution}: {r.Finding?.Signature}\n{r.ReducedText}");
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
        text.AppendLine(CultureInfo.InvariantCulture, $"Seed 0x{ExternalDetection.Seed:x}, budget {ExternalDetection.Budget} executions per bug, one worker, reduction cap {ExternalDetection.ReduceCap.TotalSeconds:0} s.");
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
